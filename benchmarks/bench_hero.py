"""Benchmark HERO encoding of a 10-minute video (400 frames at 1.5 s, ~150 subtitles of ~12 tokens).

    python -m benchmarks.bench_hero [--device cpu|cuda] [--threads 2] [--runs 10] [--models mini,official]
        [--no-malloc-tuning]

Random weights (speed does not depend on them). Prints a markdown table: model, device, params,
minimum and median seconds to encode the whole video (cross-modal + windowed temporal transformer,
as the app does at ingest), median milliseconds for one query (query encoder + heads + span
decoding) and for one 5-way question over the stored frames, median seconds for one question on the
official TVQA input (the video fused again once per candidate), plus the median process CPU seconds
of the encode (on a shared machine wall time exceeds CPU / threads) and the 1-minute load average
before and after. CPU runs tune glibc's allocator
as the app's HERO engine does (demo.engine.tune_cpu_allocator). CUDA runs use bf16 autocast.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from models.hero import build_hero, count_parameters, hero_mini_config, official_config
from models.hero_api import answer_candidates, encode_candidates, encode_queries, encode_video, search_moments


def synthetic_video(n_frames=400, n_subs=150, tokens=12, vfeat_dim=1280, vocab=30000, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n_frames, vfeat_dim, generator=g)
    subs = []
    per = n_frames / n_subs
    for s in range(n_subs):
        a = int(s * per)
        frames = list(range(a, min(n_frames, int((s + 1) * per) + 1)))  # 3-4 frames, shared edges
        n_tok = tokens + int(torch.randint(-3, 4, (1,), generator=g))
        subs.append((torch.randint(1000, vocab, (n_tok,), generator=g).tolist(), frames))
    return feats, subs


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(name, config, device, runs, n_frames, n_subs):
    torch.manual_seed(0)
    model = build_hero(config).to(device).eval()
    feats, subs = synthetic_video(n_frames, n_subs, vfeat_dim=config.vfeat_dim)
    query = torch.randint(1000, 30000, (14,)).tolist()
    question = torch.randint(1000, 30000, (12,)).tolist()
    answers = [torch.randint(1000, 30000, (5,)).tolist() for _ in range(5)]
    enc = encode_video(model, feats, subs)  # warm-up
    qv = encode_queries(model, [query])[0]
    search_moments(model, qv, enc.v_temp)
    cands = [[config.sep_token_id, *question, config.sep_token_id, *a] for a in answers]
    answer_candidates(model, encode_candidates(model, feats, subs, cands), cands)
    enc_t, enc_cpu, q_t, qa_t, tvqa_t = [], [], [], [], []
    for _ in range(runs):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        enc = encode_video(model, feats, subs)
        _sync(device)
        enc_t.append(time.perf_counter() - t)
        enc_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        qv = encode_queries(model, [query])[0]
        search_moments(model, qv, enc.v_temp, top_k=10)
        _sync(device)
        q_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        answer_candidates(model, enc.fused, cands)
        _sync(device)
        qa_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        answer_candidates(model, encode_candidates(model, feats, subs, cands), cands)
        _sync(device)
        tvqa_t.append(time.perf_counter() - t)
    return {
        "model": name,
        "device": device.type + (" bf16" if device.type == "cuda" else f" {torch.get_num_threads()} thr"),
        "params": f"{count_parameters(model) / 1e6:.1f} M",
        "encode_min_s": min(enc_t),
        "encode_s": statistics.median(enc_t),
        "encode_cpu_s": statistics.median(enc_cpu),
        "query_ms": statistics.median(q_t) * 1e3,
        "qa_ms": statistics.median(qa_t) * 1e3,
        "tvqa_s": statistics.median(tvqa_t),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--models", default="mini,official")
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--subs", type=int, default=150)
    ap.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default allocator settings")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    tuned = False
    if device.type == "cpu" and not a.no_malloc_tuning:
        from demo.engine import tune_cpu_allocator

        tuned = tune_cpu_allocator()
    configs = {
        "hero-mini": hero_mini_config("app", vfeat_dim=1280),
        "official (768-d)": official_config("app"),
    }
    pick = {"mini": "hero-mini", "official": "official (768-d)"}
    load0 = os.getloadavg()[0]
    rows = [bench(pick[m], configs[pick[m]], device, a.runs, a.frames, a.subs) for m in a.models.split(",")]
    load1 = os.getloadavg()[0]
    print(
        f"Encoding a {a.frames * 1.5 / 60:.0f}-minute video ({a.frames} frames, {a.subs} subtitles), "
        f"{a.runs} runs; load average {load0:.1f} before, {load1:.1f} after"
        + ("; glibc allocator tuned" if tuned else "")
        + "\n"
    )
    print(
        "| model | device | params | encode video, min / median (s) | process CPU (s) | one query (ms) "
        "| one question, cached frames (ms) | one question, official TVQA input (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['device']} | {r['params']} | {r['encode_min_s']:.3f} / {r['encode_s']:.3f} | "
            f"{r['encode_cpu_s']:.2f} | {r['query_ms']:.1f} | {r['qa_ms']:.1f} | {r['tvqa_s']:.2f} |"
        )
    print("\nprocess CPU = median CPU seconds of this process (all threads): wall >> CPU / threads means")
    print("the machine was busy with other work. One question: 5 candidates; cached frames = the states")
    print("stored at ingest (answer_candidates); official TVQA input = each candidate appended to every")
    print("subtitle and the video fused again per candidate (encode_candidates, config.qa_in_subtitles).")


if __name__ == "__main__":
    main()
