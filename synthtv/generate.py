"""Generate SynthTV episodes in parallel: annotations, features (default) and optionally mp4 videos.

Workers (one process per core) build each episode and render its sampled frames (and its video). On a
GPU the main process runs the app's FrameEncoder on frames batched across episodes, so encoding never
waits on one short episode; on the CPU each worker encodes its own frames with one thread
(synthtv/encoder.py: the same EfficientNet-Lite0, folded and frozen, ~2x faster per core), so every
core encodes and only features travel back. Output layout (see synthtv/SCHEMA.md):
  DIR/episodes.jsonl               one annotation record per line, in seed order
  DIR/features/<episode_id>.npy    float16 (n_frames, 1280) EfficientNet-Lite0 features
  DIR/videos/<episode_id>.mp4      with --video: H.264 + AAC, speech mixed at the subtitle times
  DIR/meta.json                    the generation arguments and timing
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthtv.episode import build_episode, sample_times

ENCODER_INPUT = (
    224  # EfficientNet-Lite0's input size; frames are squashed to it with INTER_AREA like the encoder
)
DEFAULT_SIZE = (640, 360)
DEFAULT_FPS = 24  # frame centres (i + 0.5) * 1.5 s fall exactly on video frames when fps is a multiple of 4


@dataclass(frozen=True)
class Job:
    split: str
    seed: int
    width: int
    height: int
    fps: int
    video_dir: str | None
    features: bool
    crf: int = 28  # x264 quality of --video (lower: less codec loss, bigger files)
    extras: bool = False  # signs + sound effects with their queries (synthtv/extras.py); off: unchanged
    encode: bool = False  # encode the frames here on the CPU (synthtv/encoder.py) and return features


_IN_WORKER = False  # set in pool workers: one thread each, the pool spreads the work over the cores


def _init_worker() -> None:
    global _IN_WORKER
    import cv2

    _IN_WORKER = True
    cv2.setNumThreads(1)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"  # for a torch imported later
    if "torch" in sys.modules:  # a spawned worker re-imported a main module that imports torch
        sys.modules["torch"].set_num_threads(1)


def worker_pool(workers: int):
    """A pool of one-thread workers. Forked before torch is imported (forked children must not inherit
    torch's thread pools); a parent that already imported torch (tests, benchmarks, notebooks) spawns
    them instead: a fork after torch's OpenMP pool has run can deadlock the child in set_num_threads."""
    method = "spawn" if "torch" in sys.modules else "fork"
    return mp.get_context(method).Pool(workers, initializer=_init_worker)


def encoder_frames(frames: np.ndarray) -> np.ndarray:
    """Squash frames to the encoder's input size exactly as demo.features does (cv2 INTER_AREA), so
    workers ship 224x224 frames to the encoder and the encoder's own resize is the identity."""
    import cv2

    if frames.shape[1:3] == (ENCODER_INPUT, ENCODER_INPUT):
        return frames
    return np.stack(
        [cv2.resize(f, (ENCODER_INPUT, ENCODER_INPUT), interpolation=cv2.INTER_AREA) for f in frames]
    )


def run_job(job: Job) -> tuple[dict, np.ndarray | None, dict]:
    """Build one episode; returns its record, its sampled frames (encoder-sized; with job.encode their
    float32 features) or None, and seconds per stage."""
    from synthtv.render import iter_video_frames, render_frames

    t0 = time.perf_counter()
    record, world = build_episode(job.split, job.seed)
    record["size"] = [job.width, job.height]
    record["video"] = None
    record["features"] = None
    extras = None
    if job.extras:
        from synthtv import extras as ex

        extras = ex.add_extras(record)
    frames = None
    timings = {"script": time.perf_counter() - t0}
    if job.features:
        t = time.perf_counter()
        frames = render_frames(world, sample_times(world.duration), job.width, job.height)
        if extras:
            frames = ex.draw_frames(frames, sample_times(world.duration), extras)
        frames = encoder_frames(frames)
        timings["render"] = time.perf_counter() - t
        if job.encode:
            t = time.perf_counter()
            frames = _fast_encoder().encode(frames)
            timings["encode"] = time.perf_counter() - t
    if job.video_dir:
        from synthtv.audio import speech_track
        from synthtv.mp4 import write_mp4

        path = Path(job.video_dir) / f"{record['episode_id']}.mp4"
        video, audio = iter_video_frames(world, job.fps, job.width, job.height), speech_track(record)
        if extras:
            video, audio = ex.draw_video(video, job.fps, extras), ex.mix_sounds(audio, extras)
        write_mp4(path, video, job.fps, audio)
        record["video"] = {"path": f"videos/{path.name}", "fps": job.fps}
    return record, frames, timings


def _fast_encoder():
    import torch

    from synthtv.encoder import load_fast_features

    if _IN_WORKER and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return load_fast_features()


def generate(
    split: str,
    seed_start: int,
    count: int,
    out: str | Path,
    video: bool = False,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
    workers: int | None = None,
    device: str = "auto",
    features: bool = True,
    batch_frames: int = 512,
    progress: bool = True,
    crf: int = 28,
    extras: bool = False,
) -> dict:
    """Write `count` episodes of `split` from seed `seed_start` into `out`; returns timing stats."""
    out = Path(out)
    (out / "features").mkdir(parents=True, exist_ok=True)
    if video:
        (out / "videos").mkdir(exist_ok=True)
    if size[0] % 2 or size[1] % 2:
        raise ValueError("--size: width and height must be even (H.264)")
    workers = max(1, workers or os.cpu_count() or 1)
    t0 = time.perf_counter()
    pool = worker_pool(workers) if workers > 1 and count > 1 else None
    encoder = None  # the main process's batched encoder (GPU); None when workers encode (CPU)
    n_frames, t_encode = 0, 0.0
    stage_seconds: dict[str, float] = {}
    tmp = out / ".episodes.jsonl.tmp"
    pending: list[tuple[dict, np.ndarray | None]] = []

    def save(rec: dict, feats: np.ndarray, name: str, dim: int) -> None:
        nonlocal n_frames
        path = f"features/{rec['episode_id']}.npy"
        np.save(out / path, feats.astype(np.float16))
        rec["features"] = {"path": path, "encoder": name, "dim": int(dim), "dtype": "float16"}
        n_frames += len(feats)

    def flush(f) -> None:
        nonlocal t_encode
        if encoder is not None and pending:
            t = time.perf_counter()
            feats = encoder.encode(np.concatenate([fr for _, fr in pending])).features
            t_encode += time.perf_counter() - t
            i = 0
            for rec, fr in pending:
                save(rec, feats[i : i + len(fr)], encoder.name, encoder.dim)
                i += len(fr)
        for rec, _ in pending:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        pending.clear()

    try:
        workers_encode = False
        if features:
            from demo.features import EfficientNetLite0Encoder, load_frame_encoder, resolve_device

            workers_encode = resolve_device(device).type == "cpu"
            if not workers_encode:
                encoder = load_frame_encoder(device=device)
                encoder.batch_size = max(encoder.batch_size, batch_frames)  # GPUs want big batches
        jobs = [
            Job(split, s, size[0], size[1], fps, str(out / "videos") if video else None, features, crf,
                extras, workers_encode)
            for s in range(seed_start, seed_start + count)
        ]  # fmt: skip
        results = pool.imap(run_job, jobs, chunksize=1) if pool else map(run_job, jobs)
        from tqdm import tqdm

        with open(tmp, "w", encoding="utf-8") as f:
            for rec, fr, timings in tqdm(
                results, total=count, desc=f"synthtv {split}", unit="ep", disable=not progress
            ):
                for k, v in timings.items():
                    stage_seconds[k] = stage_seconds.get(k, 0.0) + v
                if workers_encode:
                    save(rec, fr, EfficientNetLite0Encoder.name, EfficientNetLite0Encoder.dim)
                    fr = None
                pending.append((rec, fr))
                if encoder is None or sum(len(x) for _, x in pending) >= batch_frames:
                    flush(f)
            flush(f)
    except BaseException:
        if pool:
            pool.terminate()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if pool:
            pool.close()
            pool.join()
    os.replace(tmp, out / "episodes.jsonl")
    elapsed = time.perf_counter() - t0
    if workers_encode:
        t_encode = stage_seconds.get("encode", 0.0)
    meta = {
        "split": split, "seed_start": seed_start, "count": count, "video": video, "size": list(size),
        "fps": fps, "crf": crf, "workers": workers,
        "device": "cpu (workers)" if workers_encode else str(getattr(encoder, "device", "none")),
        "seconds": round(elapsed, 2), "encode_seconds": round(t_encode, 2), "n_frames": n_frames,
        "episodes_per_minute": round(count / elapsed * 60, 1),
        # summed over workers (they run in parallel): where the time goes
        "stage_seconds": {k: round(v, 2) for k, v in stage_seconds.items()},
    }  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def read_episodes(path: str | Path) -> list[dict]:
    """All records of DIR/episodes.jsonl (or of a .jsonl file)."""
    path = Path(path)
    if path.is_dir():
        path = path / "episodes.jsonl"
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_features(data_dir: str | Path, record: dict) -> np.ndarray:
    """float16 (n_frames, dim) features of an episode."""
    return np.load(Path(data_dir) / record["features"]["path"])
