"""Moment search in one video and across the library.

Two scorers, fused: HERO's VSM head over the cached V_temp (start/end probabilities, spans as the
official eval decodes them), and a transparent text matcher (MiniLM similarity of the query to each
subtitle and to each frame's recognised concepts). HERO's share is gated by its own video score (the
best query-frame cosine, VCMR's video score): where HERO does not recognise the query in a video (real
footage unlike its procedural training data, a sound or a sign it never reads), the text matcher
decides alone (`hero_weight`). Without a trained HERO checkpoint the text matcher runs alone, and the
result says so (`method`). Across the library, faiss finds candidate videos first (HERO frame vectors
and subtitle/concept vectors, their scores gated as the moments' are; the subtitle/concept vectors
alone without HERO), then each candidate's spans are scored as above.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from demo.engine import HERO_GATE, HeroEngine
from demo.library import Library, VideoRecord, atomic_write
from demo.subtitles import align_to_frames, text_in_span

log = logging.getLogger(__name__)

TEXT_WEIGHT = 0.3  # least share of the text matcher in fused scores when HERO is present
MIN_LEN, MAX_LEN = 3.0, 24.0  # default span length bounds in seconds (HERO's 2..16 frames band, roughly)


@dataclass
class Moment:
    start: float
    end: float
    score: float
    video_id: str
    text: str = ""  # the subtitles spoken inside

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class SearchResult:
    video_id: str
    query: str
    moments: list[Moment]
    saliency: np.ndarray  # (n_frames,) relevance per frame in [0, 1]
    method: str  # "hero+text" | "text"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id,
            "query": self.query,
            "method": self.method,
            "moments": [m.to_dict() for m in self.moments],
            "saliency": [round(float(x), 4) for x in self.saliency],
            **self.extra,
        }


# --- the text matcher ---------------------------------------------------------------------------------


# sound-event labels that only say someone is talking: the subtitles carry what is said
SPOKEN = frozenset({"Speech", "Narration, monologue", "Conversation", "Male speech, man speaking",
                    "Female speech, woman speaking", "Child speech, kid speaking", "Speech synthesizer"})  # fmt: skip


def text_saliency(record: VideoRecord, query: str) -> np.ndarray:
    """(n_frames,) in [0, 1]: per frame, the best cosine between the query and a subtitle overlapping the
    frame or one of the frame's recognised labels (tracks and concept names; talking-only sounds left out)."""
    from demo.text import embed

    q = embed([query])[0]
    n = record.n_frames
    sal = np.zeros(n, np.float32)
    if record.subtitles:
        sims = embed([s.text for s in record.subtitles]) @ q  # (S,)
        for sim, frames in zip(sims, align_to_frames(record.subtitles, n, record.frame_interval)):
            if frames:
                sal[frames] = np.maximum(sal[frames], sim)
    labels = [[x for x in c if x not in SPOKEN] for c in record.frame_labels()]
    names = sorted({x for c in labels for x in c})
    if names:
        # each label on its own (one embedding per distinct name): a frame scores its best label, so a
        # match is not diluted by the other names recognised in the same frame
        sims = dict(zip(names, (embed(names) @ q).tolist()))
        sal = np.maximum(sal, np.array([max((sims[x] for x in c), default=0.0) for c in labels], np.float32))
    return np.clip(sal, 0.0, 1.0)


def span_contrast(sal: np.ndarray, st: np.ndarray, ed: np.ndarray) -> np.ndarray:
    """Mean saliency inside each span [st, ed) minus the mean outside it (how much the span stands out)."""
    T = len(sal)
    csum = np.concatenate([[0.0], np.cumsum(sal, dtype=np.float64)])
    inside, n_in = csum[ed] - csum[st], ed - st
    mean_out = np.where(n_in < T, (csum[T] - inside) / np.maximum(T - n_in, 1), 0.0)
    return inside / np.maximum(n_in, 1) - mean_out


def hero_weight(video_score, gate: tuple[float, float] = HERO_GATE):
    """HERO's share in fused scores for its video score (scalar or array): 0 below gate[0], the full
    1 - TEXT_WEIGHT from gate[1], linear between (gate: the checkpoint's, `HeroEngine.gate`)."""
    lo, hi = gate
    return (1 - TEXT_WEIGHT) * np.clip((np.asarray(video_score, np.float64) - lo) / (hi - lo), 0.0, 1.0)


def spans_from_saliency(sal: np.ndarray, min_f: int, max_f: int, top_k: int, nms_thd: float = 0.5):
    """Spans that stand out from the rest of the video: rank spans of min_f..max_f frames by mean
    saliency inside minus mean outside (`span_contrast`, all spans at once), NMS, top_k.
    Returns [(st, ed_exclusive, mean saliency inside)]."""
    T = len(sal)
    if T == 0:
        return []
    max_f, min_f = min(max_f, T), min(max(1, min_f), T)
    ln = np.arange(min_f, max_f + 1)[None, :]
    st = np.broadcast_to(np.arange(T)[:, None], (T, ln.shape[1]))
    ed = np.minimum(st + ln, T)  # (T, L) exclusive ends
    gain = np.where(st + ln <= T, span_contrast(sal, st, ed), -np.inf).ravel()
    cand = np.flatnonzero(np.isfinite(gain))
    cand = cand[np.argsort(-gain[cand], kind="stable")[:200]]
    s_i, e_i = st.ravel()[cand], ed.ravel()[cand]
    # Text saliency is flat inside a subtitle, so every sub-span of a relevant one scores alike: suppress
    # spans mostly inside a better one (intersection over the shorter span), not only by IoU.
    inter = np.clip(np.minimum(e_i[:, None], e_i[None]) - np.maximum(s_i[:, None], s_i[None]), 0, None)
    shorter = np.minimum((e_i - s_i)[:, None], (e_i - s_i)[None])
    keep: list[int] = []
    for i in range(len(cand)):
        if all(inter[i, j] <= nms_thd * shorter[i, j] for j in keep):
            keep.append(i)
            if len(keep) == top_k:
                break
    return [(int(s_i[k]), int(e_i[k]), float(sal[s_i[k] : e_i[k]].mean(dtype=np.float64))) for k in keep]


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min(initial=0.0)), float(x.max(initial=0.0))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _frames_bounds(record: VideoRecord, min_len: float | None, max_len: float | None) -> tuple[int, int]:
    dt = record.frame_interval
    lo = max(1, round((MIN_LEN if min_len is None else min_len) / dt))
    hi = max(lo, round((MAX_LEN if max_len is None else max_len) / dt))
    return lo, hi


# --- one video ----------------------------------------------------------------------------------------


def search_moments(
    record: VideoRecord,
    query: str,
    top_k: int = 10,
    min_len: float | None = None,
    max_len: float | None = None,
    engine: HeroEngine | None = None,
) -> SearchResult:
    """Ranked moments of `record` for `query` (SVMR), plus the per-frame relevance curve."""
    query = query.strip()
    if not query:
        from demo.errors import InputError

        raise InputError("search: the query is empty")
    dt = record.frame_interval
    lo, hi = _frames_bounds(record, min_len, max_len)
    tsal = text_saliency(record, query)
    extra: dict = {}
    if engine is None or not engine.can_search:
        spans = spans_from_saliency(tsal, lo, hi, top_k)
        moments = [Moment(s * dt, e * dt, sc, record.video_id) for s, e, sc in spans]
        saliency, method = tsal, "text"
    else:
        import torch

        from models.hero_api import moment_logits
        from models.hero_heads import decode_moments, nms

        v_temp, _ = engine.states(record)
        r = moment_logits(engine.model, engine.query_vectors([query]), v_temp)
        w = float(hero_weight(float(r["video_scores"][0]), engine.gate))
        # HERO's shortest span is its checkpoint's (config min_pred_l, the end - start frame offset it is
        # evaluated with) unless the user bounds the length; the longest is the length bound (24 s: 16)
        cand = decode_moments(
            r["st_logits"][0], r["ed_logits"][0], dt,
            min_pred_l=engine.config.min_pred_l if min_len is None else lo - 1, max_pred_l=hi,
            top_k=max(50, top_k),
        )  # fmt: skip
        best = max((m["score"] for m in cand), default=1.0) or 1.0
        hero = {(m["st_idx"], m["ed_idx"] + 1): m["score"] / best for m in cand}
        # the text matcher's own spans first, in its order, then HERO's: equal fused scores (HERO without
        # a say, w = 0) keep the text matcher's ranking instead of HERO's candidate order
        text = spans_from_saliency(tsal, lo, hi, max(50, top_k))
        spans = {(st, ed): hero.get((st, ed), 0.0) for st, ed, _ in text}
        for span, score in hero.items():
            spans.setdefault(span, score)
        se = np.array(list(spans), np.int64).reshape(-1, 2)
        fused = w * np.array(list(spans.values())) + (1 - w) * span_contrast(tsal, se[:, 0], se[:, 1])
        keep = nms(torch.from_numpy(se), torch.from_numpy(fused), 0.5, top_k).tolist()
        moments = [Moment(float(se[k, 0] * dt), float(se[k, 1] * dt), float(fused[k]), record.video_id)
                   for k in keep]  # fmt: skip
        saliency = w * _minmax(r["saliency"][0].numpy()) + (1 - w) * tsal
        extra = {"hero_weight": round(w, 3)}
        method = "hero+text"
    dur = record.meta.duration
    for m in moments:
        m.end = min(m.end, max(dur, m.start + dt))
        m.text = text_in_span(record.subtitles, m.start, m.end)
    return SearchResult(record.video_id, query, moments, saliency.astype(np.float32), method, extra)


# --- the library --------------------------------------------------------------------------------------
# First stage: which videos. A single stage turns a video into rows of unit vectors and a query into one
# unit vector; a video's score is its best row (a faiss inner-product index over all rows). "hero+text"
# weighs HERO's and the text matcher's video scores as moments are weighed (`fuse_first_stage`). Measured on
# SynthTV by training/compare_video_retrieval.py (README, "Library search"): hero+text ~ hero > text >>
# coot, and on real footage only the text side knows anything, so the app uses hero+text with a HERO
# checkpoint and text without one; the COOT stages stay selectable for that measurement.
FIRST_STAGES = {
    "text": "MiniLM: the query vs each subtitle and each frame's recognised concepts",
    "hero": "HERO: the query vector vs each frame of V_temp (VCMR's max-over-frames video score)",
    "hero+text": "w * the hero score + (1 - w) * the text score, w = hero_weight(the hero score)",
    "coot": "COOT: the query as a one-sentence paragraph vs the video embedding",
    "coot-clips": "COOT: the query's sentence embedding vs each proposed clip's embedding",
}
FUSED = {"hero+text": ("hero", "text")}


def default_first_stage(engine: HeroEngine | None) -> str:
    return "hero+text" if engine is not None and engine.can_search else "text"


def _check_stage(stage: str, engine: HeroEngine | None) -> None:
    if stage not in FIRST_STAGES:
        raise ValueError(f"unknown first stage {stage!r} (one of {', '.join(FIRST_STAGES)})")
    if stage.startswith("hero") and (engine is None or not engine.can_search):
        raise ValueError(f"first stage {stage!r} needs a HERO checkpoint that can search")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-6)


def video_rows(record: VideoRecord, stage: str, engine: HeroEngine | None = None) -> np.ndarray:
    """(rows, d) unit vectors that stand for `record` in the single first stage `stage`."""
    _check_stage(stage, engine)
    if stage == "hero":
        v = engine.states(record)[0].numpy()
    elif stage == "text":
        from demo.text import embed

        texts = [s.text for s in record.subtitles] + [", ".join(c) for c in record.frame_labels()]
        v = embed(texts) if texts else np.zeros((0, 384), np.float32)
    elif stage in ("coot", "coot-clips"):
        from demo.captions import load_coot, video_embeddings

        vid, clips = video_embeddings(load_coot(), record)
        v = vid[None] if stage == "coot" else clips
    else:
        raise ValueError(f"{stage!r} is a fused stage: score its parts ({FUSED[stage]})")
    return _unit_rows(v)


def query_rows(queries: list[str], stage: str, engine: HeroEngine | None = None) -> np.ndarray:
    """(Q, d) unit query vectors for the single first stage `stage`."""
    _check_stage(stage, engine)
    if stage == "hero":
        q = engine.query_vectors(queries).numpy()
    elif stage == "text":
        from demo.text import embed

        q = embed(queries)
    elif stage in ("coot", "coot-clips"):
        from demo.captions import load_coot, text_embeddings

        par, sent = text_embeddings(load_coot(), queries)
        q = par if stage == "coot" else sent
    else:
        raise ValueError(f"{stage!r} is a fused stage: score its parts ({FUSED[stage]})")
    return _unit_rows(q)


def _stage_key(stage: str, engine: HeroEngine | None) -> str:
    if stage == "hero":
        return f"hero-{engine.key}"
    if stage.startswith("coot"):
        from demo.captions import load_coot

        return f"{stage}-{load_coot().key}"
    return stage


def library_index(library: Library, records: list[VideoRecord], engine: HeroEngine | None, stage: str):
    """A faiss inner-product index over the library's rows for the single first stage `stage`, saved under
    data_dir/index and rebuilt whenever the set of videos or the model changes. Returns (index, row owners)."""
    import faiss

    kind = _stage_key(stage, engine)
    stamp = {"kind": kind, "videos": sorted(r.video_id for r in records)}
    folder = library.root / "index"
    folder.mkdir(exist_ok=True)
    ipath, mpath = folder / f"{kind}.faiss", folder / f"{kind}.json"
    if ipath.is_file() and mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text())
            if manifest["stamp"] == stamp:
                return faiss.read_index(str(ipath)), manifest["owners"]
        except (ValueError, KeyError, RuntimeError) as e:
            log.warning("rebuilding the library index (%s)", e)
    rows = [video_rows(r, stage, engine) for r in records]
    owners = [r.video_id for r, v in zip(records, rows) for _ in range(len(v))]
    dim = rows[0].shape[1] if rows else 1
    x = np.concatenate(rows) if owners else np.zeros((0, dim), np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    atomic_write(ipath, lambda f: f.write(faiss.serialize_index(index).tobytes()))
    atomic_write(mpath, lambda f: f.write(json.dumps({"stamp": stamp, "owners": owners}).encode()))
    return index, owners


def best_rows(index, owners: list[str], q: np.ndarray, n_rows: int) -> dict[str, float]:
    """{video id: its best row's score} over the `n_rows` best rows for one unit query vector q (d,)."""
    sims, rows = index.search(np.asarray(q, np.float32)[None], min(index.ntotal, n_rows))
    best: dict[str, float] = {}
    for s, i in zip(sims[0], rows[0]):
        if i >= 0 and owners[i] not in best:
            best[owners[i]] = float(s)
    return best


def fuse_first_stage(hero: np.ndarray, text: np.ndarray, gate: tuple[float, float] = HERO_GATE) -> np.ndarray:
    """The "hero+text" video scores from the hero and text ones, (..., videos) each: one HERO share per
    query (`hero_weight` of its best video's hero score, as in the moments' fusion), so that every
    video of a query is weighed alike and their scores stay comparable."""
    hero, text = np.asarray(hero, np.float64), np.asarray(text, np.float64)
    w = hero_weight(hero.max(axis=-1, keepdims=True, initial=-1.0), gate)
    return w * hero + (1 - w) * text


def rank_videos(
    library: Library,
    records: list[VideoRecord],
    query: str,
    engine: HeroEngine | None,
    stage: str,
    candidates: int,
) -> list[tuple[str, float]]:
    """The first stage: the `candidates` best videos for `query`, [(video id, score)] best first."""
    _check_stage(stage, engine)
    n_rows = 50 * candidates  # enough rows that `candidates` distinct videos appear among them
    parts = []
    for part in FUSED.get(stage, (stage,)):
        index, owners = library_index(library, records, engine, part)
        parts.append(best_rows(index, owners, query_rows([query], part, engine)[0], n_rows))
    if len(parts) == 1:
        scores = parts[0]
    else:  # a video missing from one part's best rows gets that part's lowest retrieved score (its bound)
        vids = sorted({v for p in parts for v in p})
        hero, text = (np.array([p.get(v, min(p.values(), default=0.0)) for v in vids]) for p in parts)
        scores = dict(zip(vids, fuse_first_stage(hero, text, engine.gate).tolist()))
    return sorted(scores.items(), key=lambda kv: -kv[1])[:candidates]


def moments_in_videos(
    by_id: dict[str, VideoRecord],
    query: str,
    ranked: list[tuple[str, float]],
    engine: HeroEngine | None,
    top_k: int = 10,
    per_video: int = 3,
    search=None,
) -> list[Moment]:
    """Second stage: spans in each first-stage candidate (`search`, default `search_moments`; evaluation
    passes a cached one), each moment's score weighed by its video's first-stage score as VCMR does; the
    `top_k` best across videos."""
    search = search or search_moments
    moments: list[Moment] = []
    for vid, vscore in ranked:
        res = search(by_id[vid], query, top_k=per_video, engine=engine)
        for m in res.moments:
            m.score = m.score * max(vscore, 0.0)
            moments.append(m)
    moments.sort(key=lambda m: -m.score)
    return moments[:top_k]


def search_library(
    library: Library,
    query: str,
    top_k: int = 10,
    engine: HeroEngine | None = None,
    candidates: int = 20,
    per_video: int = 3,
    first_stage: str | None = None,
) -> list[Moment]:
    """Moments across every ingested video (VCMR): the first stage (`first_stage`, default
    `default_first_stage(engine)`) picks up to `candidates` videos through faiss, then each candidate's
    spans are scored, at most `per_video` moments per video."""
    records = library.records()
    if not records:
        return []
    if engine is not None:
        for r in records:
            before = r.info.get("hero_key")
            engine.encode_record(r)
            if r.info.get("hero_key") != before:
                library.put(r)
    stage = first_stage or default_first_stage(engine)
    ranked = rank_videos(library, records, query, engine, stage, candidates)
    return moments_in_videos({r.video_id: r for r in records}, query, ranked, engine, top_k, per_video)
