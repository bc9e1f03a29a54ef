"""Text -> video retrieval on SynthTV queries (the first stage of library search): COOT vs HERO.

    python -m training.compare_video_retrieval --data data/synthtv/test [--coot assets/coot] \
        [--hero assets/hero-mini] --json

Each query (TVR-style, ``episodes.jsonl`` queries) ranks every video of the set; R@1/5/10 of its gold
video, overall and per query type (video / sub / both).
- COOT, paragraph level: the query as a one-sentence paragraph -> paragraph embedding; a video ->
  video embedding over its proposed segments (``demo.captions.propose_segments``: what the app has at
  ingest; no gold caption segments). Cosine similarity (what a faiss inner-product index over unit
  vectors computes).
- COOT, clip level: max over a video's proposed clips of cos(sentence embedding, clip embedding).
- HERO (when a checkpoint exists): its VCMR video score, max over frames of cos(query, V_temp frame).
COOT sees frames only; HERO sees frames and subtitles, so "sub" queries are out of COOT's reach.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@torch.no_grad()
def coot_scores(
    coot, records: list[dict], feats: list[np.ndarray], queries: list[str]
) -> dict[str, np.ndarray]:
    from types import SimpleNamespace

    from demo.captions import frame_range, propose_segments
    from demo.subtitles import Subtitle
    from demo.text import token_features

    vids, clips = [], []
    for rec, f in zip(records, feats):
        subs = [Subtitle(s["start"], s["end"], s["text"]) for s in rec["subtitles"]]
        r = SimpleNamespace(
            features=f, frame_interval=1.5, meta=SimpleNamespace(duration=rec["duration"]), subtitles=subs
        )
        ranges = [frame_range(s, e, f.shape[0], 1.5) for s, e in propose_segments(r)]
        out = coot.encode_video(torch.from_numpy(f)[None], None, [ranges])
        vids.append(out.vid_emb[0].numpy())
        clips.append(_unit(out.clip_emb.numpy()))
    toks = token_features(queries)
    pars, sents = [], []
    for s in range(0, len(toks), 64):
        chunk = toks[s : s + 64]
        t_max = max(t.shape[0] for t in chunk)
        x = torch.zeros(len(chunk), t_max, chunk[0].shape[1])
        m = torch.zeros(len(chunk), t_max, dtype=torch.bool)
        for i, t in enumerate(chunk):
            x[i, : len(t)], m[i, : len(t)] = torch.from_numpy(t), True
        out = coot.encode_text(x, m, [[(0, len(t))] for t in chunk])
        pars.append(out.par_emb.numpy())
        sents.append(out.sent_emb.numpy())
    par, sent = _unit(np.concatenate(pars)), _unit(np.concatenate(sents))
    clip_level = np.stack([(sent @ c.T).max(1) for c in clips], axis=1)  # (Q, V)
    return {"coot_paragraph": par @ _unit(np.stack(vids)).T, "coot_clip_max": clip_level}


@torch.no_grad()
def hero_scores(checkpoint: str, data_dir: str) -> tuple[np.ndarray, list[str], list[int]]:
    from models.io import load_pretrained
    from training.data import load_split, pad
    from training.evaluate import encode_all

    model = load_pretrained(checkpoint).eval()
    eps = load_split(data_dir)
    enc = encode_all(model, eps)
    t_max, h = max(e.n for e in eps), enc[0].v_temp.shape[1]
    V, M = torch.zeros(len(eps), t_max, h), torch.zeros(len(eps), t_max)
    for i, x in enumerate(enc):
        V[i, : len(x.v_temp)], M[i, : len(x.v_temp)] = x.v_temp, 1
    qs = [(v, q) for v, e in enumerate(eps) for q in e.queries]
    out = []
    for s in range(0, len(qs), 128):
        ids, mask = pad([q.ids for _, q in qs[s : s + 128]])
        out.append(model.video_scores(model.encode_query(ids, mask).float(), V, M).numpy())
    return np.concatenate(out), [q.type for _, q in qs], [v for v, _ in qs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m training.compare_video_retrieval", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--data", required=True, help="a synthtv generate directory with features")
    ap.add_argument("--coot", default="assets/coot")
    ap.add_argument("--hero", default="assets/hero-mini", help="skipped when the directory does not exist")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from models.io import load_pretrained

    d = Path(args.data)
    records = [json.loads(x) for x in (d / "episodes.jsonl").read_text().splitlines() if x.strip()]
    feats = [np.load(d / r["features"]["path"]).astype(np.float32) for r in records]
    queries = [(v, q) for v, r in enumerate(records) for q in r["queries"]]
    texts, types = [q["text"] for _, q in queries], [q["type"] for _, q in queries]
    gold = np.array([v for v, _ in queries])
    results = {"n_videos": len(records), "n_queries": len(queries)}
    coot = load_pretrained(args.coot).eval()
    for name, s in coot_scores(coot, records, feats, texts).items():
        results[name] = recall(ranks_of_gold(s, gold), types)
    if Path(args.hero).is_dir():
        s, h_types, h_gold = hero_scores(args.hero, args.data)
        results["hero_max_over_frames"] = recall(ranks_of_gold(s, np.array(h_gold)), h_types)
    else:
        results["hero_max_over_frames"] = f"no checkpoint at {args.hero}"
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for k, v in results.items():
            print(k, v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
