"""SynthTV benchmark: features-only generation speed (markdown table; per 1,000 episodes extrapolated
linearly), and codec loss (features of the decoded mp4 vs the features-only features of the same frames,
cosine per frame) at several x264 CRF values.

    python -m benchmarks.bench_synthtv [--count 60] [--repeats 2] [--workers W] [--device auto]
        [--baseline] [--codec-episodes 3] [--e2e 4] [--json]

--baseline also times the previous CPU pipeline (workers only render; the main process runs the app's
FrameEncoder on frames batched across episodes) on the same episodes, for a before/after on one machine.
The machine's load average is printed with every run: on a shared machine wall times are upper bounds;
"CPU s / cores" (CPU time of the run and its workers over the core count) estimates a quiet machine's wall
time (the previous pipeline's two encoder threads also count OpenMP spin-waiting, so its estimate is high).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def baseline_generate(count: int, workers: int | None) -> dict:
    """The CPU pipeline before synthtv/encoder.py: workers render, the main process encodes with the app's
    FrameEncoder (default threads) in batches of 512 frames across episodes. Times only; writes nothing."""
    from synthtv.generate import DEFAULT_FPS, DEFAULT_SIZE, Job, run_job, worker_pool

    workers = max(1, workers or os.cpu_count() or 1)
    t0 = time.perf_counter()
    pool = worker_pool(workers) if workers > 1 else None
    from demo.features import load_frame_encoder

    enc = load_frame_encoder(device="cpu")
    jobs = [Job("train", s, *DEFAULT_SIZE, DEFAULT_FPS, None, True) for s in range(count)]
    n_frames, t_encode, pending = 0, 0.0, []
    try:
        for _, frames, _ in pool.imap(run_job, jobs, chunksize=1) if pool else map(run_job, jobs):
            pending.append(frames)
            if sum(map(len, pending)) >= 512:
                t = time.perf_counter()
                n_frames += len(enc.encode(np.concatenate(pending)).features)
                t_encode += time.perf_counter() - t
                pending.clear()
        if pending:
            t = time.perf_counter()
            n_frames += len(enc.encode(np.concatenate(pending)).features)
            t_encode += time.perf_counter() - t
    finally:
        if pool:
            pool.close()
            pool.join()
    return {"seconds": round(time.perf_counter() - t0, 2), "n_frames": n_frames, "workers": workers,
            "encode_seconds": round(t_encode, 2), "stage_seconds": {"encode (main)": round(t_encode, 2)}}  # fmt: skip


def bench_speed(count: int, workers: int | None, device: str, repeats: int, baseline: bool) -> list[dict]:
    """Features-only generation of train episodes 0..count-1, `repeats` times per pipeline; one row each."""
    from synthtv.generate import generate

    rows = []
    pipelines = [("now", False)] + ([("before (app encoder in main)", True)] if baseline else [])
    for _ in range(repeats):
        for name, is_baseline in pipelines:
            load0, cpu0 = os.getloadavg()[0], _cpu_seconds()
            with tempfile.TemporaryDirectory() as tmp:
                if is_baseline:
                    meta = baseline_generate(count, workers)
                else:
                    meta = generate("train", 0, count, tmp, workers=workers, device=device, progress=False)
            rows.append({
                "pipeline": name, "episodes": count, "workers": meta["workers"], "n_frames": meta["n_frames"],
                "seconds": meta["seconds"], "episodes_per_minute": round(count / meta["seconds"] * 60, 1),
                "minutes_per_1000_episodes": round(meta["seconds"] / count * 1000 / 60, 1),
                "frames_per_second": round(meta["n_frames"] / meta["seconds"], 1),
                "stage_seconds": meta.get("stage_seconds", {}), "device": meta.get("device", "cpu"),
                "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
                "cpu_seconds": round(_cpu_seconds() - cpu0, 1),
            })  # fmt: skip
    return rows


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the pool's workers)."""
    import resource

    return sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def speed_table(rows: list[dict]) -> str:
    """Markdown; "CPU s / cores": the wall time all cores would need if nothing else ran (an estimate)."""
    cores = os.cpu_count() or 1
    best = {}
    for r in rows:
        if r["pipeline"] not in best or r["seconds"] < best[r["pipeline"]]["seconds"]:
            best[r["pipeline"]] = r
    lines = [
        "| pipeline | run | workers | episodes | frames | wall s | episodes/min | min per 1,000 (linear) "
        "| frames/s | CPU s | CPU s / cores per 1,000, min | stage s, summed over workers "
        "| load avg 1 min (start -> end) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for i, r in enumerate(rows):
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stage_seconds"].items())
        run = "**min**" if best[r["pipeline"]] is r else str(i // len(best) + 1)
        lines.append(
            f"| {r['pipeline']} | {run} | {r['workers']} | {r['episodes']} | {r['n_frames']} | {r['seconds']:.1f} "
            f"| {r['episodes_per_minute']} | {r['minutes_per_1000_episodes']} | {r['frames_per_second']} "
            f"| {r['cpu_seconds']:.0f} | {r['cpu_seconds'] / cores / r['episodes'] * 1000 / 60:.1f} | {stages} | {r['load_avg_1min'][0]} -> {r['load_avg_1min'][1]} |"
        )
    return "\n".join(lines)


def bench_codec(n_episodes: int, crfs: list[int], device: str, size=(640, 360), fps: int = 24) -> dict:
    from demo.features import load_frame_encoder
    from demo.video import probe, sample_frames
    from synthtv.episode import build_episode, sample_times
    from synthtv.mp4 import write_mp4
    from synthtv.render import iter_video_frames, render_frames

    enc = load_frame_encoder(device=device)
    fast = None
    if enc.device.type == "cpu":  # what CPU generation stores: synthtv/encoder.py, float16
        from synthtv.encoder import load_fast_features
        from synthtv.generate import encoder_frames

        fast = load_fast_features()
    res: dict = {}
    rounding: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for crf in crfs:
            cos_all, psnr_all, bytes_per_s, cos_gen = [], [], [], []
            for seed in range(n_episodes):
                _, world = build_episode("test", seed)
                ref = render_frames(world, sample_times(world.duration), *size)
                path = Path(tmp) / f"{seed}-{crf}.mp4"
                write_mp4(path, iter_video_frames(world, fps, *size), fps, None, crf=crf)
                bytes_per_s.append(path.stat().st_size / world.duration)
                dec = sample_frames(path, probe(path))
                a, b = enc.encode(ref).features, enc.encode(dec).features
                cos_all.append(_cosine(a, b))
                if fast is not None:
                    g = fast.encode(encoder_frames(ref)).astype(np.float16).astype(np.float32)
                    rounding.append(float(np.abs(g - a).max()))
                    cos_gen.append(_cosine(g, b))
                mse = ((ref.astype(np.float32) - dec.astype(np.float32)) ** 2).mean(axis=(1, 2, 3))
                psnr_all.append(10 * np.log10(255**2 / np.maximum(mse, 1e-9)))
            cos, psnr = np.concatenate(cos_all), np.concatenate(psnr_all)
            res[f"crf{crf}"] = {
                "cosine_mean": round(float(cos.mean()), 4), "cosine_p5": round(float(np.percentile(cos, 5)), 4),
                "cosine_min": round(float(cos.min()), 4), "psnr_mean_db": round(float(psnr.mean()), 2),
                "kbit_per_s": round(float(np.mean(bytes_per_s)) * 8 / 1000, 1), "frames": int(len(cos)),
            }  # fmt: skip
            if cos_gen:  # the stored features (generation's encoder, float16) vs the app on the mp4
                res[f"crf{crf}"]["generated_cosine_mean"] = round(float(np.concatenate(cos_gen).mean()), 4)
    if rounding:
        res["generation_encoder_vs_app_max_abs"] = float(f"{max(rounding):.3g}")
    return res


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


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
    p.add_argument("--count", type=int, default=60, help="train episodes per speed run")
    p.add_argument("--repeats", type=int, default=2, help="speed runs per pipeline; the table marks the min")
    p.add_argument("--baseline", action="store_true", help="also time the previous CPU pipeline")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--codec-episodes", type=int, default=0, help="test episodes for codec loss (e.g. 3)")
    p.add_argument("--crf", default="18,23,28")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--e2e", type=int, default=0, help="episodes for the video -> app reader -> Whisper check")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    out = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()}
    if not a.skip_speed:
        out["speed"] = bench_speed(a.count, a.workers, a.device, a.repeats, a.baseline)
        if not a.json:
            print(f"\nSynthTV features-only generation, train episodes 0..{a.count - 1}, {os.cpu_count()} CPUs "
                  f"(load average at start {out['load_avg_start'][0]:.2f}; other jobs slow every run)\n")  # fmt: skip
            print(speed_table(out["speed"]))
    if a.codec_episodes:
        out["codec_loss"] = bench_codec(a.codec_episodes, [int(c) for c in a.crf.split(",")], a.device)
    if a.e2e:
        out["e2e"] = bench_e2e(a.e2e, a.device)
    out["load_avg_end"] = os.getloadavg()
    if a.json:
        print(json.dumps(out))
    elif "codec_loss" in out or "e2e" in out:
        print("\n" + json.dumps({k: out[k] for k in ("codec_loss", "e2e") if k in out}, indent=1))


if __name__ == "__main__":
    main()
