"""Thumbnails of a video at given times, as small JPEG data URIs the UI can inline (moment cards)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def frame_indices(times: Sequence[float], fps: float, n_video_frames: int) -> list[int]:
    """Decodable frame index nearest each time (clamped to the stream)."""
    last = max(n_video_frames - 1, 0)
    return [int(min(max(round(t * fps), 0), last)) for t in times]


def to_data_uri(frame: np.ndarray, width: int = 192, quality: int = 80) -> str:
    """uint8 (H, W, 3) RGB -> 'data:image/jpeg;base64,...' scaled to `width` pixels wide."""
    img = Image.fromarray(frame)
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnails(
    path: str | Path, times: Sequence[float], fps: float, n_video_frames: int, width: int = 192
) -> list[str | None]:
    """One data URI per time; None for every time when the file cannot be decoded (the UI then shows
    the card without a picture rather than failing the search)."""
    if not times:
        return []
    from demo.video import read_frame_indices

    idx = frame_indices(times, fps, n_video_frames)
    uniq = sorted(set(idx))
    try:
        frames = dict(zip(uniq, read_frame_indices(path, np.array(uniq))))
    except Exception:  # InputError, or the readers' own error types on broken files
        return [None] * len(times)
    return [to_data_uri(frames[i], width) for i in idx]
