"""Counts per annotation type, trivial baselines (random, position prior, longest answer) and the VCMR
ceiling of a SynthTV dir."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from synthtv.generate import read_episodes
from synthtv.script import event_key


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
    if queries:
        out["vcmr_ceiling"] = vcmr_ceiling(eps)
    return out


def _event_key(e: dict) -> tuple:
    """A record's event as the generator tells events apart (``synthtv.script.event_key``)."""
    return ("event", *event_key(SimpleNamespace(**e)))


def _line_key(rec: dict, line: dict) -> tuple | None:
    """What a query about this subtitle line asks for, wording aside (None: no query asks for it)."""
    if line["kind"] == "offscreen":
        o = line["offscreen"]
        return ("offscreen", o["relative"], o["verb"], o["thing"])
    if line["event"] is None or line["kind"] not in ("preview", "recall", "reaction"):
        return None
    said = line["text"] if line["kind"] == "reaction" else line["kind"]  # a reaction: its sentence
    return (said, _event_key(rec["events"][line["event"]]))


def _query_key(rec: dict, q: dict) -> tuple | None:
    """The content of a query's gold moment: the event (video queries) or the line (sub / both)."""
    span = (q["start"], q["end"])
    if q["type"] == "video":
        items, key = rec["events"], _event_key
    else:
        items, key = rec["subtitles"], lambda x: _line_key(rec, x)
    for x in items:
        if (round(x["start"], 2), round(x["end"], 2)) == span:
            return key(x)
    return None


def vcmr_ceiling(recs: list[dict]) -> dict:
    """The VCMR R@1 of an oracle over this corpus: it finds every moment whose content is the query's
    (the same actors doing the same thing; the same kind of line about the same event; the same
    off-screen story; the same reaction at the same event) but cannot tell those moments apart, so
    it ranks them at random: the mean over queries of 1 / (episodes holding the query's content).
    Queries are unique within their episode, not across a corpus: "the rocket leaves on the right"
    happens in many episodes, and no model can know which one was meant. Returns {"all", "video",
    "sub", "both", "median_episodes"}; a query whose moment is not found counts as unique."""
    where: dict[tuple, set[int]] = defaultdict(set)
    for i, r in enumerate(recs):
        for e in r["events"]:
            where[_event_key(e)].add(i)
        for line in r["subtitles"]:
            k = _line_key(r, line)
            if k is not None:
                where[k].add(i)
    shared: dict[str, list[int]] = defaultdict(list)  # query type -> episodes sharing each query's content
    for r in recs:
        for q in r["queries"]:
            k = _query_key(r, q)
            shared[q["type"]].append(1 if k is None else len(where[k]))  # its own episode is among them
    every = [n for v in shared.values() for n in v]
    if not every:
        return {}
    out = {"all": round(float(np.mean([1 / n for n in every])), 4)}
    out |= {t: round(float(np.mean([1 / n for n in v])), 4) for t, v in sorted(shared.items())}
    return out | {"median_episodes": float(np.median(every))}


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
    if s.get("vcmr_ceiling"):
        c = s["vcmr_ceiling"]
        lines.append(f"VCMR ceiling over these {s['episodes']} episodes (R@1 of an oracle that cannot tell apart "
                     "moments with the same content): " + ", ".join(f"{k} {v:.3f}" for k, v in c.items()
                                                                    if k != "median_episodes"))  # fmt: skip
    return "\n".join(lines)
