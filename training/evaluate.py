"""Evaluate a HERO app checkpoint on SynthTV: SVMR / VCMR R@{1,5,10}@{0.5,0.7} and 5-way QA accuracy.

    python -m training.evaluate [--checkpoint DIR_OR_REPO] --data DIR [--from-video] [--json]

Inference is the app's: videos are encoded once (``hero_api.encode_videos``: windows, cached
``v_temp`` / ``fused``); SVMR decodes each query's start/end on its own video
(``hero_heads.decode_moments``, = ``hero_api.search_moments``); VCMR scores every video of the split
(official eval_vcmr: exp(20 cos) video scores, top 100 videos, P_st * P_ed * video score, NMS 0.5,
= ``hero_api.search_corpus``); QA scores the 5 candidates over the cached fused frames
(``qa_heads`` as in ``hero_api.answer_candidates``). With ``--from-video`` the app's pipeline
(decode, Whisper subtitles, features) replaces the gold subtitles and pre-rendered features.
Output JSON: {"svmr": {R1@0.5, ...}, "vcmr": {...}, "qa": {"accuracy", "evidence_iou"},
"svmr_by_type", "vcmr_by_type", "qa_by_type", "n_episodes", "n_queries", "n_questions", ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from models import hero_heads
from models.hero_api import default_window, encode_videos
from training import common
from training.data import FLAT_MAX_TOKENS, Episode, load_split, pad, video_inputs
from training.metrics import by_type, moment_recall, qa_accuracy

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "hero-mini"


@torch.no_grad()
def encode_all(model, eps: list[Episode], variant="full", concepts=False, batch_size=32):
    """Episodes -> list of VideoEncoding (v_temp, fused (n, H) float32 CPU)."""
    out = []
    for s in range(0, len(eps), batch_size):
        videos = [video_inputs(e, variant, concepts) for e in eps[s : s + batch_size]]
        out += encode_videos(model, videos, max_sub_tokens=FLAT_MAX_TOKENS if variant == "flat" else 128)
    return out


def _iou(a0, a1, b0, b1) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 0.0


@torch.no_grad()
def evaluate(model, eps: list[Episode], variant: str = "full", concepts: bool | None = None,
             device=None, tasks=("svmr", "vcmr", "qa"), q_chunk: int = 128) -> dict:  # fmt: skip
    """Metrics of ``model`` on ``eps`` (see module docstring)."""
    device = torch.device(device) if device else next(model.parameters()).device
    if concepts is None:
        concepts = model.config.concept_tokens > 0
    model.eval()
    fi = model.config.frame_interval
    t0 = time.perf_counter()
    enc = encode_all(model, eps, variant, concepts)
    res: dict = {"n_episodes": len(eps), "variant": variant, "concepts": bool(concepts)}
    qs = [(v, q) for v, e in enumerate(eps) for q in e.queries]
    if qs and ("svmr" in tasks or "vcmr" in tasks):
        T = max(e.n for e in eps)
        H = enc[0].v_temp.shape[1]
        V = torch.zeros(len(eps), T, H, device=device)
        M = torch.zeros(len(eps), T, device=device)
        for i, x in enumerate(enc):
            V[i, : len(x.v_temp)] = x.v_temp.to(device)
            M[i, : len(x.v_temp)] = 1
        types = [q.type for _, q in qs]
        svmr, vcmr = [], []
        for s in range(0, len(qs), q_chunk):
            chunk = qs[s : s + q_chunk]
            ids, mask = pad([q.ids for _, q in chunk])
            with common.autocast(device):
                qv = model.encode_query(ids.to(device), mask.to(device)).float()
            vidx = torch.tensor([v for v, _ in chunk], device=device)
            if "svmr" in tasks:
                st, ed = model.span_logits(qv, V[vidx], M[vidx], cross=False)  # (q, T)
                st, ed = st.float().cpu(), ed.float().cpu()
                for j, (v, _) in enumerate(chunk):
                    n = eps[v].n
                    ms = hero_heads.decode_moments(
                        st[j, :n].cpu(), ed[j, :n].cpu(), frame_interval=fi, top_k=10
                    )
                    svmr.append([(m["start"], m["end"]) for m in ms])
            if "vcmr" in tasks:
                st, ed = model.span_logits(qv, V, M, cross=True)  # (q, Nv, T)
                vs = model.video_scores(qv, V, M)  # (q, Nv)
                # decode on the CPU: NMS is a short Python loop, one GPU sync per step otherwise
                st, ed, vs, Mc = st.float().cpu(), ed.float().cpu(), vs.float().cpu(), M.cpu()
                for j in range(len(chunk)):
                    ms = hero_heads.decode_corpus_moments(
                        st[j], ed[j], Mc, vs[j], frame_interval=fi, top_k=10
                    )
                    vcmr.append([(eps[m["video_index"]].id, m["start"], m["end"]) for m in ms])
        if svmr:
            golds = [(q.start, q.end) for _, q in qs]
            res["svmr"] = moment_recall(svmr, golds)
            res["svmr_by_type"] = by_type(moment_recall, types, svmr, golds)
        if vcmr:
            golds = [(eps[v].id, q.start, q.end) for v, q in qs]
            res["vcmr"] = moment_recall(vcmr, golds)
            res["vcmr_by_type"] = by_type(moment_recall, types, vcmr, golds)
        res["n_queries"] = len(qs)
    items = [(v, q) for v, e in enumerate(eps) for q in e.qa]
    if items and "qa" in tasks:
        window = default_window(model.config)
        preds, ious = [], []
        for v, e in enumerate(eps):
            if not e.qa:
                continue
            fused = enc[v].fused.to(device)
            if e.n > window:  # long video: the app's windowed path, one question at a time
                from models.hero_api import answer_candidates

                for q in e.qa:
                    r = answer_candidates(model, enc[v].fused, q.ids)
                    preds.append(r["answer_index"])
                    ious.append(_iou(r["st_idx"] * fi, (r["ed_idx"] + 1) * fi, q.start, q.end))
                continue
            ids, qmask = pad([x for q in e.qa for x in q.ids])
            C = len(e.qa[0].ids)
            rows = ids.shape[0]
            frames = fused[None].expand(rows, -1, -1)
            fmask = torch.ones(rows, e.n, device=device)
            with common.autocast(device):
                o = model.qa_heads(frames, fmask, ids.to(device), qmask.to(device), num_candidates=C)
            for j, q in enumerate(e.qa):
                preds.append(int(o.logits[j].float().argmax()))
                st, ed = hero_heads.decode_evidence(
                    o.st_logits[j].float().cpu(), o.ed_logits[j].float().cpu()
                )
                ious.append(_iou(st * fi, (ed + 1) * fi, q.start, q.end))
        gold = [q.answer for _, q in items]
        qtypes = [q.type for _, q in items]
        res["qa"] = {"accuracy": qa_accuracy(preds, gold), "evidence_iou": float(np.mean(ious))}
        res["qa_by_type"] = by_type(qa_accuracy, qtypes, preds, gold)
        held = [i for i, (_, q) in enumerate(items) if q.held_out]
        if held:
            res["qa"]["held_out_accuracy"] = qa_accuracy([preds[i] for i in held], [gold[i] for i in held])
        res["n_questions"] = len(items)
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res


def load_from_video(data_dir: Path, concepts: int, limit: int | None = None) -> list[Episode]:
    """Episodes whose subtitles and features come from the app's ingest of DIR/videos/*.mp4."""
    import tempfile

    from demo.library import Library
    from demo.pipeline import ingest
    from synthtv.generate import read_episodes
    from training.data import load_records

    recs = [r for r in read_episodes(data_dir) if r.get("video")][:limit]
    if not recs:
        raise ValueError(f"{data_dir}: no episode has a video (generate with --video)")
    feats, subs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp))
        for r in common.progress(recs, len(recs), "ingest"):
            rec = ingest(str(data_dir / r["video"]["path"]), library=lib)
            feats.append(np.asarray(rec.features, np.float32))
            subs.append(list(rec.subtitles))
    return load_records(recs, feats, concepts=concepts, subs=subs)


def main(argv=None) -> int:
    from models.io import load_pretrained

    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="model dir or hub repo id")
    p.add_argument("--data", required=True, help="SynthTV dir (episodes.jsonl + features/ [+ videos/])")
    p.add_argument("--from-video", action="store_true", help="run the app's ingest on DIR/videos")
    p.add_argument("--variant", default="full", help="input ablation the checkpoint was trained with")
    p.add_argument("--limit", type=int, default=None, help="first N episodes only")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    data = Path(a.data)
    if not (data / "episodes.jsonl").is_file():
        print(f"training.evaluate: {data}: no episodes.jsonl", file=sys.stderr)
        return 2
    try:
        model = load_pretrained(a.checkpoint, device=common.resolve_device(a.device))
    except (FileNotFoundError, ValueError) as e:
        print(f"training.evaluate: {a.checkpoint}: {e}", file=sys.stderr)
        return 2
    k = getattr(model.config, "concept_tokens", 0)
    try:
        eps = load_from_video(data, k, a.limit) if a.from_video else load_split(data, a.limit, concepts=k)
    except ValueError as e:
        print(f"training.evaluate: {e}", file=sys.stderr)
        return 2
    tasks = ("svmr", "vcmr", "qa") if hasattr(model, "qa_heads") else ("svmr", "vcmr")
    if not hasattr(model, "span_logits"):
        tasks = ("qa",)
    res = evaluate(model, eps, a.variant, tasks=tasks)
    res["checkpoint"] = str(a.checkpoint)
    res["from_video"] = bool(a.from_video)
    if a.json:
        print(json.dumps(res))
    else:
        for sec in ("svmr", "vcmr"):
            if sec in res:
                print(sec, " ".join(f"{k} {v:.3f}" for k, v in res[sec].items()))
        if "qa" in res:
            print("qa", " ".join(f"{k} {v:.3f}" for k, v in res["qa"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
