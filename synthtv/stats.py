"""Counts per annotation type and trivial baselines (random, position prior, longest answer) of a SynthTV dir."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from synthtv.generate import read_episodes


def stats(data_dir: str | Path, seed: int = 0) -> dict:
    """{"episodes", "hours", counts per type, "answer_positions", "baselines": {...}} of DIR/episodes.jsonl."""
    from training.metrics import moment_recall, qa_accuracy

    eps = read_episodes(data_dir)
    rng = np.random.default_rng(seed)
    qa = [q for e in eps for q in e["qa"]]
    queries = [(e, q) for e in eps for q in e["queries"]]
    out = {
        "episodes": len(eps),
        "splits": dict(Counter(e["split"] for e in eps)),
        "hours": round(sum(e["duration"] for e in eps) / 3600, 3),
        "mean_duration": round(float(np.mean([e["duration"] for e in eps])), 1) if eps else 0.0,
        "frames": sum(e["n_frames"] for e in eps),
        "subtitles": dict(Counter(s["kind"] for e in eps for s in e["subtitles"])),
        "queries": dict(Counter(q["type"] for _, q in queries)),
        "qa": dict(Counter(q["type"] for q in qa)),
        "captions": sum(len(e["captions"]) for e in eps),
        "held_out": {"queries": sum(q["held_out"] for _, q in queries), "qa": sum(q["held_out"] for q in qa)},
        "answer_positions": [int(x) for x in np.bincount([q["answer_idx"] for q in qa], minlength=5)],
        "with_video": sum(e.get("video") is not None for e in eps),
        "with_features": sum(e.get("features") is not None for e in eps),
    }
    base: dict = {}
    if qa:
        gold = [q["answer_idx"] for q in qa]
        base["qa_random"] = qa_accuracy(rng.integers(0, 5, len(qa)), gold)
        top = int(np.argmax(out["answer_positions"]))
        base["qa_most_frequent_position"] = qa_accuracy([top] * len(qa), gold)
        longest = [int(np.argmax([len(c) for c in q["candidates"]])) for q in qa]
        base["qa_longest_candidate"] = qa_accuracy(longest, gold)
    if queries:
        golds = [(q["start"], q["end"]) for _, q in queries]
        med = float(np.median([q["end"] - q["start"] for _, q in queries]))
        rand = []
        for e, _ in queries:
            s = rng.uniform(0, max(0.0, e["duration"] - med), 10)
            rand.append([(a, a + med) for a in s])
        r = moment_recall(rand, golds)
        base["svmr_random"] = {
            k: r[k] for k in ("R1@0.5", "R1@0.7", "R5@0.5", "R5@0.7", "R10@0.5", "R10@0.7")
        }
        whole = moment_recall([[(0.0, e["duration"])] for e, _ in queries], golds, ks=(1,))
        base["svmr_whole_episode"] = whole
    out["baselines"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in base.items()}
    return out


def wer_words(text: str) -> list[str]:
    """The words WER compares: lower-cased, punctuation dropped."""
    import re

    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(ref: str, hyp: str) -> float:
    """WER after lower-casing and dropping punctuation (Levenshtein over words / reference words)."""
    r, h = wer_words(ref), wer_words(hyp)
    d = np.arange(len(h) + 1)
    for i, rw in enumerate(r, 1):
        nd = np.empty_like(d)
        nd[0] = i
        for j, hw in enumerate(h, 1):
            nd[j] = min(d[j] + 1, nd[j - 1] + 1, d[j - 1] + (rw != hw))
        d = nd
    return float(d[-1]) / max(1, len(r))


def format_stats(s: dict) -> str:
    lines = [
        f"episodes {s['episodes']} ({', '.join(f'{k} {v}' for k, v in s['splits'].items())}), "
        f"{s['hours']} h, mean {s['mean_duration']} s, {s['frames']} frames",
        "subtitles  " + ", ".join(f"{k} {v}" for k, v in sorted(s["subtitles"].items())),
        "queries    " + ", ".join(f"{k} {v}" for k, v in sorted(s["queries"].items())),
        "qa         " + ", ".join(f"{k} {v}" for k, v in sorted(s["qa"].items())),
        f"captions   {s['captions']}",
        f"held-out   queries {s['held_out']['queries']}, qa {s['held_out']['qa']}",
        f"answer positions {s['answer_positions']}",
        f"with video {s['with_video']}, with features {s['with_features']}",
        "trivial baselines:",
    ]
    for k, v in s["baselines"].items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk} {vv:.3f}" for kk, vv in v.items())
        else:
            v = f"{v:.3f}"
        lines.append(f"  {k:28s} {v}")
    return "\n".join(lines)
