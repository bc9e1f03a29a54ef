"""Evaluate a HERO app checkpoint on SynthTV: SVMR / VCMR R@{1,5,10}@{0.5,0.7} and 5-way QA accuracy.

    python -m training.evaluate [--checkpoint DIR_OR_REPO] --data DIR [--from-video] [--json]

Inference is the app's: videos are encoded once (``hero_api.encode_videos``: windows, cached
``v_temp`` / ``fused``); SVMR decodes each query's start/end on its own video
(``hero_heads.decode_moments``, = ``hero_api.search_moments``); VCMR scores every video of the split
(official eval_vcmr: exp(20 cos) video scores, top 100 videos, P_st * P_ed * video score, NMS 0.5,
= ``hero_api.search_corpus``); QA scores the 5 candidates over the cached fused frames
(``qa_heads`` as in ``hero_api.answer_candidates``), or, for a checkpoint with
``config.qa_in_subtitles``, over frames re-fused per candidate with "[sep] q [sep] a" appended to every
subtitle (the official TVQA input, ``hero_api.encode_candidates``; one cross-modal pass per candidate).
Output JSON: {"svmr": {R1@0.5, ...}, "vcmr": {...}, "qa": {"accuracy", "evidence_iou"},
"svmr_by_type", "vcmr_by_type", "qa_by_type", "n_episodes", "n_queries", "n_questions", ...}, and
"vcmr_ceiling" (``synthtv.stats.vcmr_ceiling``): the VCMR R@1 an oracle gets on this corpus, since
queries that many episodes match equally well cannot be told apart.

With ``--from-video`` the app's ingest (``demo.pipeline``: decoded mp4 frames, Whisper subtitles,
features, HERO states) runs on DIR/videos and its subtitles (held as the app feeds them to HERO,
``HeroConfig.asr_hold_s``) and features replace the gold subtitles and stored features (top-level
metrics). The same run adds "conditions" (gold subtitles on the decoded
features, with and without speaker names; Whisper's words on the gold times; stored features + gold
subtitles, i.e. the run without ``--from-video``), "asr" (WER against the gold lines), "frames" (stored
vs decoded feature cosine), "timings" (ingest seconds per episode) and, with ``--app-methods``, "app":
the app's own search / ask functions on those records, with the text matcher alone and with HERO.

    python -m training.evaluate --checkpoint DIR --data DIR --from-video [--library LIB] [--app-methods] --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from demo.engine import DEFAULT_CHECKPOINT
from models import hero_heads
from models.hero_api import answer_candidates, decoding, default_window, encode_candidates, encode_videos
from training import common
from training.data import Episode, load_records, load_split, pad, sub_token_limit, video_inputs
from training.metrics import by_type, moment_recall, qa_accuracy

QA_CHUNK = 8  # questions per cross-modal batch with the official TVQA input (40 copies of the video)


@torch.no_grad()
def encode_all(model, eps: list[Episode], variant="full", concepts=False, batch_size=32, show_progress=False):
    """Episodes -> list of VideoEncoding (v_temp, fused (n, H) float32 CPU)."""
    out = []
    starts = range(0, len(eps), batch_size)
    for s in common.progress(starts, len(starts), "encode", show_progress):
        videos = [video_inputs(e, variant, concepts) for e in eps[s : s + batch_size]]
        out += encode_videos(model, videos, max_sub_tokens=sub_token_limit(variant))
    return out


def _iou(a0, a1, b0, b1) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 0.0


def _qa_frames(model, fused: torch.Tensor, inputs, cands: list[list[int]], max_tok: int) -> torch.Tensor:
    """(len(cands), n, H) frames the QA head reads: the video's cached fused frames for each candidate,
    or with ``inputs`` (the official TVQA input) the frames re-fused with each candidate appended."""
    if inputs is not None:
        return encode_candidates(model, *inputs, cands, max_sub_tokens=max_tok)
    return fused[None].expand(len(cands), -1, -1)


@torch.no_grad()
def evaluate(model, eps: list[Episode], variant: str = "full", concepts: bool | None = None,
             device=None, tasks=("svmr", "vcmr", "qa"), q_chunk: int = 128,
             show_progress: bool = False) -> dict:  # fmt: skip
    """Metrics of ``model`` on ``eps`` (see module docstring); progress bars on stderr if asked."""
    device = torch.device(device) if device else next(model.parameters()).device
    if concepts is None:
        concepts = model.config.concept_tokens > 0
    model.eval()
    fi = model.config.frame_interval
    dec = decoding(model, top_k=10)  # the checkpoint's frame interval and span band
    t0 = time.perf_counter()
    enc = encode_all(model, eps, variant, concepts, show_progress=show_progress)
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
        starts = range(0, len(qs), q_chunk)
        for s in common.progress(starts, len(starts), "search", show_progress):
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
                    ms = hero_heads.decode_moments(st[j, :n].cpu(), ed[j, :n].cpu(), **dec)
                    svmr.append([(m["start"], m["end"]) for m in ms])
            if "vcmr" in tasks:
                st, ed = model.span_logits(qv, V, M, cross=True)  # (q, Nv, T)
                vs = model.video_scores(qv, V, M)  # (q, Nv)
                # decode on the CPU: NMS is a short Python loop, one GPU sync per step otherwise
                st, ed, vs, Mc = st.float().cpu(), ed.float().cpu(), vs.float().cpu(), M.cpu()
                for j in range(len(chunk)):
                    ms = hero_heads.decode_corpus_moments(st[j], ed[j], Mc, vs[j], **dec)
                    vcmr.append([(eps[m["video_index"]].id, m["start"], m["end"]) for m in ms])
        if svmr:
            golds = [(q.start, q.end) for _, q in qs]
            res["svmr"] = moment_recall(svmr, golds)
            res["svmr_by_type"] = by_type(moment_recall, types, svmr, golds)
        if vcmr:
            golds = [(eps[v].id, q.start, q.end) for v, q in qs]
            res["vcmr"] = moment_recall(vcmr, golds)
            res["vcmr_by_type"] = by_type(moment_recall, types, vcmr, golds)
            if all(e.record for e in eps):  # what no model can beat on this corpus (synthtv.stats)
                from synthtv.stats import vcmr_ceiling

                res["vcmr_ceiling"] = vcmr_ceiling([e.record for e in eps])
        res["n_queries"] = len(qs)
    items = [(v, q) for v, e in enumerate(eps) for q in e.qa]
    if items and "qa" in tasks:
        window = default_window(model.config)
        # the official TVQA input re-fuses the frames per candidate (hero_api.encode_candidates)
        official = model.config.qa_in_subtitles
        max_tok = sub_token_limit(variant)
        preds, ious = [], []
        for v, e in common.progress(enumerate(eps), len(eps), "qa", show_progress):
            if not e.qa:
                continue
            inputs = video_inputs(e, variant, concepts) if official else None
            if e.n > window:  # long video: the app's windowed path, one question at a time
                for q in e.qa:
                    r = answer_candidates(
                        model, _qa_frames(model, enc[v].fused, inputs, q.ids, max_tok), q.ids
                    )
                    preds.append(r["answer_index"])
                    ious.append(_iou(r["st_idx"] * fi, (r["ed_idx"] + 1) * fi, q.start, q.end))
                continue
            C = len(e.qa[0].ids)
            step = QA_CHUNK if official else len(e.qa)
            for i in range(0, len(e.qa), step):
                chunk = e.qa[i : i + step]
                cands = [x for q in chunk for x in q.ids]
                ids, qmask = pad(cands)
                frames = _qa_frames(model, enc[v].fused, inputs, cands, max_tok).to(device)  # (rows, n, H)
                fmask = torch.ones(frames.shape[:2], device=device)
                with common.autocast(device):
                    o = model.qa_heads(frames, fmask, ids.to(device), qmask.to(device), num_candidates=C)
                for j, q in enumerate(chunk):
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


# ------------------------------------------------------------------------------------------------
# --from-video: the app's own pipeline (demo.pipeline.ingest) on the episode videos


def ingest_episodes(
    data_dir: Path, library, limit: int | None = None, checkpoint: str | None = None, device: str = "auto"
) -> tuple[list[dict], list, list[dict]]:
    """Episodes with a video -> (their records, the app's VideoRecord of each, per-episode timings).

    The app's ingest with its defaults (decord frames at 1.5 s, Whisper base with the language detected,
    EfficientNet-Lite0, HERO states of ``checkpoint``), concept tracks off: neither HERO nor the scores
    here read them, and on the CPU they cost more than the rest. Timings: ingest's stages (seconds),
    ``wall`` around the call, ``cached`` when ``library`` already held the video (its stages are then
    those of the first ingest; a new checkpoint re-encodes HERO only).
    """
    from demo.library import content_hash
    from demo.pipeline import IngestOptions, ingest
    from synthtv.generate import read_episodes

    recs = [r for r in read_episodes(data_dir) if r.get("video")][:limit]
    if not recs:
        raise ValueError(f"{data_dir}: no episode has a video (generate with --video)")
    options = IngestOptions(device=device, checkpoint=checkpoint, tracks=())
    records, timings = [], []
    for r in common.progress(recs, len(recs), "ingest"):
        path = data_dir / r["video"]["path"]
        cached = library.get(content_hash(path), arrays=False) is not None
        t = time.perf_counter()
        rec = ingest(path, library=library, options=options)
        timings.append({**rec.timings, "wall": time.perf_counter() - t, "cached": cached})
        records.append(rec)
    return recs, records, timings


def asr_report(recs: list[dict], records: list) -> dict:
    """WER of each episode's Whisper transcript against its gold lines (spoken text, no speaker names):
    ``wer`` pools the edits over all reference words, ``wer_mean`` averages the episodes."""
    from synthtv.stats import wer_words, word_error_rate

    eps, edits, words = [], 0.0, 0
    for r, rec in zip(recs, records):
        ref = " ".join(s["text"] for s in r["subtitles"])
        hyp = " ".join(s.text for s in rec.subtitles)
        w, n = word_error_rate(ref, hyp), len(wer_words(ref))
        edits, words = edits + w * max(1, n), words + n
        eps.append({"episode_id": r["episode_id"], "wer": round(w, 4), "gold_lines": len(r["subtitles"]),
                    "asr_lines": len(rec.subtitles), "language": rec.language})  # fmt: skip
    return {"wer": edits / max(1, words), "wer_mean": float(np.mean([e["wer"] for e in eps])),
            "reference_words": words, "episodes": eps}  # fmt: skip


def frame_agreement(stored: list[np.ndarray], decoded: list[np.ndarray]) -> dict:
    """Per-frame cosine of the generator's features (rendered frames) and the app's (decoded mp4 frames):
    the same instants, so they differ by codec loss only; a misaligned frame would show as an outlier."""
    cos, same_n = [], 0
    for a, b in zip(stored, decoded):
        same_n += len(a) == len(b)
        n = min(len(a), len(b))
        a, b = np.asarray(a[:n], np.float32), np.asarray(b[:n], np.float32)
        cos.append((a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-9))
    c = np.concatenate(cos)
    return {"cosine_mean": float(c.mean()), "cosine_p5": float(np.percentile(c, 5)),
            "cosine_min": float(c.min()), "frames": int(len(c)), "episodes_same_n_frames": same_n}  # fmt: skip


def timing_report(recs: list[dict], timings: list[dict]) -> dict:
    """Mean seconds per episode: ingest's stages as recorded when each video was first ingested (also for
    the ones this run found cached), and the wall time of the ones this run ingested."""
    fresh = [t for t in timings if not t["cached"]]
    stages = [k for k in timings[0] if k not in ("wall", "cached")]
    out: dict = {
        "episodes": len(timings),
        "ingested_now": len(fresh),
        "video_seconds_mean": float(np.mean([r["duration"] for r in recs])),
        "stages_per_episode": {k: float(np.mean([t.get(k, 0.0) for t in timings])) for k in stages},
    }
    if fresh:
        out["wall_per_episode"] = float(np.mean([t["wall"] for t in fresh]))
    return out


def gold_timed(asr: list, gold: list[dict]) -> list:
    """Whisper's lines, each re-timed to the gold line it overlaps most (kept as is when none): the
    words of ASR with the benchmark's timing, whose gold lines end later than the speech does."""
    from demo.subtitles import Subtitle

    out = []
    for s in asr:
        ov = [min(s.end, g["end"]) - max(s.start, g["start"]) for g in gold]
        j = int(np.argmax(ov)) if ov else -1
        out.append(Subtitle(gold[j]["start"], gold[j]["end"], s.text) if j >= 0 and ov[j] > 0 else s)
    return out


def evaluate_app(recs: list[dict], records: list, library, engine) -> dict:
    """The app's own task functions on the ingested records, as a user gets them: ``search_moments``
    (SVMR), ``search_library`` (VCMR over every video in ``library``), ``answer_question`` with the 5
    gold candidates (QA). ``engine`` None: the text matcher the app falls back to without a checkpoint;
    else HERO (search fuses it with the text matcher: ``method`` "hero+text")."""
    from demo.qa import answer_question
    from demo.search import search_library, search_moments

    episode_of = {rec.video_id: r["episode_id"] for r, rec in zip(recs, records)}
    svmr, vcmr, gs, gv, types = [], [], [], [], []
    preds, gold, qtypes, ious = [], [], [], []
    method = set()
    for r, rec in zip(recs, records):
        for q in r["queries"]:
            res = search_moments(rec, q["text"], top_k=10, engine=engine)
            method.add(res.method)
            svmr.append([(m.start, m.end) for m in res.moments])
            ms = search_library(library, q["text"], top_k=10, engine=engine)
            vcmr.append([(episode_of.get(m.video_id), m.start, m.end) for m in ms])
            gs.append((q["start"], q["end"]))
            gv.append((r["episode_id"], q["start"], q["end"]))
            types.append(q["type"])
        for q in r["qa"]:
            a = answer_question(rec, q["question"], q["candidates"], engine=engine)
            method.add(a.method)
            preds.append(a.answer_index)
            ious.append(_iou(*a.evidence, q["start"], q["end"]))
            gold.append(q["answer_idx"])
            qtypes.append(q["type"])
    out: dict = {"method": sorted(method), "vcmr_corpus_videos": len(library.records(arrays=False))}
    if gs:
        out |= {"svmr": moment_recall(svmr, gs), "svmr_by_type": by_type(moment_recall, types, svmr, gs),
                "vcmr": moment_recall(vcmr, gv), "vcmr_by_type": by_type(moment_recall, types, vcmr, gv)}  # fmt: skip
    if gold:
        out["qa"] = {"accuracy": qa_accuracy(preds, gold), "evidence_iou": float(np.mean(ious))}
        out["qa_by_type"] = by_type(qa_accuracy, qtypes, preds, gold)
    return out


def evaluate_from_video(
    model, data_dir: Path, ingested, variant: str = "full", tasks=("svmr", "vcmr", "qa")
) -> dict:
    """HERO's metrics with the app's subtitles (Whisper) and features (decoded mp4) at the top level, and
    under ``conditions`` the same episodes with gold subtitles on the decoded features (with and without
    the speaker names Whisper cannot give), with Whisper's words on the gold lines' times (``gold_timed``:
    word errors apart from timing) and, when the generator stored features, the usual evaluation
    (stored features + gold subtitles). Also ``asr`` (WER), ``frames`` (stored vs decoded features) and
    ``timings`` (ingest seconds per episode)."""
    recs, records, timings = ingested
    k = getattr(model.config, "concept_tokens", 0)
    # float16 as the library stores them: a re-run on a cached ingest scores the same numbers
    feats = [np.asarray(rec.features, np.float16).astype(np.float32) for rec in records]
    from demo.engine import hero_subtitles

    # Whisper's lines as the app feeds them to HERO (held per config.asr_hold_s)
    asr = load_records(recs, feats, concepts=k, subs=[hero_subtitles(rec, model.config) for rec in records])
    res = evaluate(model, asr, variant, tasks=tasks)
    retimed = [gold_timed(rec.subtitles, r["subtitles"]) for r, rec in zip(recs, records)]
    inputs = {
        "video_features+gold_subtitles": load_records(recs, feats, concepts=k),
        "video_features+gold_subtitles_no_speakers": load_records(recs, feats, speaker=False, concepts=k),
        "video_features+asr_subtitles_gold_times": load_records(recs, feats, concepts=k, subs=retimed),
    }
    conditions = {name: evaluate(model, eps, variant, tasks=tasks) for name, eps in inputs.items()}
    if all(r.get("features") for r in recs):
        stored = [np.load(data_dir / r["features"]["path"]) for r in recs]
        conditions["stored_features+gold_subtitles"] = evaluate(
            model, load_records(recs, stored, concepts=k), variant, tasks=tasks
        )
        res["frames"] = frame_agreement(stored, feats)
    res["conditions"] = conditions
    res["asr"] = asr_report(recs, records)
    res["timings"] = timing_report(recs, timings)
    return res


def _print_metrics(res: dict, prefix: str = "") -> None:
    for sec in ("svmr", "vcmr", "vcmr_ceiling", "qa"):
        if sec in res:
            print(f"{prefix}{sec}", " ".join(f"{k} {v:.3f}" for k, v in res[sec].items()))


def main(argv=None) -> int:
    from models.io import load_pretrained

    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="model dir or hub repo id")
    p.add_argument("--data", required=True, help="SynthTV dir (episodes.jsonl + features/ [+ videos/])")
    p.add_argument("--from-video", action="store_true", help="run the app's ingest on DIR/videos")
    p.add_argument("--library", default=None,
                   help="--from-video: keep the app's ingest here (default: a temporary folder); a re-run "
                        "with another checkpoint reuses Whisper's subtitles and the features")  # fmt: skip
    p.add_argument("--app-methods", action="store_true",
                   help="--from-video: also score the app's search/ask functions (text matcher, HERO+text)")  # fmt: skip
    p.add_argument("--variant", default="full", help="input ablation the checkpoint was trained with")
    p.add_argument("--limit", type=int, default=None, help="first N episodes only")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    data = Path(a.data)
    if not (data / "episodes.jsonl").is_file():
        print(f"training.evaluate: {data}: no episodes.jsonl", file=sys.stderr)
        return 2
    if (a.library or a.app_methods) and not a.from_video:
        print("training.evaluate: --library and --app-methods need --from-video", file=sys.stderr)
        return 2
    try:
        model = load_pretrained(a.checkpoint, device=common.resolve_device(a.device))
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"training.evaluate: {a.checkpoint}: {e}", file=sys.stderr)
        return 2
    tasks = ("svmr", "vcmr", "qa") if hasattr(model, "qa_heads") else ("svmr", "vcmr")
    if not hasattr(model, "span_logits"):
        tasks = ("qa",)
    if a.from_video:
        from demo.errors import InputError
        from demo.library import Library

        with tempfile.TemporaryDirectory(prefix="evaluate-library-") as tmp:
            try:
                library = Library(Path(a.library or tmp))
                ingested = ingest_episodes(data, library, a.limit, a.checkpoint, a.device)
            except (ValueError, InputError) as e:
                print(f"training.evaluate: {e}", file=sys.stderr)
                return 2
            res = evaluate_from_video(model, data, ingested, a.variant, tasks=tasks)
            if a.app_methods:
                from demo.engine import load_engine

                recs, records, _ = ingested
                res["app"] = {
                    "text": evaluate_app(recs, records, library, None),
                    "hero": evaluate_app(recs, records, library, load_engine(a.checkpoint, a.device)),
                }
    else:
        k = getattr(model.config, "concept_tokens", 0)
        try:
            eps = load_split(data, a.limit, concepts=k)
        except ValueError as e:
            print(f"training.evaluate: {e}", file=sys.stderr)
            return 2
        res = evaluate(model, eps, a.variant, tasks=tasks, show_progress=True)
    res["checkpoint"] = str(a.checkpoint)
    res["from_video"] = bool(a.from_video)
    if a.json:
        print(json.dumps(res))
        return 0
    _print_metrics(res)
    for name, r in {**res.get("conditions", {}), **res.get("app", {})}.items():
        _print_metrics(r, f"{name}: ")
    if "asr" in res:
        total = res["timings"]["stages_per_episode"].get("total", 0.0)
        print(f"asr wer {res['asr']['wer']:.3f}; ingest {total:.1f} s per episode")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
