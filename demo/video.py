"""Video decoding behind one small API: metadata, frames sampled one per interval, the audio track at 16 kHz.

Frames come from decord (seeking to the frame at each interval's centre, decoded in bounded chunks);
metadata and audio from PyAV, so no system ffmpeg is needed. Frame i covers [i*dt, (i+1)*dt) and is
sampled at its centre (i + 0.5) * dt, clamped to the last decodable frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from demo.errors import InputError

DEFAULT_INTERVAL = 1.5  # seconds per HERO frame (the official feature rate)
AUDIO_RATE = 16_000


@dataclass(frozen=True)
class VideoMeta:
    duration: float  # seconds
    fps: float
    width: int
    height: int
    n_video_frames: int
    has_audio: bool

    def to_dict(self) -> dict:
        return asdict(self)


def frame_times(duration: float, interval: float = DEFAULT_INTERVAL) -> np.ndarray:
    """Centres of the sampling intervals [i*dt, (i+1)*dt) that start before `duration`; at least one."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    n = max(1, math.ceil(duration / interval - 1e-9))
    return (np.arange(n) + 0.5) * interval


def frame_spans(n_frames: int, interval: float = DEFAULT_INTERVAL) -> np.ndarray:
    """(n, 2) start/end seconds of each sampled frame's interval."""
    starts = np.arange(n_frames) * interval
    return np.stack([starts, starts + interval], axis=1)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")


def probe(path: str | Path) -> VideoMeta:
    """Read the container's metadata; raises InputError for anything that is not a decodable video."""
    import av

    path = Path(path)
    _check_file(path)
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputError(f"{path}: no video stream (is this an audio file?)")
            has_audio = bool(c.streams.audio)
    except InputError:
        raise
    except Exception as e:  # PyAV raises many types for non-media or broken containers
        raise InputError(f"{path}: not a readable video ({_short(e)})") from None
    vr = _reader(path)
    n = len(vr)
    if n == 0:
        raise InputError(f"{path}: the video stream has no frames")
    fps = float(vr.get_avg_fps()) or 25.0
    h, w = vr[0].shape[:2] if n else (0, 0)
    return VideoMeta(
        duration=n / fps, fps=fps, width=int(w), height=int(h), n_video_frames=n, has_audio=has_audio
    )


def _short(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def _reader(path: Path):
    import decord

    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=2)
    except Exception as e:  # decord raises DECORDError / RuntimeError on broken streams
        raise InputError(f"{path}: the video stream cannot be decoded ({_short(e)})") from None


def iter_frames(
    path: str | Path, meta: VideoMeta, interval: float = DEFAULT_INTERVAL, chunk: int = 32
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_index, frames uint8 (n, H, W, 3) RGB) for the sampled frames, `chunk` at a time, so
    memory stays bounded however long the video is."""
    path = Path(path)
    vr = _reader(path)
    times = frame_times(meta.duration, interval)
    idx = np.minimum((times * meta.fps).astype(np.int64), meta.n_video_frames - 1)
    for s in range(0, len(idx), chunk):
        try:
            batch = vr.get_batch(idx[s : s + chunk].tolist()).asnumpy()
        except Exception as e:
            raise InputError(
                f"{path}: decoding failed near {times[s]:.1f} s ({_short(e)}); is it truncated?"
            ) from None
        yield s, batch


def read_frame_indices(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """Decoded frames at the given video frame indices, uint8 (n, H, W, 3) RGB."""
    path = Path(path)
    try:
        return _reader(path).get_batch(np.asarray(indices).tolist()).asnumpy()
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path}: decoding failed ({_short(e)}); is it truncated?") from None


def sample_frames(path: str | Path, meta: VideoMeta, interval: float = DEFAULT_INTERVAL) -> np.ndarray:
    """All sampled frames at once (n, H, W, 3); for short clips and tests. Prefer iter_frames."""
    return np.concatenate([f for _, f in iter_frames(path, meta, interval)], axis=0)


def load_audio(
    path: str | Path, meta: VideoMeta | None = None, sample_rate: int = AUDIO_RATE
) -> np.ndarray | None:
    """The audio track as float32 mono at `sample_rate` (PyAV through faster-whisper), or None without one."""
    from faster_whisper.audio import decode_audio

    if meta is not None and not meta.has_audio:
        return None
    try:
        audio = decode_audio(str(path), sampling_rate=sample_rate)
    except Exception as e:
        raise InputError(f"{path}: the audio track cannot be decoded ({_short(e)})") from None
    return np.asarray(audio, dtype=np.float32)
