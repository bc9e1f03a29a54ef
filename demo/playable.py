"""A browser-playable copy of a library video. MP4/WebM/MOV with H.264, VP8/9 or AV1 (and AAC, MP3, Opus
or Vorbis sound) play as they are; anything else (AVI, MPEG-4 Part 2, ...) is transcoded once with PyAV
to H.264/AAC MP4 next to the library's copy (`<id>.play.mp4`, removed with the video)."""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from demo.errors import InputError

BROWSER_CONTAINERS = {".mp4", ".m4v", ".webm", ".mov"}
BROWSER_VIDEO = {"h264", "vp8", "vp9", "av1"}
BROWSER_AUDIO = {"aac", "mp3", "opus", "vorbis"}


def needs_transcode(path: str | Path) -> bool:
    """True when a browser cannot be relied on to play the file as it is."""
    import av

    path = Path(path)
    if path.suffix.lower() not in BROWSER_CONTAINERS:
        return True
    with av.open(str(path)) as c:
        video = c.streams.video[0].codec_context.name if c.streams.video else None
        audio = [s.codec_context.name for s in c.streams.audio]
    return video not in BROWSER_VIDEO or any(a not in BROWSER_AUDIO for a in audio)


def playable_copy(
    path: str | Path, video_id: str, media_dir: str | Path, progress: Callable[[float], None] | None = None
) -> Path:
    """`path` itself when browsers play it, else its H.264/AAC MP4 transcode (made once, then reused)."""
    path = Path(path)
    if not needs_transcode(path):
        return path
    out = Path(media_dir) / f"{video_id}.play.mp4"
    if out.is_file():
        return out
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        _transcode(path, tmp, progress or (lambda f: None))
        os.replace(tmp, out)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputError(f"{path.name}: cannot make a browser-playable copy ({first})") from None
    return out


def _transcode(src: Path, dst: Path, progress: Callable[[float], None]) -> None:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = Fraction(vin.average_rate or 25).limit_denominator(1001)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": "23", "preset": "veryfast"}
        aout = out.add_stream("aac", rate=44_100) if ain is not None else None
        if aout is not None:
            aout.layout = "stereo"
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44_100)
        total = float(vin.frames or 0) or float((inp.duration or 0) / 1e6 * float(rate)) or 1.0
        n_video = n_audio = 0
        streams = [s for s in (vin, ain) if s is not None]
        for frame in inp.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                f = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
                f.pts, f.time_base = n_video, Fraction(1, 1) / rate
                out.mux(vout.encode(f))
                n_video += 1
                if n_video % 50 == 0:
                    progress(min(n_video / total, 1.0))
            else:
                for a in resampler.resample(frame):
                    a.pts, a.time_base = n_audio, Fraction(1, 44_100)
                    n_audio += a.samples
                    out.mux(aout.encode(a))
        out.mux(vout.encode())
        if aout is not None:
            out.mux(aout.encode())
    progress(1.0)
