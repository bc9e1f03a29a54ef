"""Video decoding behind one small API: metadata, frames sampled one per interval, the audio track at 16 kHz.

Sampled frames and I3D clips come from one forward pass of PyAV in presentation order (FramesInOrder),
decoded in bounded chunks: decord's seeking returned frames from other shots on an AVI with B-frames
and no frame timestamps (opencv's Megamind.avi) and grey frames on an H.264 file with broken reference
slices (imageio's cockatoo.mp4), where decoding in order is right; for sampling every 1.5 s it was as
fast or faster on every file measured. decord reads the frame count and rate and gives random access
for a few frames (thumbnails) where its seeks are right. Audio comes from PyAV too, so no system
ffmpeg is needed. Frame i covers [i*dt, (i+1)*dt) and is sampled at its centre (i + 0.5) * dt,
clamped to the last decodable frame.
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


class FramesInOrder:
    """Frames by video frame index from ONE forward pass of PyAV in presentation order.

    Each `read` may ask for any indices not yet decoded, and for those of the previous read within
    KEEP frames of its highest (clips that overlap their neighbour); indices past the stream's end get
    its last frame. Use as a context manager, or call `close`.
    """

    KEEP = 64  # frames of the previous read kept for an overlapping next read (memory stays bounded)

    def __init__(self, path: str | Path):
        import av

        self.path = Path(path)
        self._container = av.open(str(self.path))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._decoded = enumerate(self._container.decode(stream))
        self._kept: dict[int, np.ndarray] = {}  # the previous read's frames
        self._next = 0  # index of the next frame the decoder will give
        self._last = None  # the last decoded frame (for indices past the end)

    def read(self, indices) -> np.ndarray:
        """uint8 (len(indices), H, W, 3) RGB, in the order asked."""
        want = np.asarray(indices, dtype=np.int64)
        got = {i: self._kept[i] for i in set(want.tolist()) if i in self._kept}
        todo = {i for i in want.tolist() if i not in got}
        if todo and min(todo) < self._next:
            raise ValueError(f"frame {min(todo)} was already passed (reads must move forward)")
        top = max(todo, default=-1)
        while self._next <= top:
            item = next(self._decoded, None)
            if item is None:
                break
            i, frame = item
            self._next, self._last = i + 1, frame
            if i in todo:
                got[i] = frame.to_ndarray(format="rgb24")
        missing = todo - got.keys()
        if missing:  # the stream ended early (decord counted more frames): its last frame
            if self._last is None:
                raise ValueError("no frame could be decoded")
            last = self._last.to_ndarray(format="rgb24")
            got.update((i, last) for i in missing)
        high = max(got, default=-1)
        self._kept = {i: f for i, f in got.items() if i > high - self.KEEP}
        return np.stack([got[i] for i in want.tolist()]) if len(want) else np.zeros((0, 0, 0, 3), np.uint8)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> FramesInOrder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_frames(
    path: str | Path, meta: VideoMeta, interval: float = DEFAULT_INTERVAL, chunk: int = 32
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_index, frames uint8 (n, H, W, 3) RGB) for the sampled frames, `chunk` at a time, so
    memory stays bounded however long the video is. One forward decoding pass (FramesInOrder)."""
    path = Path(path)
    times = frame_times(meta.duration, interval)
    idx = np.minimum((times * meta.fps).astype(np.int64), meta.n_video_frames - 1)
    try:
        reader = FramesInOrder(path)
    except Exception as e:
        raise InputError(f"{path}: the video stream cannot be decoded ({_short(e)})") from None
    with reader:
        for s in range(0, len(idx), chunk):
            try:
                batch = reader.read(idx[s : s + chunk])
            except Exception as e:
                raise InputError(
                    f"{path}: decoding failed near {times[s]:.1f} s ({_short(e)}); is it truncated?"
                ) from None
            yield s, batch


def read_frame_indices(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """Decoded frames at the given video frame indices, uint8 (n, H, W, 3) RGB: random access through
    decord where its seeks are right, else one forward pass (FramesInOrder). For many frames in time
    order (clips), keep one FramesInOrder instead: decord's seeks returned grey frames on a file with
    broken reference slices (imageio's cockatoo.mp4) that decodes cleanly in order."""
    path = Path(path)
    indices = np.asarray(indices, dtype=np.int64)
    try:
        vr = _reader(path)
        if _seeks_correctly(vr):
            return vr.get_batch(indices.tolist()).asnumpy()
        with FramesInOrder(path) as reader:
            return reader.read(indices)
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
