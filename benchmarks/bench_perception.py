"""Cost of each perception stage per minute of video, printed as a markdown table.

One minute at HERO's 1.5 s interval = 40 sampled frames (640 x 360 here, real skimage photos with
a slow pan so frames differ), 40 I3D clips and 60 s of audio (pygame's music loop, tiled).

    python -m benchmarks.bench_perception [--threads 2] [--device cpu|cuda] [--clips 4] [--clip-frames 16]

I3D runs `--clips` clips and scales to 40 (it dominates); the other stages run the full minute.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

FRAMES_PER_MIN = 40  # 60 s / 1.5 s


def _frames(n: int, size=(640, 360)) -> np.ndarray:
    """n frames from real photos, each shifted a few pixels from the last (a moving camera)."""
    from skimage import data

    photos = [
        cv2.resize(p[:, :, :3], (size[0] + 80, size[1]))
        for p in (data.chelsea(), data.coffee(), data.astronaut())
    ]
    out = []
    for i in range(n):
        photo = photos[(i * len(photos)) // n]
        x = (2 * i) % 80
        out.append(np.ascontiguousarray(photo[:, x : x + size[0]]))
    return np.stack(out)


def _captioned(frames: np.ndarray) -> np.ndarray:
    """The same frames with a two-line caption that changes every 4 frames (a text-heavy video)."""
    out = frames.copy()
    for i, f in enumerate(out):
        cv2.putText(
            f,
            f"Chapter {i // 4 + 1}: the market",
            (30, 300),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0,
            (255, 255, 255),
            2,
        )
        cv2.putText(f, "www.example.org", (30, 340), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 0), 2)
    return out


def _audio(seconds: float = 60.0) -> np.ndarray:
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    spec = importlib.util.find_spec("pygame")
    if spec is None:
        rng = np.random.default_rng(0)
        return (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    path = Path(list(spec.submodule_search_locations)[0]) / "examples" / "data" / "house_lo.wav"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr, x = wavfile.read(path)
    x = (x.astype(np.float32) - 128) / 128 if x.dtype == np.uint8 else x.astype(np.float32) / 32768
    x = resample_poly(x, 16000 // np.gcd(sr, 16000), sr // np.gcd(sr, 16000)).astype(np.float32)
    return np.tile(x, int(np.ceil(seconds * 16000 / len(x))))[: int(seconds * 16000)]


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="for I3D")
    parser.add_argument("--clips", type=int, default=4, help="I3D clips actually run (scaled to 40)")
    parser.add_argument("--clip-frames", type=int, default=16)
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="converted weights (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    cache = args.cache_dir or Path(tempfile.mkdtemp())
    times = (np.arange(FRAMES_PER_MIN) + 0.5) * 1.5
    frames = _frames(FRAMES_PER_MIN)
    rows = []

    from demo.perception.objects import ObjectDetector

    det = ObjectDetector()
    load, _ = _timed(det.load)
    det.detect(frames[:1])  # warm-up
    sec, events = _timed(det.run, frames, times)
    rows.append(("objects (SSD-MobileNet-v2, OpenCV DNN)", "40 frames", sec, load, f"{len(events)} events"))

    from demo.perception.screentext import ScreenTextReader

    reader = ScreenTextReader()
    load, _ = _timed(reader.load)
    reader.read(frames[0])  # warm-up
    still = np.repeat(_captioned(frames[:1]), FRAMES_PER_MIN, axis=0)
    sec, _ = _timed(reader.run, still, times)
    rows.append(
        ("screen text, still shot (PP-OCRv6)", f"40 frames, {reader.frames_read} read", sec, load, "")
    )
    sec, events = _timed(reader.run, _captioned(frames), times)
    rows.append(
        (
            "screen text, moving shot (PP-OCRv6)",
            f"40 frames, {reader.frames_read} read",
            sec,
            load,
            f"{len(events)} lines",
        )
    )

    from demo.perception.sounds import SoundTagger

    tagger = SoundTagger(cache_dir=cache)
    load, _ = _timed(tagger.load)
    sec, events = _timed(tagger.run, _audio())
    rows.append(("sounds (YAMNet w8a8 ONNX)", "60 s audio, 124 patches", sec, load, f"{len(events)} events"))

    from demo.perception.actions import ActionRecognizer

    rec = ActionRecognizer(cache_dir=cache, device=args.device, batch_size=4)
    load, _ = _timed(rec.load)  # includes the one-time conversion when the cache is empty
    clip = np.stack([frames[0]] * args.clip_frames)
    rec.encode([clip])  # warm-up
    clips = [np.roll(clip, i, axis=2) for i in range(args.clips)]
    if args.device == "cuda":
        torch.cuda.synchronize()
    sec, _ = _timed(rec.run, clips, times[: args.clips])
    if args.device == "cuda":
        torch.cuda.synchronize()
    rows.append(
        (
            f"actions + 3D features (I3D, {args.device})",
            f"40 clips x {args.clip_frames} frames (ran {args.clips})",
            sec * FRAMES_PER_MIN / args.clips,
            load,
            "load includes first-run conversion",
        )
    )

    print(f"\nPerception cost per minute of video ({args.threads} threads, torch {torch.__version__})\n")
    print("| stage | work per minute | seconds per minute of video | load (s) | notes |")
    print("|---|---|---|---|---|")
    for name, work, sec, load, note in rows:
        print(f"| {name} | {work} | {sec:.1f} | {load:.1f} | {note} |")


if __name__ == "__main__":
    main()
