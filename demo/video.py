"""Video decoding behind one small API: metadata, frames sampled one per interval, the audio track at 16 kHz.

Frames come from decord (seeking to the frame at each interval's centre, decoded in bounded chunks)
when the container gives it usable frame timestamps; otherwise from PyAV, decoding in presentation
order (decord seeks by those timestamps: on opencv's Megamind.avi, an AVI with B-frames and none, it
returned frames from other shots after ~4 s). Metadata and audio come from PyAV, so no system ffmpeg
is needed. Frame i covers [i*dt, (i+1)*dt) and is
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


def _seeks_correctly(vr) -> bool:
    """decord seeks by the frames' timestamps: they must exist, start at >= 0 and increase. Files
    without them (decord reports a huge negative time) decode right only in order."""
    ts = vr.get_frame_timestamp(list(range(len(vr))))[:, 0]
    return bool(len(ts) and np.isfinite(ts).all() and ts[0] >= -1e-3 and (np.diff(ts) > 0).all())


def _frames_in_order(path: Path, indices: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """PyAV, decoding from the start in presentation order: the frames at `indices` (ascending, repeats
    allowed), `chunk` at a time. Indices past the stream's end get its last frame."""
    import av

    want = np.asarray(indices, dtype=np.int64)
    out: list[np.ndarray] = []
    k = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        frame = None
        for i, frame in enumerate(c.decode(stream)):
            if k == len(want):
                break
            if want[k] == i:
                rgb = frame.to_ndarray(format="rgb24")
                while k < len(want) and want[k] == i:
                    out.append(rgb)
                    k += 1
            while len(out) >= chunk:
                yield np.stack(out[:chunk])
                out = out[chunk:]
        if k < len(want):
            if frame is None:
                raise ValueError("no frame could be decoded")
            out += [frame.to_ndarray(format="rgb24")] * (len(want) - k)
    for s in range(0, len(out), chunk):
        yield np.stack(out[s : s + chunk])


def _read(path: Path, indices: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """Frames at ascending video frame indices, `chunk` at a time: decord when it seeks correctly."""
    vr = _reader(path)
    if _seeks_correctly(vr):
        for s in range(0, len(indices), chunk):
            yield vr.get_batch(np.asarray(indices[s : s + chunk]).tolist()).asnumpy()
    else:
        yield from _frames_in_order(path, indices, chunk)


def iter_frames(
    path: str | Path, meta: VideoMeta, interval: float = DEFAULT_INTERVAL, chunk: int = 32
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_index, frames uint8 (n, H, W, 3) RGB) for the sampled frames, `chunk` at a time, so
    memory stays bounded however long the video is."""
    path = Path(path)
    times = frame_times(meta.duration, interval)
    idx = np.minimum((times * meta.fps).astype(np.int64), meta.n_video_frames - 1)
    frames = _read(path, idx, chunk)
    s = 0
    while s < len(idx):
        try:
            batch = next(frames)
        except InputError:
            raise
        except Exception as e:
            raise InputError(
                f"{path}: decoding failed near {times[s]:.1f} s ({_short(e)}); is it truncated?"
            ) from None
        yield s, batch
        s += len(batch)


def read_frame_indices(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """Decoded frames at the given video frame indices, uint8 (n, H, W, 3) RGB."""
    path = Path(path)
    indices = np.asarray(indices, dtype=np.int64)
    order = np.argsort(indices, kind="stable")
    try:
        frames = np.concatenate(list(_read(path, indices[order], max(1, len(indices)))))
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path}: decoding failed ({_short(e)}); is it truncated?") from None
    out = np.empty_like(frames)
    out[order] = frames
    return out


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
