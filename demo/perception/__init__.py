"""Real-world perception as timed concept tracks: objects (SSD-MobileNet-v2), actions and motion
features (I3D), on-screen text (PP-OCR) and sound events (YAMNet). Every model loads offline from
an installed package; each stage returns `demo.tracks.ConceptEvent`s.

    from demo.perception.objects import detect_objects          # (frames, times) -> events
    from demo.perception.actions import recognize_actions, clip_indices   # (clips, times) -> ActionResult
    from demo.perception.screentext import read_screen_text     # (frames, times) -> events
    from demo.perception.sounds import tag_sounds               # (audio 16 kHz) -> events
"""

from __future__ import annotations

from pathlib import Path


def default_cache_dir() -> Path:
    """Where converted/unpacked weights live unless the caller passes cache_dir (the user cache)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("herovid")) / "models"
