"""Ingest speed per stage: the sample, a 1-minute and a 10-minute video (the sample's pictures and speech
looped), each into a fresh library (no cache). Prints a markdown table.

    python -m benchmarks.bench_ingest [--threads 2] [--device cpu] [--lengths 60,600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from demo.library import Library
from demo.pipeline import IngestOptions, ingest
from demo.video import load_audio, probe, sample_frames

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "sample.mp4"


def looped_video(seconds: float, out: Path) -> Path:
    """The sample's frames and audio repeated to `seconds` (real decode and speech, longer)."""
    from synthtv.mp4 import write_mp4

    meta = probe(SAMPLE)
    frames = sample_frames(SAMPLE, meta, interval=1.0 / meta.fps)  # every decoded frame
    audio = load_audio(SAMPLE, meta)
    reps = int(np.ceil(seconds / meta.duration))
    n_frames = int(round(seconds * meta.fps))

    def gen():
        for i in range(n_frames):
            yield frames[i % len(frames)]

    write_mp4(out, gen(), meta.fps, np.tile(audio, reps)[: int(seconds * 16_000)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lengths", default="60,600", help="seconds of the looped videos")
    ap.add_argument("--tracks", default=None, help="concept tracks (default: the app's defaults; 'none')")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    tracks = tuple(args.tracks.split(",")) if args.tracks else None
    opts = IngestOptions(device=args.device, tracks=tracks)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [("sample (33 s)", SAMPLE)]
        for s in (float(x) for x in args.lengths.split(",") if x):
            videos.append((f"looped {s / 60:g} min", looped_video(s, tmp / f"loop{int(s)}.mp4")))
        # Warm up once (model loads, the one-time Whisper join) so the table shows steady-state costs.
        ingest(SAMPLE, library=Library(tmp / "warm"), options=opts)
        rows = []
        for name, path in videos:
            t = time.perf_counter()
            rec = ingest(path, library=Library(tmp / f"lib-{path.stem}"), options=opts)
            wall = time.perf_counter() - t
            tm = rec.timings
            rows.append((name, rec.meta.duration, tm.get("audio", 0), tm.get("asr", 0), tm.get("frames", 0),
                         tm.get("model", 0), wall, rec.meta.duration / wall))  # fmt: skip
    print(f"\nIngest, {args.device}, {args.threads} threads (seconds; RTF = video seconds per wall second)\n")
    print("| video | duration | audio | ASR | frames+features | HERO | total | RTF |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r[0]} | {r[1]:.0f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.2f} | {r[7]:.1f}x |"
        )


if __name__ == "__main__":
    main()
