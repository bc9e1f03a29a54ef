"""SynthTV: a procedural video-language benchmark (episodes, rendering, speech, annotations)."""
