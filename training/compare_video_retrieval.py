"""Library search on SynthTV, first stage (which videos) and the moments after it: COOT vs HERO vs the text
matcher, with the app's own code (``demo.search``).

    python -m training.compare_video_retrieval --data data/synthtv/test [data/synthtv/test_b] \
        [--hero DIR] [--coot assets/coot] [--candidates 20] [--speaker-names] [--json]

Every moment query of every episode (TVR-style, ``episodes.jsonl``) searches all videos of the given
directories together (VCMR). Each episode becomes a ``VideoRecord`` as the app would hold it: gold
subtitles (plain text as Whisper gives them; ``--speaker-names``: "Speaker: text" as HERO is trained),
the stored EfficientNet-Lite0 features and their top-3 ImageNet concepts (no perception tracks).

First stages (``demo.search.FIRST_STAGES``; a video's score is its best row's cosine, what the app's faiss
index computes): ``text`` (MiniLM vs subtitles + frame concepts: the app's first stage without a HERO
checkpoint), ``hero`` (HERO's max-over-frames VCMR video score), ``hero+text`` (the two weighed as the
app weighs moments: its first stage with a HERO checkpoint), ``coot`` (COOT paragraph vs video
embedding over ``propose_segments``), ``coot-clips`` (COOT sentence vs each proposed clip), and
``oracle`` (the gold video alone: the second stage's ceiling).
-> R@1/5/10 of the gold video, overall and per query type (video / sub / both).

Second stage (``demo.search.moments_in_videos``, the app's library search): the first stage's top
``--candidates`` videos, ``search_moments`` in each (the text matcher, and HERO+text when ``--hero`` is
given), each moment weighed by its video's score -> VCMR R@{1,5,10} at IoU 0.5 / 0.7 (``metrics``).
With ``--hero``, HERO's own full VCMR (``training.evaluate``: exp(20 cos) over all videos, P_st * P_ed,
speaker-named subtitles as trained) is reported too.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def ranks_of_gold(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """scores (Q, V), gold (Q,) video index -> 0-based rank of the gold video (ties count against it)."""
    g = scores[np.arange(len(gold)), gold][:, None]
    return (scores > g).sum(1) + (scores == g).sum(1) - 1


def recall(ranks: np.ndarray, types: list[str]) -> dict:
    def r(x):
        return {f"R{k}": float((x < k).mean()) for k in (1, 5, 10)} | {"n": int(len(x))}

    out = {"all": r(ranks)}
    for t in sorted(set(types)):
        out[t] = r(ranks[np.array(types) == t])
    return out


def load_records(dirs: list[str], speaker_names: bool = False) -> tuple[list, list[dict]]:
    """SynthTV directories -> (VideoRecords as the app holds them, the episodes' JSON records)."""
    from demo.library import VideoRecord
    from demo.subtitles import Subtitle
    from demo.video import VideoMeta
    from training.data import frame_concepts, subtitle_text

    records, eps = [], []
    for d in map(Path, dirs):
        for line in (d / "episodes.jsonl").read_text().splitlines():
            if not line.strip():
                continue
            ep = json.loads(line)
            feats = np.load(d / ep["features"]["path"]).astype(np.float32)
            subs = [Subtitle(s["start"], s["end"], subtitle_text(s, speaker_names)) for s in ep["subtitles"]]
            meta = VideoMeta(ep["duration"], 0.0, 0, 0, 0, True)
            rec = VideoRecord(
                video_id=ep["episode_id"], source_name=ep["episode_id"], meta=meta,
                frame_interval=ep["frame_interval"], subtitles=subs, subtitles_source="gold",
                language="en", concepts=frame_concepts(feats, 3), features=feats,
                feature_encoder=ep["features"]["encoder"],
            )  # fmt: skip
            records.append(rec)
            eps.append(ep)
    ids = [r.video_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("two directories hold the same episode ids")
    return records, eps


def first_stage_scores(
    records, texts: list[str], stage: str, engine, cache: dict | None = None
) -> np.ndarray:
    """(Q, V) first-stage video scores: per video, the best row's cosine; fused stages weigh their parts
    (= demo.search.rank_videos over every row)."""
    from demo.search import FUSED, fuse_first_stage, query_rows, video_rows

    cache = {} if cache is None else cache
    if stage in FUSED:
        return fuse_first_stage(
            *(first_stage_scores(records, texts, part, engine, cache) for part in FUSED[stage]), engine.gate
        )
    if stage not in cache:
        q = query_rows(texts, stage, engine)  # (Q, d)
        cache[stage] = np.stack([(q @ video_rows(r, stage, engine).T).max(1) for r in records], axis=1)
    return cache[stage]


def cached_search():
    """``search_moments`` memoised per (video, query, scorer): the second stage of a candidate video does
    not depend on the first stage that picked it. Returns copies (the caller reweighs scores)."""
    from demo.search import search_moments

    memo: dict = {}

    def search(record, query, top_k, engine):
        key = (record.video_id, query, top_k, engine is not None)
        if key not in memo:
            memo[key] = search_moments(record, query, top_k=top_k, engine=engine)
        return copy.deepcopy(memo[key])

    return search


def second_stage(records, queries, scores: np.ndarray, engine, candidates: int, search) -> dict:
    """VCMR metrics of the app's library search given first-stage scores (Q, V)."""
    from demo.search import moments_in_videos
    from training.metrics import moment_recall

    by_id = {r.video_id: r for r in records}
    preds, golds, types = [], [], []
    for qi, (v, q) in enumerate(queries):
        order = np.argsort(-scores[qi], kind="stable")[:candidates]
        ranked = [(records[j].video_id, float(scores[qi, j])) for j in order]
        ms = moments_in_videos(by_id, q["text"], ranked, engine, top_k=10, search=search)
        preds.append([(m.video_id, m.start, m.end) for m in ms])
        golds.append((records[v].video_id, q["start"], q["end"]))
        types.append(q["type"])
    out = {"all": moment_recall(preds, golds)}
    for t in sorted(set(types)):
        idx = [i for i, x in enumerate(types) if x == t]
        out[t] = moment_recall([preds[i] for i in idx], [golds[i] for i in idx])
    return out


def hero_official_vcmr(checkpoint: str, dirs: list[str]) -> dict:
    """HERO alone, as ``training.evaluate`` measures it (all videos of ``dirs`` as one corpus)."""
    from models.io import load_pretrained
    from training.data import load_split
    from training.evaluate import evaluate

    model = load_pretrained(checkpoint).eval()
    eps = [e for d in dirs for e in load_split(d)]
    res = evaluate(model, eps, tasks=("vcmr",))
    return {"vcmr": res["vcmr"], "vcmr_by_type": res["vcmr_by_type"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m training.compare_video_retrieval", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--data", nargs="+", required=True, help="synthtv generate directories (with features)")
    ap.add_argument("--coot", default="assets/coot")
    ap.add_argument("--hero", default="assets/hero-mini", help="HERO checkpoint; skipped when absent")
    ap.add_argument("--candidates", type=int, default=20, help="first-stage videos per query (app default)")
    ap.add_argument("--speaker-names", action="store_true", help='subtitles as "Speaker: text"')
    ap.add_argument("--stages", default="text,hero,hero+text,coot,coot-clips,oracle")
    ap.add_argument("--no-second-stage", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import os

    os.environ["HEROVID_COOT"] = args.coot
    from demo.engine import HeroEngine

    t0 = time.perf_counter()
    records, eps = load_records(args.data, args.speaker_names)
    queries = [(v, q) for v, e in enumerate(eps) for q in e["queries"]]
    texts, types = [q["text"] for _, q in queries], [q["type"] for _, q in queries]
    gold = np.array([v for v, _ in queries])
    engine = HeroEngine(args.hero, device="cpu") if Path(args.hero, "model.safetensors").is_file() else None
    res: dict = {
        "data": args.data, "n_videos": len(records), "n_queries": len(queries),
        "hero": args.hero if engine else f"no checkpoint at {args.hero}", "coot": args.coot,
        "candidates": args.candidates, "speaker_names": args.speaker_names,
        "first_stage": {}, "vcmr": {},
    }  # fmt: skip
    scorers = [None] + ([engine] if engine else [])
    search, cache = cached_search(), {}
    for stage in args.stages.split(","):
        if stage.startswith("hero") and engine is None:
            continue
        if stage == "oracle":
            s = np.zeros((len(queries), len(records)))
            s[np.arange(len(queries)), gold] = 1.0
        else:
            s = first_stage_scores(records, texts, stage, engine, cache)
            res["first_stage"][stage] = recall(ranks_of_gold(s, gold), types)
        if args.no_second_stage:
            continue
        for eng in scorers:
            name = f"{stage} -> {'hero+text' if eng else 'text'}"
            res["vcmr"][name] = second_stage(records, queries, s, eng, args.candidates, search)
            print(f"{name}: {res['vcmr'][name]['all']}", file=sys.stderr)
    if engine is not None and not args.no_second_stage:
        res["hero_official_vcmr"] = hero_official_vcmr(args.hero, args.data)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        for stage, r in res["first_stage"].items():
            print(f"first stage {stage:11s}", " ".join(f"{t} {x['R1']:.3f}/{x['R5']:.3f}/{x['R10']:.3f}"
                                                       for t, x in r.items()))  # fmt: skip
        for name, r in res["vcmr"].items():
            print(f"VCMR {name:24s}", " ".join(f"{t} {x['R1@0.5']:.3f}" for t, x in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
