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
    ap.add_argument(
        "--tracks", default=None, help="concept tracks, comma-separated (default: the app's; 'none')"
    )
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
            core = sum(tm.get(k, 0) for k in ("probe", "audio", "asr", "frames"))
            tracks = sum(tm.get(k, 0) for k in ("objects+text", "sounds", "actions"))
            rows.append([name, rec.meta.duration, tm.get("asr", 0), tm.get("frames", 0), tm.get("features", 0),
                         core, tm.get("objects+text", 0), tm.get("sounds", 0), tracks, tm.get("model", 0), wall,
                         rec.meta.duration / wall])  # fmt: skip
    print(f"\nIngest, {args.device}, {args.threads} threads, tracks={args.tracks or 'default'} (seconds)\n")
    print(
        "| video | duration | ASR | decode+features | (features) | core: decode+ASR+features "
        "| objects+screen text | sounds | all tracks | HERO | total wall | realtime factor |"
    )
    print("|---|" + "---:|" * 11)
    for r in rows:
        print(
            "| "
            + " | ".join([r[0], f"{r[1]:.0f}"] + [f"{x:.2f}" for x in r[2:11]] + [f"{r[11]:.1f}x"])
            + " |"
        )


if __name__ == "__main__":
    main()
