"""Write an mp4 (H.264 video + AAC audio) with PyAV: no system ffmpeg needed. Atomic: temp file + rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    crf: int = 28,
    audio_bitrate: int = 64_000,
) -> Path:
    """Encode RGB uint8 frames (H, W, 3) at `fps` and optional float32 mono `audio` into `path`.

    H.264 needs even sizes; yuv420p keeps it playable in every browser. The audio is padded or cut to
    the video's duration so both streams end together.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    rate = Fraction(fps).limit_denominator(1001)
    n_frames = 0
    try:
        with av.open(tmp, "w", format="mp4") as out:
            vs = None
            for frame in frames:
                if vs is None:
                    h, w = frame.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"frame size {w}x{h} must be even for H.264")
                    vs = out.add_stream("libx264", rate=rate)
                    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
                    vs.options = {"crf": str(crf), "preset": "veryfast", "tune": "stillimage"}
                    if audio is not None:
                        aus = out.add_stream("aac", rate=sample_rate)
                        aus.bit_rate = audio_bitrate
                        aus.layout = "mono"
                for packet in vs.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                ):
                    out.mux(packet)
                n_frames += 1
            if vs is None:
                raise ValueError("no frames to write")
            for packet in vs.encode():
                out.mux(packet)
            if audio is not None:
                n = int(round(n_frames / float(rate) * sample_rate))
                pcm = np.zeros(n, np.float32)
                pcm[: min(n, len(audio))] = audio[:n]
                pcm = np.clip(pcm, -1.0, 1.0)
                chunk = 1024
                for i in range(0, n, chunk):
                    af = av.AudioFrame.from_ndarray(pcm[None, i : i + chunk], format="flt", layout="mono")
                    af.sample_rate = sample_rate
                    af.pts = i
                    for packet in aus.encode(af):
                        out.mux(packet)
                for packet in aus.encode():
                    out.mux(packet)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
