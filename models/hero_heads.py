"""HERO maths without parameters: span decoding and NMS as in the official eval, ranking/NCE losses.

All functions are vectorised over spans: candidate spans live in a (T, max_pred_l - min_pred_l) band
(start frame x length offset), never in a Python loop over (start, end) pairs.

Span conventions (official eval_vcmr.py / TVRetrieval): a span is (st, ed) frame indices with ed
inclusive; it is valid when ``min_pred_l <= ed - st < max_pred_l`` (defaults 2 and 16: 3 to 16
frames); its seconds are ``(st * interval, (ed + 1) * interval)``; NMS drops a lower-scored span of the
same video whose temporal IoU with a kept one is > ``nms_thd``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------
# span candidates


def span_band(st_prob: torch.Tensor, ed_prob: torch.Tensor, min_pred_l: int = 2, max_pred_l: int = 16):
    """Joint start*end scores of every valid span.

    st_prob, ed_prob (..., T) probabilities (or any non-negative scores).
    Returns (scores (..., T, W), ed_index (T, W)) with W = max_pred_l - min_pred_l; invalid spans
    (ending past the video) score 0 (as in the official masked product).
    """
    T = st_prob.shape[-1]
    d = torch.arange(min_pred_l, max_pred_l, device=st_prob.device)
    ed_idx = torch.arange(T, device=st_prob.device)[:, None] + d[None]  # (T, W)
    valid = ed_idx < T
    ed = ed_prob[..., ed_idx.clamp(max=T - 1)] * valid  # (..., T, W)
    return st_prob[..., :, None] * ed, ed_idx


def temporal_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (K, 2), b (M, 2) [start, end) -> (K, M) IoU (official: intersection / hull)."""
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(
        min=0
    )
    hull = torch.maximum(a[:, None, 1], b[None, :, 1]) - torch.minimum(a[:, None, 0], b[None, :, 0])
    return torch.where(hull > 0, inter / hull.clamp(min=1e-12), torch.zeros_like(inter))


def nms(
    spans: torch.Tensor,
    scores: torch.Tensor,
    nms_thd: float = 0.5,
    max_after_nms: int = 100,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy temporal NMS. spans (K, 2) [start, end), scores (K,), groups (K,) video ids (spans of
    different groups never suppress each other). Returns kept indices, best first.

    The loop runs over kept candidates only (<= max_after_nms); the IoU matrix is computed at once.
    """
    if spans.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=spans.device)
    order = torch.argsort(scores, descending=True, stable=True)
    spans = spans[order].float()
    iou = temporal_iou(spans, spans)  # (K, K)
    if groups is not None:
        g = groups[order]
        iou = iou * (g[:, None] == g[None, :])
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=spans.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= max_after_nms:
            break
        suppressed |= iou[i] > nms_thd
    return order[torch.tensor(keep, dtype=torch.long, device=spans.device)]


def decode_moments(
    st_logits: torch.Tensor,
    ed_logits: torch.Tensor,
    frame_interval: float = 1.5,
    min_pred_l: int = 2,
    max_pred_l: int = 16,
    max_before_nms: int = 200,
    nms_thd: float = 0.5,
    top_k: int = 100,
    video_score: float | torch.Tensor | None = None,
) -> list[dict]:
    """Single-video moment retrieval (SVMR) as in the official eval.

    st_logits, ed_logits (T,) for one query and one video (only real frames). Softmax over frames,
    joint P_st * P_ed (times ``video_score`` if given), spans of valid length, top
    ``max_before_nms``, NMS, top ``top_k``. Videos shorter than min_pred_l + 1 frames fall back to
    any span inside the video. Returns [{"start", "end", "score", "st_idx", "ed_idx"}] best first.
    """
    st = F.softmax(st_logits.float(), dim=-1)
    ed = F.softmax(ed_logits.float(), dim=-1)
    T = st.shape[-1]
    if T == 0:
        return []
    if T <= min_pred_l:
        min_pred_l, max_pred_l = 0, T
    max_pred_l = min(max_pred_l, T)
    band, ed_idx = span_band(st, ed, min_pred_l, max_pred_l)  # (T, W)
    if video_score is not None:
        band = band * video_score
    valid = (ed_idx < T).flatten()
    flat = band.flatten()
    cand = valid.nonzero()[:, 0]
    k = min(max_before_nms, len(cand))
    top = cand[torch.topk(flat[cand], k).indices]
    W = band.shape[1]
    st_i, ed_i = top // W, ed_idx.flatten()[top]
    keep = nms(torch.stack([st_i, ed_i + 1], 1), flat[top], nms_thd, top_k)
    return [
        {
            "start": float(s) * frame_interval,
            "end": float(e + 1) * frame_interval,
            "score": float(sc),
            "st_idx": int(s),
            "ed_idx": int(e),
        }
        for s, e, sc in zip(st_i[keep].tolist(), ed_i[keep].tolist(), flat[top][keep].tolist())
    ]


def decode_corpus_moments(
    st_logits: torch.Tensor,
    ed_logits: torch.Tensor,
    frame_mask: torch.Tensor,
    video_scores: torch.Tensor,
    q2c_alpha: float = 20.0,
    max_vcmr_video: int = 100,
    frame_interval: float = 1.5,
    min_pred_l: int = 2,
    max_pred_l: int = 16,
    max_before_nms: int = 200,
    nms_thd: float = 0.5,
    top_k: int = 100,
) -> list[dict]:
    """Video corpus moment retrieval (VCMR) for one query, as in the official eval.

    st_logits, ed_logits (Nv, T) masked with -1e4 beyond each video's length; frame_mask (Nv, T);
    video_scores (Nv,) max-over-frames cosine. The top ``max_vcmr_video`` videos by
    exp(alpha * cos) are kept; moment score = P_st * P_ed * exp(alpha * cos); top
    ``max_before_nms`` over all those videos, NMS per video, top ``top_k`` across videos.
    Returns [{"video_index", "start", "end", "score", "st_idx", "ed_idx"}] best first.
    """
    nv, T = st_logits.shape
    vs = torch.exp(q2c_alpha * video_scores.float())
    kv = min(max_vcmr_video, nv)
    vtop_s, vtop = torch.topk(vs, kv)
    st = F.softmax(st_logits[vtop].float(), -1) * frame_mask[vtop]
    ed = F.softmax(ed_logits[vtop].float(), -1) * frame_mask[vtop]
    max_pred_l = min(max_pred_l, T)
    min_pred_l = min(min_pred_l, max_pred_l - 1)
    band, ed_idx = span_band(st, ed, min_pred_l, max_pred_l)  # (kv, T, W)
    band = band * vtop_s[:, None, None]
    lens = frame_mask[vtop].sum(-1)  # (kv,)
    valid = ed_idx[None] < lens[:, None, None]
    flat = (band * valid).flatten()
    k = min(max_before_nms, int(valid.sum()))
    if k == 0:
        return []
    top = torch.topk(flat, k).indices
    W = band.shape[-1]
    v_local, rem = top // (T * W), top % (T * W)
    st_i, ed_i = rem // W, ed_idx.flatten()[rem]
    keep = nms(torch.stack([st_i, ed_i + 1], 1), flat[top], nms_thd, top_k, groups=v_local)
    return [
        {
            "video_index": int(vtop[v]),
            "start": float(s) * frame_interval,
            "end": float(e + 1) * frame_interval,
            "score": float(sc),
            "st_idx": int(s),
            "ed_idx": int(e),
        }
        for v, s, e, sc in zip(
            v_local[keep].tolist(), st_i[keep].tolist(), ed_i[keep].tolist(), flat[top][keep].tolist()
        )
    ]


def decode_evidence(st_logits: torch.Tensor, ed_logits: torch.Tensor) -> tuple[int, int]:
    """QA evidence span: argmax of P_st[i] * P_ed[j] over i <= j. (T,) logits -> (st, ed)."""
    st = F.softmax(st_logits.float(), -1)
    ed = F.softmax(ed_logits.float(), -1)
    joint = torch.triu(st[:, None] * ed[None, :])  # (T, T)
    i = int(torch.argmax(joint))
    return i // joint.shape[1], i % joint.shape[1]


# ------------------------------------------------------------------------------------------------
# losses


def video_ranking_losses(
    scores: torch.Tensor,
    q_vidx: torch.Tensor,
    margin: float = 0.1,
    loss_type: str = "hinge",
    hard_pool_size: int | None = None,
    hard_neg_weight: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global VSM losses against in-batch negatives (official ``get_video_level_loss``, all negatives).

    scores (Nq, Nv) query-video cosine; q_vidx (Nq,) each query's positive video.
    neg_ctx: per query, its positive score vs every other video; neg_q: per query, its positive
    score vs every query of another video scored on this query's video. Negatives are ranked
    hardest first; with ``hard_pool_size`` the hardest get weight ``hard_neg_weight``, the rest 0.1.
    Returns (loss_neg_ctx, loss_neg_q), each the mean over negatives then over queries.
    """
    nq, nv = scores.shape
    if nv == 1:
        z = scores.new_zeros(())
        return z, z
    ar = torch.arange(nq, device=scores.device)
    pos = scores[ar, q_vidx]  # (Nq,)
    ctx_neg = torch.ones_like(scores, dtype=torch.bool)
    ctx_neg[ar, q_vidx] = False
    q_scores = scores[:, q_vidx].t()  # (Nq, Nq'): score of query q' on q's video
    q_neg = q_vidx[None, :] != q_vidx[:, None]

    def ranked(neg_scores: torch.Tensor, neg_mask: torch.Tensor) -> torch.Tensor:
        s = neg_scores.masked_fill(~neg_mask, float("-inf"))
        s, _ = torch.sort(s, dim=1, descending=True)
        m = torch.isfinite(s)
        if loss_type == "hinge":
            loss = torch.clamp(margin + s - pos[:, None], min=0)
        elif loss_type == "lse":
            loss = torch.log1p(torch.exp(s - pos[:, None]))
        else:
            raise ValueError(f"unknown ranking loss {loss_type!r}")
        loss = torch.where(m, loss, torch.zeros_like(loss))
        if hard_pool_size is not None:
            w = torch.full_like(loss, 0.1)
            w[:, :hard_pool_size] = hard_neg_weight
            loss = loss * w
        per_q = loss.sum(1) / m.sum(1).clamp(min=1)
        has = m.any(1)
        return per_q[has].mean() if has.any() else scores.new_zeros(())

    return ranked(scores, ctx_neg), ranked(q_scores, q_neg)


def mfm_nce_logits(pred: torch.Tensor, targets: torch.Tensor, neg_pred: torch.Tensor) -> torch.Tensor:
    """MNCE logits: pred (M, D) vs [targets (M, D) ; neg_pred (Nn, D)] -> (M, M + Nn); the positive
    of row i is column i."""
    return torch.cat([pred @ targets.t(), pred @ neg_pred.t()], dim=1).float()
