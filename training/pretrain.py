"""HERO pre-training on SynthTV: MLM, MFM-NCE (MNCE), FOM, VSM mixed by ratio (official 2:2:1:2).

As the official pre-training (config/pretrain-tv-16gpu.json): one task per step drawn with
probability proportional to its ratio; mask_prob 0.15 for MLM tokens and MFM frames; FOM reorders
15 % of the frames and classifies each moved frame's original position; VSM uses subtitles of the
video as queries and blanks their words from the video's input (local start/end loss dropped with
probability drop_svmr_prob 0.8, global hinge losses with all in-batch negatives). Differences: many
fewer steps at a higher learning rate; word embeddings frozen at MiniLM's; MFFR not used (optional
in the issue).

    python -m training.pretrain --train DIR --val DIR --out DIR [--smoke] [--steps N] [--tasks mlm,mnce,fom,vsm]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace

import numpy as np
import torch

from training import common
from training.caption_data import pad_sequences
from training.data import Episode, draw_episodes, pad, video_batch, video_inputs, window_bounds

TASKS = ("mlm", "mnce", "fom", "vsm")
OFFICIAL_RATIO = {"mlm": 2, "mnce": 2, "fom": 1, "vsm": 2}
MASK_PROB = 0.15
DROP_SVMR_PROB = 0.8
VSM_PER_VIDEO = 5  # subtitles per video used as VSM queries (official VsmDataset query_per_video)
# what ``pretrain(freeze_cross=True)`` keeps fixed: the cross-modal transformer (its cached outputs)
CACHED_FIXED = ("v_encoder.f_encoder.", "v_encoder.mask_embedding.")
MASK_ID, CLS_ID, SEP_ID = 103, 101, 102


# ------------------------------------------------------------------------------------------------
# task inputs (pure functions of a batch + rng)


def mlm_inputs(batch, rng: np.random.Generator, vocab: int = 30522):
    """BERT masking of subtitle tokens (not the leading [sep]): 80 % [MASK], 10 % random, 10 % kept.
    Returns (masked_ids (S, Lt), labels (S, Lt) original id at masked positions else -1)."""
    ids = batch.sub_input_ids
    S, Lt = ids.shape
    j = torch.arange(Lt)[None]
    real = (j >= 1) & (j < batch.sub_txt_lens[:, None])
    sel = torch.from_numpy(rng.random((S, Lt)) < MASK_PROB) & real
    if not sel.any() and real.any():
        r = real.nonzero()[rng.integers(len(real.nonzero()))]
        sel[r[0], r[1]] = True
    labels = torch.where(sel, ids, torch.full_like(ids, -1))
    u = torch.from_numpy(rng.random((S, Lt)))
    masked = ids.clone()
    masked[sel & (u < 0.8)] = MASK_ID
    rnd = sel & (u >= 0.8) & (u < 0.9)
    masked[rnd] = torch.from_numpy(rng.integers(1000, vocab, int(rnd.sum())))
    return masked, labels


def mfm_masks(batch, rng: np.random.Generator) -> torch.Tensor:
    """(B, T) bool: 15 % of each video's real frames (>= 1) masked."""
    real = batch.frame_mask.bool()
    m = torch.from_numpy(rng.random(real.shape) < MASK_PROB) & real
    for b in range(real.shape[0]):
        n = int(real[b].sum())
        if n and not m[b].any():
            m[b, rng.integers(n)] = True
    return m


def fom_inputs(frame_mask: torch.Tensor, rng: np.random.Generator, ratio: float = MASK_PROB):
    """Reorder ``ratio`` of each video's frames (>= 2) among themselves; frame_mask (B, T).
    Returns orders (B, T) (frame at t moves to orders[b, t]) and targets (B, T) (original position of
    the frame now at t, -1 where nothing moved in)."""
    B, T = frame_mask.shape
    orders = torch.arange(T).repeat(B, 1)
    targets = torch.full((B, T), -1, dtype=torch.long)
    for b in range(B):
        n = int(frame_mask[b].sum())
        if n < 2:
            continue
        k = max(2, round(ratio * n))
        sel = np.sort(rng.choice(n, k, replace=False))
        perm = rng.permutation(k)
        while k > 1 and np.all(perm == np.arange(k)):
            perm = rng.permutation(k)
        dest = sel[perm]
        orders[b, torch.from_numpy(sel)] = torch.from_numpy(dest)
        targets[b, torch.from_numpy(dest)] = torch.from_numpy(sel)
    return orders, targets


def vsm_queries(videos: list[tuple[int, list]], rng: np.random.Generator, per_video: int, drop_svmr: float):
    """The official VsmDataset's query draw over ``videos`` [(n frames, subtitles [(ids, frames)])]: up
    to ``per_video`` subtitles of each video that cover a frame become queries. Returns (the picked
    subtitle indices per video, ([CLS] sub [SEP] ids, mask, q_vidx, targets)), targets (first frame,
    last frame but at least first + 1 as officially) or -1 with probability ``drop_svmr``; None if no
    query."""
    ids, vidx, tg, picks = [], [], [], []
    for v, (n, subs) in enumerate(videos):
        cand = [j for j, s in enumerate(subs) if s[1]]
        picked = [cand[i] for i in rng.choice(len(cand), min(per_video, len(cand)), replace=False)]
        for j in picked:
            t, fr = subs[j]
            ids.append([CLS_ID, *t, SEP_ID])
            vidx.append(v)
            keep = rng.random() >= drop_svmr or not tg
            tg.append((fr[0], min(max(fr[0] + 1, fr[-1]), n - 1)) if keep else (-1, -1))
        picks.append(picked)
    if not ids:
        return None
    i, m = pad(ids)
    return picks, (i, m, torch.tensor(vidx), torch.tensor(tg, dtype=torch.long))


def vsm_inputs(
    eps: list[Episode],
    rng: np.random.Generator,
    per_video: int = VSM_PER_VIDEO,
    drop_svmr: float = DROP_SVMR_PROB,
):
    """Subtitles as queries (``vsm_queries``), and their text blanked from the video's input (their
    frames keep the [sep] alone), so a query is found by what its frames show and by the rest of the
    video, not by its own words in the subtitle track.
    Returns (the episodes with those subtitles blanked, (ids, mask, q_vidx, targets)); None if no query."""
    q = vsm_queries([(e.n, e.subs) for e in eps], rng, per_video, drop_svmr)
    if q is None:
        return None
    picks, query = q
    blanked = []
    for e, picked in zip(eps, picks):
        gone = set(picked)
        blanked.append(replace(e, subs=[([], s[1]) if j in gone else s for j, s in enumerate(e.subs)]))
    return blanked, query


def task_inputs(
    task: str,
    eps: list[Episode],
    rng,
    config,
    variant: str,
    concepts: bool,
    vsm_per_video: int = VSM_PER_VIDEO,
) -> dict | None:
    """One pre-training task's CPU inputs for one batch (None: nothing to learn from)."""
    if task == "vsm":
        q = vsm_inputs(eps, rng, per_video=vsm_per_video)
        return None if q is None else {"batch": video_batch(q[0], config, variant, concepts), "query": q[1]}
    batch = video_batch(eps, config, variant, concepts)
    if task == "mlm":
        if batch.sub_input_ids.shape[0] == 0:
            return None
        masked, labels = mlm_inputs(batch, rng)
        return {"batch": batch, "masked": masked, "labels": labels}
    if task == "mnce":
        return {"batch": batch, "masks": mfm_masks(batch, rng)}
    if task == "fom":
        orders, targets = fom_inputs(batch.frame_mask, rng)
        return {"batch": batch, "orders": orders, "targets": targets}
    raise ValueError(f"unknown task {task!r}")


def _windows(eps: list[Episode], rng, crop_min: float | None, variant: str = "full"):
    """Each video's ``window_bounds`` window [(start, length)] (whole with ``crop_min`` None) and its raw
    features as the model sees them, padded (B, T, D): the cached steps' common cut."""
    wins = [window_bounds(e.n, rng, crop_min) if crop_min is not None else (0, e.n) for e in eps]
    feats, _ = pad_sequences([video_inputs(e, variant)[0][st : st + n] for e, (st, n) in zip(eps, wins)])
    return wins, feats


def cached_fom_inputs(eps: list[Episode], cross: dict[str, torch.Tensor], rng, crop_min: float | None,
                      variant: str = "full") -> dict:  # fmt: skip
    """FOM inputs from cached cross-modal outputs (``cache_fused(cross_only=True)``): each video cut
    to a ``window_bounds`` window (whole with ``crop_min`` None); raw features (B, T, D), cross-modal
    sums (B, T, H), mask (B, T), orders, targets."""
    wins, feats = _windows(eps, rng, crop_min, variant)
    x, real = pad_sequences([cross[e.id][st : st + n] for e, (st, n) in zip(eps, wins)])
    mask = real.float()
    orders, targets = fom_inputs(mask, rng)
    return {"cached": (feats, x, mask), "orders": orders, "targets": targets}


@dataclass
class CachedSub:
    """One subtitle of a video with the cross-modal transformer fixed (``cache_vsm``): its token ids,
    the frames it covers (k,), what its words add to those frames' cross-modal outputs (k, H) (VSM
    blanks a query's words by subtracting it: the frames' outputs are sums over their subtitles), and
    its own text through the cross-modal transformer, [CLS] ids [SEP] (L, H) (the query side)."""

    ids: list[int]
    frames: torch.Tensor
    delta: torch.Tensor
    query: torch.Tensor


@torch.no_grad()
def cache_vsm(model, eps: list[Episode], concepts: bool = False, device="cpu", batch_size: int = 32,
              show_progress: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, list[CachedSub]]]:  # fmt: skip
    """From the cross-modal transformer in eval mode (``pretrain(freeze_cross=True)``'s VSM), per
    episode id: its cross-modal sums (n, H), as ``cache_fused(cross_only=True)``, and its subtitles
    that cover a frame, in order, as ``CachedSub``. Full input only (concept entries stay in the sums
    and are never queries)."""
    was = model.training
    model.to(device).eval()
    f_enc = model.v_encoder.f_encoder
    cross, out = {}, {}
    bar = common.progress(None, len(eps), "cache subtitles", show_progress)
    for i in range(0, len(eps), batch_size):
        chunk = eps[i : i + batch_size]
        # the cross-modal sequences in batch order: (video, ids, is a subtitle) per entry covering a frame
        seqs = [(v, t, k < len(e.subs)) for v, e in enumerate(chunk)
                for k, (t, fr) in enumerate(video_inputs(e, "full", concepts)[1]) if any(0 <= f < e.n for f in fr)]  # fmt: skip
        no_words = [replace(e, subs=[([], fr) for _, fr in e.subs]) for e in chunk]
        with common.autocast(torch.device(device)):
            b = video_batch(chunk, model.config, "full", concepts).to(device)
            blank = video_batch(no_words, model.config, "full", concepts)
            assert torch.equal(blank.pair_frame_index, b.pair_frame_index.cpu())
            h_word = f_enc.forward_fused(b, frames_only=True)  # (S, K, H)
            h_none = f_enc.forward_fused(blank.to(device), frames_only=True)
            S, K, H = h_word.shape
            rows = b.pair_sub * K + b.pair_pos
            B, T = b.frame_mask.shape
            sums = h_word.new_zeros(B * T, H).index_add_(0, b.pair_frame_index, h_word.reshape(-1, H)[rows])
            delta = (h_word.reshape(-1, H)[rows] - h_none.reshape(-1, H)[rows]).float().cpu()
            subs = [(s, t) for s, (_, t, is_sub) in enumerate(seqs) if is_sub]
            ids, mask = pad([[CLS_ID, *t, SEP_ID] for _, t in subs])
            text = f_enc.forward_text(ids.to(device), mask.to(device)).float().cpu()
        assert len(seqs) == S, "one cross-modal sequence per entry that covers a frame"
        sums = sums.view(B, T, H).float().cpu()
        for v, e in enumerate(chunk):
            cross[e.id] = sums[v, : e.n]
        pair_sub, pair_frame = b.pair_sub.cpu(), b.pair_frame_index.cpu()
        for q, (s, t) in enumerate(subs):
            sel = pair_sub == s
            sub = CachedSub(list(t), pair_frame[sel] % T, delta[sel], text[q, : int(mask[q].sum())])
            out.setdefault(chunk[seqs[s][0]].id, []).append(sub)
        bar.update(len(chunk))
    model.train(was)
    return cross, out


def cached_vsm_inputs(eps: list[Episode], cross: dict[str, torch.Tensor], subs: dict[str, list[CachedSub]],
                      rng, crop_min: float | None, per_video: int = VSM_PER_VIDEO,
                      drop_svmr: float = DROP_SVMR_PROB) -> dict | None:  # fmt: skip
    """VSM inputs from cached cross-modal outputs (``cache_vsm``):
    each video cut to a ``window_bounds`` window (whole with ``crop_min`` None), the queries drawn as
    ``vsm_inputs`` draws them from the window's subtitles, and their words taken out of the cached sums.
    Returns {"cached": (raw features (B, T, D), blanked sums (B, T, H), mask (B, T), query token states
    (Q, L, H), their mask (Q, L)), "query": (ids, mask, q_vidx, targets)}; None if no query."""
    wins, feats = _windows(eps, rng, crop_min)
    inside = []  # per video: [(CachedSub, its frames in the window, window-relative)]
    for e, (st, n) in zip(eps, wins):
        kept = [(c, (c.frames >= st) & (c.frames < st + n)) for c in subs.get(e.id, [])]
        inside.append([(c, m) for c, m in kept if m.any()])
    q = vsm_queries([(n, [(c.ids, (c.frames[m] - st).tolist()) for c, m in ins])
                     for (st, n), ins in zip(wins, inside)], rng, per_video, drop_svmr)  # fmt: skip
    if q is None:
        return None
    picks, query = q
    xs, states = [], []
    for e, (st, n), ins, picked in zip(eps, wins, inside, picks):
        x = cross[e.id][st : st + n].clone()
        for j in picked:
            c, m = ins[j]
            x.index_add_(0, c.frames[m] - st, -c.delta[m])
            states.append(c.query)
        xs.append(x)
    x, real = pad_sequences(xs)
    qtok, qreal = pad_sequences(states)
    return {"cached": (feats, x, real.float(), qtok, qreal.float()), "query": query}


def task_forward(model, task: str, inp: dict, device) -> dict:
    """One pre-training task on ``task_inputs``' (or ``cached_fom_inputs``' / ``cached_vsm_inputs``')
    output -> {"loss", **metrics}."""
    enc = model.v_encoder
    if task == "fom":
        orders, targets = inp["orders"].to(device), inp["targets"].to(device)
        if "cached" in inp:  # cached cross-modal outputs: only the frame embedder + temporal side run
            feats, x, mask = (t.to(device) for t in inp["cached"])
            fused = enc.frame_transform(feats) + x  # as HierarchicalVlModel.forward_repr
            out = model.fom_from_fused(fused, mask, orders, targets)
        else:
            out = model.forward_fom(inp["batch"].to(device), orders, targets)
        sel = targets >= 0
        return {"loss": out["loss"], "acc": (out["logits"].argmax(-1)[sel] == targets[sel]).float().mean()}
    if task == "vsm":
        ids, mask, vidx, tg = (x.to(device) for x in inp["query"])
        if "cached" in inp:
            feats, x, fmask, qtok, qmask = (t.to(device) for t in inp["cached"])
            v_temp = enc.c_encoder(enc.frame_transform(feats) + x, fmask)
            out = model.vsm_heads(model.q_feat_attn(qtok, qmask), v_temp, fmask, vidx, tg)
        else:
            out = model.forward_vsm(inp["batch"].to(device), ids, mask, vidx, tg)
        acc = (out.video_scores.argmax(-1) == vidx).float().mean()
        return {"loss": out.loss_st_ed + out.loss_neg_ctx + out.loss_neg_q, "acc": acc}
    batch = inp["batch"].to(device)
    if task == "mlm":
        labels = inp["labels"].to(device)
        out = model.forward_mlm(batch, inp["masked"].to(device), labels)
        acc = (out["logits"].argmax(-1) == labels[labels >= 0]).float().mean()
        return {"loss": out["loss"], "acc": acc}
    if task == "mnce":
        return {"loss": model.forward_mfm(batch, inp["masks"].to(device), loss="nce")["loss"]}
    raise ValueError(f"unknown task {task!r}")


# ------------------------------------------------------------------------------------------------
# held-out probes (the smoke test's "beats chance")


@torch.no_grad()
def probe(
    model,
    eps: list[Episode],
    device,
    batch_size: int = 16,
    seed: int = 0,
    variant="full",
    concepts=False,
    queries_per_video: int = 8,
) -> dict:
    """FOM accuracy on reordered frames, each moved frame's original position chosen among the
    moved frames' positions (chance = 1 / frames moved per video), and VSM video
    retrieval accuracy among the batch's videos (chance = 1 / batch) + start-frame accuracy
    (chance ~ 1 / frames) on held-out episodes; ``fom_n`` / ``vsm_n``: frames / queries scored."""
    device = torch.device(device)
    model.eval()
    rng = np.random.default_rng(seed)
    fom_hit = fom_n = fom_chance = 0.0
    vsm_hit = vsm_n = vsm_chance = st_hit = st_n = st_chance = 0.0
    for s in range(0, len(eps), batch_size):
        chunk = eps[s : s + batch_size]
        if len(chunk) < 2:
            continue
        batch = video_batch(chunk, model.config, variant, concepts)
        with common.autocast(device):
            orders, targets = fom_inputs(batch.frame_mask, rng)
            out = model.forward_fom(batch.to(device), orders.to(device), targets.to(device))
            # accuracy among the positions that were moved (chance 1/k for k moved frames)
            logits = out["logits"].float().cpu()
            for b in range(len(chunk)):
                sel = targets[b] >= 0
                if not sel.any():
                    continue
                cand = targets[b][sel]  # original positions of the moved frames
                pred = cand[logits[b][sel][:, cand].argmax(-1)]
                fom_hit += float((pred == cand).sum())
                fom_n += float(sel.sum())
                fom_chance += 1.0  # k frames x 1/k
            blanked, q = vsm_inputs(chunk, rng, per_video=queries_per_video, drop_svmr=0.0)
            ids, mask, vidx, tg = (x.to(device) for x in q)
            vbatch = video_batch(blanked, model.config, variant, concepts)
            o = model.forward_vsm(vbatch.to(device), ids, mask, vidx, tg)
        vsm_hit += float((o.video_scores.argmax(-1) == vidx).sum())
        vsm_n += len(vidx)
        vsm_chance += len(vidx) / len(chunk)
        st_hit += float((o.st_logits.argmax(-1) == tg[:, 0]).sum())
        st_n += len(vidx)
        st_chance += float((1.0 / batch.frame_mask[vidx.cpu()].sum(1)).sum())
    model.train()
    return {
        "fom_acc": fom_hit / max(fom_n, 1),
        "fom_chance": fom_chance / max(fom_n, 1),
        "fom_n": int(fom_n),
        "vsm_n": int(vsm_n),
        "vsm_video_acc": vsm_hit / max(vsm_n, 1),
        "vsm_video_chance": vsm_chance / max(vsm_n, 1),
        "vsm_start_acc": st_hit / max(st_n, 1),
        "vsm_start_chance": st_chance / max(st_n, 1),
    }


# ------------------------------------------------------------------------------------------------
# loop


def train_step(model, opt, task: str, inp: dict, device) -> dict:
    """One optimiser step of ``task`` on ``task_inputs``' output (bf16 autocast on CUDA, grad-norm 1)."""
    with common.autocast(device):
        out = task_forward(model, task, inp, device)
    opt.zero_grad(set_to_none=True)
    out["loss"].float().backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return out


def pretrain(
    model,
    train: list[Episode],
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-4,
    ratio: dict[str, float] | None = None,
    variant: str = "full",
    concepts: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
    deadline: float | None = None,
    log: common.Log | None = None,
    show_progress: bool = True,
    budget_s: float | None = None,
    new_lr_mul: float = 1.0,
    vsm_per_video: int = VSM_PER_VIDEO,
    workers: int = 0,
    crop_min: float | None = None,
    frame_lr_mul: float | None = None,
    freeze_cross: bool = False,
):
    """Pre-train ``model`` in place; returns the log. ``ratio``: task -> weight (missing = off);
    ``new_lr_mul``: learning-rate multiplier of the parameters that do not start from MiniLM
    (``frame_lr_mul``: of the frame embedders among them; None = new_lr_mul);
    ``vsm_per_video``: subtitles per video used as VSM queries (queries are cheap next to videos);
    ``workers``: processes building the batches ahead (each step's draws depend on (seed, step) only);
    ``crop_min``: train on random windows of at least this fraction of each video (None: whole videos);
    ``freeze_cross``: FOM and VSM only, the cross-modal transformer fixed (eval mode) and its outputs
    computed once per training video (``cache_fused``; with VSM ``cache_vsm``, which adds each
    subtitle's share and its text), so a step runs only the frame embedder (``frame_transform``), the
    temporal transformer and the task's heads (VSM: also the query encoder on the cached text), on the
    CPU ~5x (FOM) and ~14x (VSM) cheaper than a full step. A window is cut from the whole video's
    cached outputs, so a subtitle the window cuts keeps its frames outside it in its fusion (the full
    model fuses only the frames inside)."""
    device = torch.device(device)
    ratio = dict(OFFICIAL_RATIO if ratio is None else ratio)
    if variant == "video_only":
        ratio.pop("mlm", None)  # no text in the input
    if variant == "sub_only":
        ratio.pop("mnce", None)  # no frame features to reconstruct
    tasks = [t for t in TASKS if ratio.get(t, 0) > 0]
    if freeze_cross and not set(tasks) <= {"fom", "vsm"}:
        raise ValueError(f"freeze_cross pre-trains FOM and VSM only, got tasks {tasks}")
    if freeze_cross and "vsm" in tasks and variant != "full":
        raise ValueError(f"freeze_cross VSM needs the full input, got variant {variant!r}")
    if not tasks:
        return log
    p = np.array([ratio[t] for t in tasks], float)
    p /= p.sum()
    log = log or common.Log(None, "pretrain")
    cfg = model.config
    cross, subs, fixed = None, None, []
    if freeze_cross:
        from training.finetune import cache_fused

        if "vsm" in tasks:  # the sums come with the subtitles' shares
            cross, subs = cache_vsm(model, train, concepts, device, show_progress=show_progress)
        else:
            cross = cache_fused(
                model, train, variant, concepts, device, show_progress=show_progress, cross_only=True
            )
        fixed = [w for n, w in model.named_parameters() if n.startswith(CACHED_FIXED)]

    def make(step, rng):
        task = tasks[rng.choice(len(tasks), p=p)]
        if cross is not None:
            eps = draw_episodes(train, rng, batch_size)
            if task == "vsm":
                return task, cached_vsm_inputs(eps, cross, subs, rng, crop_min, vsm_per_video)
            return task, cached_fom_inputs(eps, cross, rng, crop_min, variant)
        eps = draw_episodes(train, rng, batch_size, crop_min)
        return task, task_inputs(task, eps, rng, cfg, variant, concepts, vsm_per_video)

    with common.held_fixed(fixed):
        model.to(device).train()
        if freeze_cross:
            model.v_encoder.f_encoder.eval()
        opt = common.make_optimizer(model, lr, new_lr_mul=new_lr_mul, frame_lr_mul=frame_lr_mul)
        run = common.training_steps(
            make, seed, steps, opt, lr, log, "pretrain", show_progress, workers, budget_s, deadline
        )
        for step, _, (task, inp), cur in run:
            if inp is None:
                continue
            out = train_step(model, opt, task, inp, device)
            row = {f"loss_{task}": float(out["loss"].detach()), "lr": cur}
            if "acc" in out:
                row[f"acc_{task}"] = float(out["acc"])
            log.add(step, **row)
    model.train()
    return log


def main(argv=None) -> int:
    from training.data import load_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True)
    p.add_argument("--val", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--smoke", action="store_true", help="reduced model, few steps (CPU, minutes)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--tasks", default="mlm,mnce,fom,vsm")
    p.add_argument("--ratio", default="2,2,1,2", help="per task in --tasks order (official 2,2,1,2)")
    p.add_argument("--variant", default="full")
    p.add_argument("--concepts", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=77)
    p.add_argument(
        "--new-lr-mul", type=float, default=1.0, help="lr multiplier of parameters not from MiniLM"
    )
    p.add_argument("--frame-lr-mul", type=float, default=None, help="lr multiplier of the frame embedders")
    p.add_argument(
        "--crop-min",
        type=float,
        default=None,
        help="train on random windows of at least this fraction of each video (FOM generalises)",
    )
    a = p.parse_args(argv)
    common.set_seed(a.seed)
    dev = common.resolve_device(a.device)
    tasks = a.tasks.split(",")
    ratio = dict(zip(tasks, (float(x) for x in a.ratio.split(","))))
    cfg = common.app_config(smoke=a.smoke, concept_tokens=a.concepts)
    model = common.build_app_model(cfg)
    train = load_split(a.train, concepts=a.concepts)
    steps = a.steps or (150 if a.smoke else 2000)
    bs = a.batch_size or (8 if a.smoke else 64)
    log = common.Log(a.out, "pretrain")
    pretrain(model, train, steps, bs, a.lr, ratio, a.variant, a.concepts > 0, dev, a.seed, log=log,
             new_lr_mul=a.new_lr_mul, crop_min=a.crop_min, frame_lr_mul=a.frame_lr_mul)  # fmt: skip
    res = {}
    if a.val:
        res = probe(
            model, load_split(a.val, concepts=a.concepts), dev, variant=a.variant, concepts=a.concepts > 0
        )
    log.save({"probe": res})
    from models.io import save_pretrained

    save_pretrained(model, a.out, dtype=torch.float16)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
