"""HERO video understanding app: ingest, search, ask, caption."""
