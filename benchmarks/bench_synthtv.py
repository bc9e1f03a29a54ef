"""SynthTV benchmark: features-only generation speed, and codec loss (features of the decoded mp4 vs the
features-only features of the same frames, cosine per frame) at several x264 CRF values.

    python benchmarks/bench_synthtv.py [--count 20] [--workers W] [--device auto] [--codec-episodes 3]
        [--e2e 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_speed(count: int, workers: int | None, device: str, out: Path) -> dict:
    from synthtv.generate import generate

    meta = generate("train", 0, count, out, workers=workers, device=device, progress=False)
    per_1000 = meta["seconds"] / count * 1000 / 60
    return {**meta, "minutes_per_1000_episodes": round(per_1000, 1),
            "frames_per_second": round(meta["n_frames"] / meta["seconds"], 1),
            "encoder_frames_per_second": round(meta["n_frames"] / max(meta["encode_seconds"], 1e-9), 1)}  # fmt: skip


def bench_codec(n_episodes: int, crfs: list[int], device: str, size=(640, 360), fps: int = 24) -> dict:
    from demo.features import load_frame_encoder
    from demo.video import probe, sample_frames
    from synthtv.episode import build_episode, sample_times
    from synthtv.mp4 import write_mp4
    from synthtv.render import iter_video_frames, render_frames

    enc = load_frame_encoder(device=device)
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for crf in crfs:
            cos_all, psnr_all, bytes_per_s = [], [], []
            for seed in range(n_episodes):
                _, world = build_episode("test", seed)
                ref = render_frames(world, sample_times(world.duration), *size)
                path = Path(tmp) / f"{seed}-{crf}.mp4"
                write_mp4(path, iter_video_frames(world, fps, *size), fps, None, crf=crf)
                bytes_per_s.append(path.stat().st_size / world.duration)
                dec = sample_frames(path, probe(path))
                a, b = enc.encode(ref).features, enc.encode(dec).features
                cos_all.append((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
                mse = ((ref.astype(np.float32) - dec.astype(np.float32)) ** 2).mean(axis=(1, 2, 3))
                psnr_all.append(10 * np.log10(255**2 / np.maximum(mse, 1e-9)))
            cos, psnr = np.concatenate(cos_all), np.concatenate(psnr_all)
            res[f"crf{crf}"] = {
                "cosine_mean": round(float(cos.mean()), 4), "cosine_p5": round(float(np.percentile(cos, 5)), 4),
                "cosine_min": round(float(cos.min()), 4), "psnr_mean_db": round(float(psnr.mean()), 2),
                "kbit_per_s": round(float(np.mean(bytes_per_s)) * 8 / 1000, 1), "frames": int(len(cos)),
            }  # fmt: skip
    return res


def bench_e2e(n_episodes: int, device: str) -> dict:
    """Generate test episodes with --video, decode them with the app's reader: feature cosine and Whisper WER."""
    from demo.asr import transcribe
    from demo.features import load_frame_encoder
    from demo.video import load_audio, probe, sample_frames
    from synthtv.generate import generate, load_features, read_episodes
    from synthtv.stats import word_error_rate

    enc = load_frame_encoder(device=device)
    cos_all, wers = [], []
    with tempfile.TemporaryDirectory() as tmp:
        meta = generate("test", 0, n_episodes, tmp, video=True, device=device, progress=False)
        for rec in read_episodes(tmp):
            path = Path(tmp) / rec["video"]["path"]
            vm = probe(path)
            a = enc.encode(sample_frames(path, vm)).features
            b = load_features(tmp, rec).astype(np.float32)
            cos_all.append((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
            hyp = " ".join(s.text for s in transcribe(load_audio(path, vm), language="en").subtitles)
            wers.append(word_error_rate(" ".join(s["text"] for s in rec["subtitles"]), hyp))
    cos = np.concatenate(cos_all)
    return {"episodes": n_episodes, "video_generation_seconds": meta["seconds"],
            "cosine_mean": round(float(cos.mean()), 4), "cosine_p5": round(float(np.percentile(cos, 5)), 4),
            "cosine_min": round(float(cos.min()), 4), "wer_mean": round(float(np.mean(wers)), 4),
            "wer_max": round(float(np.max(wers)), 4)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--codec-episodes", type=int, default=3)
    p.add_argument("--crf", default="18,23,28")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--e2e", type=int, default=0, help="episodes for the video -> app reader -> Whisper check")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    out = {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}
    if not a.skip_speed:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            out["speed"] = bench_speed(a.count, a.workers, a.device, Path(tmp))
            out["speed"]["wall_seconds"] = round(time.perf_counter() - t, 2)
    if a.codec_episodes:
        out["codec_loss"] = bench_codec(a.codec_episodes, [int(c) for c in a.crf.split(",")], a.device)
    if a.e2e:
        out["e2e"] = bench_e2e(a.e2e, a.device)
    print(json.dumps(out, indent=None if a.json else 1))


if __name__ == "__main__":
    main()
