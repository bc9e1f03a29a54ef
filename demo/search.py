"""Moment search in one video and across the library.

Two scorers, fused: HERO's VSM head over the cached V_temp (start/end probabilities, spans as the
official eval decodes them), and a transparent text matcher (MiniLM similarity of the query to each
subtitle and to each frame's recognised concepts). Without a trained HERO checkpoint the text matcher
runs alone, and the result says so (`method`). Across the library, faiss finds candidate videos first
(HERO frame vectors, or subtitle/concept vectors), then each candidate's spans are scored as above.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from demo.engine import HeroEngine
from demo.library import Library, VideoRecord, atomic_write
from demo.subtitles import align_to_frames, text_in_span

log = logging.getLogger(__name__)

TEXT_WEIGHT = 0.3  # share of the text matcher in fused scores when HERO is present
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
        }


# --- the text matcher ---------------------------------------------------------------------------------


def text_saliency(record: VideoRecord, query: str) -> np.ndarray:
    """(n_frames,) in [0, 1]: per frame, the best cosine between the query and a subtitle overlapping the
    frame or the frame's concept names."""
    from demo.text import embed

    q = embed([query])[0]
    n = record.n_frames
    sal = np.zeros(n, np.float32)
    if record.subtitles:
        sims = embed([s.text for s in record.subtitles]) @ q  # (S,)
        for sim, frames in zip(sims, align_to_frames(record.subtitles, n, record.frame_interval)):
            if frames:
                sal[frames] = np.maximum(sal[frames], sim)
    labels = record.frame_labels()
    if labels:
        sal = np.maximum(sal, embed([", ".join(c) for c in labels]) @ q)
    return np.clip(sal, 0.0, 1.0)


def spans_from_saliency(sal: np.ndarray, min_f: int, max_f: int, top_k: int, nms_thd: float = 0.5):
    """Spans that stand out from the rest of the video: rank spans of min_f..max_f frames by mean
    saliency inside minus mean outside (prefix sums, all spans at once), NMS, top_k.
    Returns [(st, ed_exclusive, mean saliency inside)]."""
    T = len(sal)
    if T == 0:
        return []
    max_f, min_f = min(max_f, T), min(max(1, min_f), T)
    csum = np.concatenate([[0.0], np.cumsum(sal, dtype=np.float64)])
    st = np.arange(T)[:, None]
    ln = np.arange(min_f, max_f + 1)[None, :]
    ed = np.minimum(st + ln, T)  # (T, L) exclusive ends
    valid = (st + ln) <= T
    inside = csum[ed] - csum[st]
    n_in = ed - st
    mean_in = inside / n_in
    mean_out = np.where(n_in < T, (csum[T] - inside) / np.maximum(T - n_in, 1), 0.0)
    gain = np.where(valid, mean_in - mean_out, -np.inf).ravel()
    cand = np.flatnonzero(np.isfinite(gain))
    cand = cand[np.argsort(-gain[cand], kind="stable")[:200]]
    s_i, e_i = np.broadcast_to(st, ed.shape).ravel()[cand], ed.ravel()[cand]
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
    return [(int(s_i[k]), int(e_i[k]), float(mean_in.ravel()[cand[k]])) for k in keep]


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
    text_weight: float = TEXT_WEIGHT,
) -> SearchResult:
    """Ranked moments of `record` for `query` (SVMR), plus the per-frame relevance curve."""
    query = query.strip()
    if not query:
        from demo.errors import InputError

        raise InputError("search: the query is empty")
    dt = record.frame_interval
    lo, hi = _frames_bounds(record, min_len, max_len)
    tsal = text_saliency(record, query)
    if engine is None or not engine.can_search:
        spans = spans_from_saliency(tsal, lo, hi, top_k)
        moments = [Moment(s * dt, e * dt, sc, record.video_id) for s, e, sc in spans]
        saliency, method = tsal, "text"
    else:
        from models.hero_api import moment_logits
        from models.hero_heads import decode_moments

        v_temp, _ = engine.states(record)
        r = moment_logits(engine.model, engine.query_vectors([query]), v_temp)
        cand = decode_moments(
            r["st_logits"][0], r["ed_logits"][0], dt, min_pred_l=lo - 1, max_pred_l=hi, top_k=max(50, top_k)
        )
        hsal = _minmax(r["saliency"][0].numpy())
        saliency = (1 - text_weight) * hsal + text_weight * tsal
        best = max((m["score"] for m in cand), default=1.0) or 1.0
        moments = []
        for m in cand:
            text_score = float(tsal[m["st_idx"] : m["ed_idx"] + 1].mean())
            score = (1 - text_weight) * m["score"] / best + text_weight * text_score
            moments.append(Moment(m["start"], m["end"], score, record.video_id))
        moments.sort(key=lambda m: -m.score)
        moments = moments[:top_k]
        method = "hero+text"
    dur = record.meta.duration
    for m in moments:
        m.end = min(m.end, max(dur, m.start + dt))
        m.text = text_in_span(record.subtitles, m.start, m.end)
    return SearchResult(record.video_id, query, moments, saliency.astype(np.float32), method)


# --- the library --------------------------------------------------------------------------------------


def _index_rows(records: list[VideoRecord], engine: HeroEngine | None) -> tuple[np.ndarray, list[str]]:
    """Vectors to index and the video id of each row: HERO frame states, or subtitle/concept texts."""
    vecs, owners = [], []
    for r in records:
        if engine is not None and engine.can_search:
            v = r.arrays["hero.v_temp"]
        else:
            from demo.text import embed

            texts = [s.text for s in r.subtitles] + [", ".join(c) for c in r.frame_labels()]
            v = embed(texts) if texts else np.zeros((0, 384), np.float32)
        vecs.append(v)
        owners += [r.video_id] * len(v)
    dim = vecs[0].shape[1] if vecs else 1
    x = np.concatenate(vecs).astype(np.float32) if owners else np.zeros((0, dim), np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-6)
    return x, owners


def library_index(library: Library, records: list[VideoRecord], engine: HeroEngine | None):
    """A faiss inner-product index over the library's rows, saved under data_dir/index and rebuilt
    whenever the set of videos or the checkpoint changes. Returns (index, row owners)."""
    import faiss

    kind = f"hero-{engine.key}" if engine is not None and engine.can_search else "text"
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
    x, owners = _index_rows(records, engine)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    atomic_write(ipath, lambda f: f.write(faiss.serialize_index(index).tobytes()))
    atomic_write(mpath, lambda f: f.write(json.dumps({"stamp": stamp, "owners": owners}).encode()))
    return index, owners


def search_library(
    library: Library,
    query: str,
    top_k: int = 10,
    engine: HeroEngine | None = None,
    candidates: int = 20,
    per_video: int = 3,
) -> list[Moment]:
    """Moments across every ingested video (VCMR): faiss picks up to `candidates` videos by their best
    rows, then each candidate's spans are scored, at most `per_video` moments per video."""
    records = library.records()
    if not records:
        return []
    if engine is not None:
        for r in records:
            before = r.info.get("hero_key")
            engine.encode_record(r)
            if r.info.get("hero_key") != before:
                library.put(r)
    index, owners = library_index(library, records, engine)
    if engine is not None and engine.can_search:
        q = engine.query_vectors([query])[0].numpy()
    else:
        from demo.text import embed

        q = embed([query])[0]
    q = (q / max(np.linalg.norm(q), 1e-6)).astype(np.float32)[None]
    sims, rows = index.search(q, min(index.ntotal, 50 * candidates))
    best: dict[str, float] = {}
    for s, i in zip(sims[0], rows[0]):
        if i >= 0 and owners[i] not in best:
            best[owners[i]] = float(s)
    by_id = {r.video_id: r for r in records}
    moments: list[Moment] = []
    for vid, vscore in list(best.items())[:candidates]:
        res = search_moments(by_id[vid], query, top_k=per_video, engine=engine)
        for m in res.moments:
            m.score = m.score * max(vscore, 0.0)  # the video's match weighs its moments, as VCMR does
            moments.append(m)
    moments.sort(key=lambda m: -m.score)
    return moments[:top_k]
