"""HERO for the app: build batches from per-video inputs, encode whole videos, search, answer.

Pure tensor code (no tokenizer, no files). What to cache per video after ingest: ``v_temp`` and
``fused`` from :func:`encode_videos` (both (N, hidden) float32); a query then costs only
:func:`encode_queries` and the heads.

Inputs of one video: ``feats`` (N, D) float32 (one row per frame, frame i covers
[i * interval, (i + 1) * interval)) and ``subtitles``: a list of (token_ids, frame_indices), the
tokens WITHOUT special tokens (the model adds its own ``[sep]``), the frames the subtitle overlaps.

API
- ``build_video_batch(videos, config) -> HeroVideoBatch``: the padded cross-modal batch.
- ``encode_videos(model, videos, window=None, stride=None) -> list[VideoEncoding]`` and
  ``encode_video(model, feats, subtitles) -> VideoEncoding``: cross-modal once per subtitle, then
  the temporal transformer over windows of <= ``config.max_clip_len`` frames (50 % overlap),
  averaged where windows overlap; any video length. ``VideoEncoding.v_temp`` / ``.fused`` (N, H).
- ``pad_token_ids(seqs, pad_id) -> (ids, mask)``.
- ``encode_queries(model, token_id_lists) -> (Q, H)``: query vectors (token ids with the
  tokenizer's own [CLS]/[SEP] as produced by it).
- ``moment_logits(model, query_vectors, v_temp) -> dict``: per-frame start/end logits and
  probabilities (Q, N), video scores (Q,), per-frame cosine saliency (Q, N) for one cached video.
- ``search_moments(model, query_vector, v_temp, top_k) -> dict``: moments in seconds after NMS
  (hero_heads.decode_moments) + saliency.
- ``search_corpus(model, query_vector, v_temps, top_k) -> list[dict]``: VCMR across cached videos.
- ``answer_candidates(model, fused, qa_token_ids) -> dict``: QA scores per candidate + evidence.
  ``qa_token_ids`` are the candidates' ``[sep] q [sep] a`` ids (use :func:`qa_input_ids`).
- ``encode_candidates(model, feats, subtitles, qa_token_ids) -> (C, N, H)``: the official TVQA input
  (``qa_video_inputs``: question and answer appended to every subtitle in the cross-modal
  transformer), fused frames per candidate for ``answer_candidates``; what checkpoints with
  ``config.qa_in_subtitles`` read (one cross-modal pass per candidate per question);
  ``candidate_batch`` builds that input for many videos at once (fine-tuning).

Notes
- Batched == single: a video's outputs do not depend on what it is batched with (tested). The
  official code, batching videos of different lengths, lets the start/end Conv1d read the temporal
  encoder's outputs at padded frames; here every video is scored on its own frames with zeros
  beyond its end (= an unpadded official forward).
- hero-mini text ids come from the bundled MiniLM WordPiece tokenizer: queries as the tokenizer
  gives them ([CLS] ... [SEP]); subtitles and QA text without special tokens. The bundled
  tokenizer.json pads to 128 unless told not to (``Tokenizer.no_padding()``; BertTokenizerFast
  does not pad by default).
- CPU threads: small calls (one query) lose badly to OpenMP synchronisation on a busy machine;
  ``torch.set_num_threads(1)`` around query-time calls is faster there.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from models import hero_heads
from models.hero import HeroConfig, HeroForPretraining, HeroForVideoQA, HeroModel, HeroVideoBatch

Subtitle = tuple[Sequence[int], Sequence[int]]  # (token ids, frame indices)

CANDIDATE_SEQS = 1024  # subtitle sequences per cross-modal pass of ``encode_candidates``
SUB_TOKEN_LIMIT = 128  # tokens a batch keeps per subtitle (the app's and training's default)


# ------------------------------------------------------------------------------------------------
# batches


def build_video_batch(
    videos: Sequence[tuple[torch.Tensor | np.ndarray, Sequence[Subtitle]]],
    config: HeroConfig,
    max_sub_tokens: int = SUB_TOKEN_LIMIT,
) -> HeroVideoBatch:
    """Videos [(feats (N_i, D), subtitles)] -> HeroVideoBatch (B videos padded to max N_i).

    Per subtitle: text = [sep] + tokens (truncated to ``max_sub_tokens``), frames = its sorted unique
    in-range frame indices (first ``config.max_frm_seq_len`` kept). Subtitles covering no frame are
    dropped: the official model computes them but never uses their outputs.
    """
    feats = [torch.from_numpy(np.ascontiguousarray(f)) if isinstance(f, np.ndarray) else f for f, _ in videos]
    B = len(feats)
    T = max(1, max(f.shape[0] for f in feats))
    D = config.vfeat_dim
    frame_feats = torch.zeros(B, T, D)
    frame_mask = torch.zeros(B, T)
    texts, nframes, pair_frame, pair_pos, pair_sub = [], [], [], [], []
    for b, (f, (_, subs)) in enumerate(zip(feats, videos)):
        n = f.shape[0]
        if n and f.shape[1] != D:
            raise ValueError(f"video {b}: feature dim {f.shape[1]} != config.vfeat_dim {D}")
        frame_feats[b, :n] = f
        frame_mask[b, :n] = 1
        for toks, frames in subs:
            fr = sorted({int(i) for i in frames if 0 <= int(i) < n})[: config.max_frm_seq_len]
            if not fr:
                continue
            s = len(texts)
            texts.append([config.sep_token_id] + [int(t) for t in toks][:max_sub_tokens])
            nframes.append(len(fr))
            pair_frame.extend(b * T + i for i in fr)
            pair_pos.extend(range(len(fr)))
            pair_sub.extend([s] * len(fr))
    ids, _ = pad_token_ids(texts or [[config.sep_token_id]], config.pad_token_id)
    if not texts:  # no subtitle at all: an empty cross-modal batch
        ids = ids[:0]

    def long(x):
        return torch.tensor(x, dtype=torch.long)

    return HeroVideoBatch(
        frame_feats=frame_feats,
        frame_mask=frame_mask,
        sub_input_ids=ids,
        sub_txt_lens=long([len(t) for t in texts]),
        sub_num_frames=long(nframes),
        pair_frame_index=long(pair_frame),
        pair_pos=long(pair_pos),
        pair_sub=long(pair_sub),
    )


def pad_token_ids(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lists of ids -> ids (N, Lmax) long padded with ``pad_id``, mask (N, Lmax) float."""
    lens = np.fromiter((len(s) for s in seqs), np.int64, len(seqs))
    L = max(1, int(lens.max(initial=1)))
    keep = np.arange(L) < lens[:, None]  # row-major: fills each row's first len(s) slots in order
    ids = np.full((len(seqs), L), pad_id, dtype=np.int64)
    ids[keep] = np.fromiter(itertools.chain.from_iterable(seqs), np.int64, int(lens.sum()))
    return torch.from_numpy(ids), torch.from_numpy(keep.astype(np.float32))


def qa_input_ids(question_ids: Sequence[int], answer_ids: Sequence[Sequence[int]], sep_id: int):
    """Candidates' temporal-transformer text: [sep] q [sep] a for each answer."""
    return [[sep_id, *question_ids, sep_id, *a] for a in answer_ids]


# ------------------------------------------------------------------------------------------------
# encoding


@dataclass
class VideoEncoding:
    """Cache of one video: v_temp (N, H) temporal outputs (search); fused (N, H) pre-temporal frame
    reps (QA). float32 on CPU."""

    v_temp: torch.Tensor
    fused: torch.Tensor


def default_window(config: HeroConfig) -> int:
    """Frames per temporal window: max_clip_len (100), within the temporal position table."""
    return min(config.max_clip_len, config.c_config.max_position_embeddings)


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Window starts covering n frames; the last window ends at the video end (all full length)."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window, stride))
    return starts + [n - window]


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _autocast(device: torch.device, enabled: bool | None):
    """bf16 autocast on CUDA (default on), nothing on CPU."""
    if device.type == "cuda" and enabled is not False:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _windows(lengths: Sequence[int], window: int, stride: int):
    """(video, start) of every window and a (n_windows, window) flat frame index (-1 = pad)."""
    T = max(lengths)
    owners, idx = [], []
    for v, n in enumerate(lengths):
        for s in window_starts(n, window, stride):
            w = min(window, n)
            row = [v * T + s + i for i in range(w)] + [-1] * (min(window, T) - w)
            owners.append(v)
            idx.append(row)
    return owners, torch.tensor(idx, dtype=torch.long)


def temporal_windows(model: HeroModel, fused: torch.Tensor, mask: torch.Tensor, window=None, stride=None):
    """Temporal transformer over overlapping windows, averaged where they overlap.

    fused (B, T, H), mask (B, T) -> v_temp (B, T, H) (zeros on padding). Windows of all videos run
    as one batch; each window's positions restart at 0 (as in training, <= max_clip_len frames).
    """
    B, T, H = fused.shape
    window = window or default_window(model.config)
    stride = stride or max(1, window // 2)
    if window > model.config.c_config.max_position_embeddings:
        raise ValueError(
            f"window {window} > temporal position table {model.config.c_config.max_position_embeddings}"
        )
    lengths = mask.sum(1).long().tolist()
    _, idx = _windows([max(1, n) for n in lengths], window, stride)  # (W, Lw)
    idx = idx.to(fused.device)
    wmask = (idx >= 0).to(mask.dtype)
    flat = fused.reshape(B * T, H)
    x = flat[idx.clamp(min=0)]  # (W, Lw, H)
    out = model.v_encoder.c_encoder(x, wmask).float()  # (W, Lw, H)
    keep = idx >= 0
    acc = torch.zeros(B * T, H, device=fused.device).index_add_(0, idx[keep], out[keep])
    cnt = torch.zeros(B * T, device=fused.device).index_add_(
        0, idx[keep], torch.ones_like(idx[keep], dtype=torch.float)
    )
    v = acc / cnt.clamp(min=1)[:, None]
    return (v.view(B, T, H) * mask[..., None]).to(fused.dtype)


@torch.no_grad()
def encode_videos(
    model: HeroModel,
    videos: Sequence[tuple[torch.Tensor | np.ndarray, Sequence[Subtitle]]],
    window: int | None = None,
    stride: int | None = None,
    autocast: bool | None = None,
    max_sub_tokens: int = SUB_TOKEN_LIMIT,
) -> list[VideoEncoding]:
    """Encode whole videos of any length (one cross-modal pass over all their subtitles, one
    temporal pass over all windows). Returns one VideoEncoding per video, float32 on CPU."""
    model.eval()
    dev = _device_of(model)
    batch = build_video_batch(videos, model.config, max_sub_tokens).to(dev)
    with _autocast(dev, autocast):
        out = model.v_encoder.forward_repr(batch, encode_clip=False)
        v_temp = temporal_windows(model, out.fused, out.mask, window, stride)
    res = []
    for b, (f, _) in enumerate(videos):
        n = len(f)
        res.append(VideoEncoding(v_temp=v_temp[b, :n].float().cpu(), fused=out.fused[b, :n].float().cpu()))
    return res


def encode_video(model: HeroModel, feats, subtitles: Sequence[Subtitle], **kw) -> VideoEncoding:
    """One video: feats (N, D), subtitles [(token ids, frame indices)] -> VideoEncoding (N, H)."""
    return encode_videos(model, [(feats, subtitles)], **kw)[0]


@torch.no_grad()
def encode_queries(
    model: HeroForPretraining, token_ids: Sequence[Sequence[int]], autocast: bool | None = None
) -> torch.Tensor:
    """Query token ids -> query vectors (Q, H) float32 CPU."""
    model.eval()
    dev = _device_of(model)
    ids, mask = pad_token_ids(token_ids, model.config.pad_token_id)
    with _autocast(dev, autocast):
        return model.encode_query(ids.to(dev), mask.to(dev)).float().cpu()


# ------------------------------------------------------------------------------------------------
# search


@torch.no_grad()
def video_scores(
    model: HeroForPretraining, query_vectors: torch.Tensor, v_temp: torch.Tensor
) -> torch.Tensor:
    """VSM's global score over one cached video: query_vectors (Q, H), v_temp (N, H) -> (Q,) max over
    the frames of cosine(query, frame) (what `moment_logits` reports, without the span heads)."""
    dev = _device_of(model)
    q, v = query_vectors.to(dev, torch.float32), v_temp.to(dev, torch.float32)[None]
    return model.video_scores(q, v, torch.ones(v.shape[:2], device=dev))[:, 0].cpu()


@torch.no_grad()
def moment_logits(model: HeroForPretraining, query_vectors: torch.Tensor, v_temp: torch.Tensor) -> dict:
    """Heads over one cached video: query_vectors (Q, H), v_temp (N, H) ->
    {"st_logits"/"ed_logits" (Q, N), "st_probs"/"ed_probs" (Q, N) softmax over the video's frames,
    "video_scores" (Q,) max-over-frames cosine, "saliency" (Q, N) per-frame cosine}."""
    model.eval()
    dev = _device_of(model)
    q, v = query_vectors.to(dev, torch.float32), v_temp.to(dev, torch.float32)[None]  # (1, N, H)
    mask = torch.ones(v.shape[:2], device=dev)
    st, ed = model.span_logits(q, v, mask, cross=True)  # (Q, 1, N)
    qn = torch.nn.functional.normalize(q, dim=-1, eps=1e-5)
    vn = torch.nn.functional.normalize(v[0], dim=-1, eps=1e-5)
    sal = qn @ vn.t()  # (Q, N)
    return {
        "st_logits": st[:, 0].cpu(),
        "ed_logits": ed[:, 0].cpu(),
        "st_probs": torch.softmax(st[:, 0], -1).cpu(),
        "ed_probs": torch.softmax(ed[:, 0], -1).cpu(),
        "video_scores": sal.max(dim=1).values.cpu(),
        "saliency": sal.cpu(),
    }


def decoding(model, **decode_kw) -> dict:
    """The checkpoint's frame interval and span band (config), unless the caller gives them: the
    keyword arguments of ``hero_heads.decode_moments`` / ``decode_corpus_moments``."""
    return {k: getattr(model.config, k) for k in ("frame_interval", "min_pred_l", "max_pred_l")} | decode_kw


def search_moments(
    model: HeroForPretraining,
    query_vector: torch.Tensor,
    v_temp: torch.Tensor,
    top_k: int = 10,
    **decode_kw,
) -> dict:
    """SVMR in one cached video. query_vector (H,), v_temp (N, H) ->
    {"moments": [{"start","end","score","st_idx","ed_idx"}], "saliency": (N,) cosine, "video_score"}."""
    r = moment_logits(model, query_vector[None], v_temp)
    moments = hero_heads.decode_moments(
        r["st_logits"][0], r["ed_logits"][0], top_k=top_k, **decoding(model, **decode_kw)
    )
    return {"moments": moments, "saliency": r["saliency"][0], "video_score": float(r["video_scores"][0])}


@torch.no_grad()
def search_corpus(
    model: HeroForPretraining,
    query_vector: torch.Tensor,
    v_temps: Sequence[torch.Tensor],
    top_k: int = 10,
    **decode_kw,
) -> list[dict]:
    """VCMR over cached videos: v_temps [(N_i, H)] -> moments with "video_index" (official eval)."""
    model.eval()
    dev = _device_of(model)
    T = max(v.shape[0] for v in v_temps)
    H = v_temps[0].shape[1]
    v = torch.zeros(len(v_temps), T, H, device=dev)
    mask = torch.zeros(len(v_temps), T, device=dev)
    for i, x in enumerate(v_temps):
        v[i, : len(x)] = x.to(dev, torch.float32)
        mask[i, : len(x)] = 1
    q = query_vector.to(dev, torch.float32)[None]
    st, ed = model.span_logits(q, v, mask, cross=True)  # (1, Nv, T)
    vs = model.video_scores(q, v, mask)[0]  # (Nv,)
    return hero_heads.decode_corpus_moments(
        st[0].cpu(), ed[0].cpu(), mask.cpu(), vs.cpu(), top_k=top_k, **decoding(model, **decode_kw)
    )


# ------------------------------------------------------------------------------------------------
# QA


@torch.no_grad()
def answer_candidates(
    model: HeroForVideoQA,
    fused: torch.Tensor,
    qa_token_ids: Sequence[Sequence[int]],
    window: int | None = None,
    stride: int | None = None,
    autocast: bool | None = None,
) -> dict:
    """Score answer candidates from a video's cached fused frame reps.

    fused (N, H) the video's cached frames, or (C, N, H) one per candidate (``encode_candidates``,
    the official TVQA input: "[sep] q [sep] a" also appended to every subtitle, for checkpoints with
    ``config.qa_in_subtitles``); qa_token_ids: C lists "[sep] q [sep] a". Long videos run per window
    (same windows as encoding); a candidate's score is its best window logit, the evidence span comes
    from the window holding the best candidate. Returns {"scores" (C,), "answer_index", "st_idx",
    "ed_idx", "st_logits" (Lw,), "ed_logits" (Lw,), "window_start"}.
    """
    model.eval()
    dev = _device_of(model)
    C = len(qa_token_ids)
    per_candidate = fused.dim() == 3
    if per_candidate and fused.shape[0] != C:
        raise ValueError(f"fused has {fused.shape[0]} candidates' frames, qa_token_ids {C}")
    N, H = fused.shape[-2:]
    window = window or default_window(model.config)
    stride = stride or max(1, window // 2)
    starts = window_starts(N, window, stride)
    Lw = min(window, N)
    idx = torch.tensor([[s + i for i in range(Lw)] for s in starts])  # (W, Lw)
    if per_candidate:
        frames = fused.to(dev, torch.float32)[:, idx.to(dev)].transpose(0, 1)  # (W, C, Lw, H)
    else:
        frames = fused.to(dev, torch.float32)[idx.to(dev)][:, None].expand(-1, C, -1, -1)  # (W, C, Lw, H)
    frames = frames.reshape(-1, Lw, H)  # (W*C, Lw, H)
    mask = torch.ones(frames.shape[:2], device=dev)
    ids, qmask = pad_token_ids(qa_token_ids, model.config.pad_token_id)
    ids = ids.repeat(len(starts), 1).to(dev)  # (W*C, Lqa)
    qmask = qmask.repeat(len(starts), 1).to(dev)
    with _autocast(dev, autocast):
        out = model.qa_heads(frames, mask, ids, qmask, num_candidates=C)
    logits = out.logits.float().cpu()  # (W, C)
    scores, _ = logits.max(0)
    w_best = int(logits.max(1).values.argmax())
    st_l, ed_l = out.st_logits[w_best].float().cpu(), out.ed_logits[w_best].float().cpu()
    st, ed = hero_heads.decode_evidence(st_l, ed_l)
    s0 = starts[w_best]
    return {
        "scores": scores,
        "answer_index": int(scores.argmax()),
        "st_idx": s0 + st,
        "ed_idx": s0 + ed,
        "st_logits": st_l,
        "ed_logits": ed_l,
        "window_start": s0,
    }


def qa_video_inputs(
    feats,
    subtitles: Sequence[Subtitle],
    qa_token_ids: Sequence[Sequence[int]],
    max_sub_tokens: int = SUB_TOKEN_LIMIT,
):
    """Official TVQA input: one copy of the video per candidate with its "[sep] q [sep] a" appended
    to every subtitle's tokens, each subtitle first cut to ``max_sub_tokens`` so the candidate is
    never cut (feed to build_video_batch with room for both; rows are candidate-major)."""
    subs = [(list(t)[:max_sub_tokens], fr) for t, fr in subtitles]
    return [(feats, [(t + list(qa), fr) for t, fr in subs]) for qa in qa_token_ids]


def candidate_batch(
    videos: Sequence[tuple[object, Sequence[Subtitle], Sequence[Sequence[int]]]],
    config: HeroConfig,
    max_sub_tokens: int = SUB_TOKEN_LIMIT,
) -> HeroVideoBatch:
    """[(feats, subtitles, candidates' qa ids)] -> one HeroVideoBatch of the official TVQA input, a row
    per (video, candidate), video-major, with room in every subtitle for its longest candidate."""
    longest = max((len(q) for _, _, cands in videos for q in cands), default=0)
    rows = [x for f, subs, cands in videos for x in qa_video_inputs(f, subs, cands, max_sub_tokens)]
    return build_video_batch(rows, config, max_sub_tokens + longest)


@torch.no_grad()
def encode_candidates(
    model: HeroForVideoQA,
    feats,
    subtitles: Sequence[Subtitle],
    qa_token_ids: Sequence[Sequence[int]],
    autocast: bool | None = None,
    max_sub_tokens: int = SUB_TOKEN_LIMIT,
) -> torch.Tensor:
    """Fused frame reps (C, N, H), one per candidate, from the official TVQA input (``qa_video_inputs``:
    the candidate's "[sep] q [sep] a" appended to every subtitle in the cross-modal transformer). Feed
    to ``answer_candidates`` in place of the video's cached fused frames. float32 on CPU. Candidates
    run together up to ``CANDIDATE_SEQS`` subtitle sequences per pass (a long video: one at a time)."""
    model.eval()
    dev = _device_of(model)
    per = max(1, CANDIDATE_SEQS // max(1, len(subtitles)))
    out = []
    for i in range(0, len(qa_token_ids), per):
        cands = qa_token_ids[i : i + per]
        batch = candidate_batch([(feats, subtitles, cands)], model.config, max_sub_tokens).to(dev)
        with _autocast(dev, autocast):
            out.append(model.v_encoder.forward_repr(batch, encode_clip=False).fused.float().cpu())
    return torch.cat(out)
