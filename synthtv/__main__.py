"""CLI: python -m synthtv generate|stats (see synthtv/generate.py and synthtv/SCHEMA.md)."""

from __future__ import annotations

import argparse
import json
import sys

from synthtv.world import SPLITS


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 640x360, got {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"{text}: width and height must be even and >= 16")
    return w, h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m synthtv", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write DIR/episodes.jsonl (+ features/, + videos/ with --video)")
    g.add_argument("--split", choices=SPLITS, required=True)
    g.add_argument("--seed-start", type=int, default=0, help="first seed within the split's range")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--video", action="store_true", help="also write mp4 files with speech")
    g.add_argument("--size", type=_size, default=(640, 360), help="frame size WxH (default 640x360)")
    g.add_argument(
        "--fps", type=int, default=24, help="video frame rate (multiple of 4 keeps sampling exact)"
    )
    g.add_argument(
        "--crf", type=int, default=28, help="x264 CRF of --video (default 28; 18: less codec loss)"
    )
    g.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="FrameEncoder device")
    g.add_argument("--no-features", action="store_true", help="skip frame features")
    g.add_argument(
        "--batch-frames",
        type=int,
        default=512,
        help="frames per GPU encoder call (across episodes; on the CPU each worker encodes its own)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument(
        "--extras",
        action="store_true",
        help="add signs and sound effects with their queries (synthtv/extras.py; needs pygame)",
    )
    s = sub.add_parser("stats", help="counts per type and trivial baselines")
    s.add_argument("dir")
    s.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    if a.cmd == "generate":
        from demo.errors import InputError
        from synthtv.generate import generate

        if a.count < 1 or a.seed_start < 0:
            print("synthtv: --count must be >= 1 and --seed-start >= 0", file=sys.stderr)
            return 2
        try:
            meta = generate(a.split, a.seed_start, a.count, a.out, video=a.video, size=a.size, fps=a.fps,
                            workers=a.workers, device=a.device, features=not a.no_features,
                            batch_frames=a.batch_frames, progress=not a.quiet, crf=a.crf,
                            extras=a.extras)  # fmt: skip
        except (ValueError, InputError) as e:
            print(f"synthtv: {e}", file=sys.stderr)
            return 2
        print(json.dumps(meta))
        return 0
    from pathlib import Path

    from synthtv.stats import format_stats, stats

    if not (Path(a.dir) / "episodes.jsonl").exists():
        print(f"synthtv: {a.dir}: no episodes.jsonl", file=sys.stderr)
        return 2
    st = stats(a.dir)
    print(json.dumps(st) if a.json else format_stats(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
