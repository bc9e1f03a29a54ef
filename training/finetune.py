"""Multi-task fine-tuning of the app model: VCMR (SVMR + global video score) and 5-way VideoQA.

Every step encodes one batch of videos ONCE (cross-modal + temporal) and takes both losses from that
encoding, as the app does at inference (one cached ``v_temp`` for search, one ``fused`` for QA):
- VCMR (official HeroForVcmr losses): the batch's queries; start/end CE on the query's own video
  (weight ``lw_st_ed``) + hinge ranking losses against every other video of the batch (in-batch
  negatives, margin 0.1, weights 8/8), hard negatives (pool 20, weight 10) for the last 60 % of steps.
- QA (official TVQA loss): CE over 5 candidates + 0.4 * (CE start + CE end)/2 for the evidence, the
  candidates scored by ``qa_heads`` over the batch's fused frames (= ``hero_api.answer_candidates``),
  or, with ``config.qa_in_subtitles``, over frames fused once per candidate with "[sep] q [sep] a"
  appended to every subtitle (the official TVQA input, = ``hero_api.encode_candidates``).
Differences from the official recipe: the two tasks share one encoder and one optimiser;
``lw_st_ed`` is 1.0 instead of 0.01 so the span loss is not drowned by the QA loss in the shared
encoder; QA heads learn at 10x the base learning rate (official TVQA lr_mul).

``freeze_cross``: the cross-modal transformer and the frame embedders stay fixed (eval mode), each
training video's fused frames are computed once (``cache_fused``), and only the temporal transformer,
the query encoder and the heads learn. A step then skips the cross-modal pass over every subtitle,
the main cost of a step on the CPU.

    python -m training.finetune --train DIR --init PRETRAINED_DIR|none --out DIR [--smoke] [--steps N]
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F

from models import hero_heads
from models.hero import HeroFrameOutput
from models.hero_api import candidate_batch
from training import common
from training.data import (
    Episode,
    draw_episodes,
    qa_batch,
    query_batch,
    sub_token_limit,
    video_batch,
    video_inputs,
)

# the modules ``freeze_cross`` keeps fixed: everything the cached fused frames and the text come from
FROZEN_CROSS = ("v_encoder.f_encoder.", "v_encoder.frame_transform.", "v_encoder.mask_embedding.")

LW_ST_ED = 1.0
HARD_NEG_FROM = 0.4  # fraction of steps after which hard negatives are used (official 2000 / 5000)


def multitask_inputs(eps: list[Episode], rng, config, variant="full", concepts=False, tasks=("vcmr", "qa"),
                     queries_per_video=4, qa_per_video=3, fused: dict | None = None,
                     qa_videos: int | None = None) -> dict:  # fmt: skip
    """The CPU inputs of one fine-tuning step over ``eps``; with ``fused`` (``cache_fused``) the
    videos' cached fused frames (B, T, H) and mask (B, T) instead of their HeroVideoBatch.
    ``qa_videos``: QA questions from the first N videos only (all by default)."""
    if fused is None:
        inp = {"batch": video_batch(eps, config, variant, concepts)}
    else:
        x = torch.nn.utils.rnn.pad_sequence([fused[e.id] for e in eps], batch_first=True)
        n = torch.tensor([e.n for e in eps])
        inp = {"fused": (x, (torch.arange(x.shape[1])[None] < n[:, None]).float())}
    if "vcmr" in tasks:
        inp["query"] = query_batch(eps, queries_per_video, rng)
    qa_eps = eps[:qa_videos]  # the first videos keep their batch positions, so vidx stays valid
    if "qa" in tasks and any(e.qa for e in qa_eps):
        inp["qa"] = qa_batch(qa_eps, qa_per_video, rng)
        if config.qa_in_subtitles:  # official TVQA input: each candidate appended to every subtitle
            vidx, ids, mask = inp["qa"][:3]
            lens = mask.sum(1).long().tolist()
            cands = [ids[r, : lens[r]].tolist() for r in range(len(lens))]  # the question's 5 rows
            videos = [
                (*video_inputs(qa_eps[v], variant, concepts), cands[5 * j : 5 * j + 5])
                for j, v in enumerate(vidx.tolist())
            ]
            inp["qa_videos"] = candidate_batch(videos, config, sub_token_limit(variant))
    return inp


def candidate_frames(model, batch) -> HeroFrameOutput:
    """Fused frames of the official QA input (``multitask_inputs``' "qa_videos"). When nothing they
    come from learns (``freeze_cross`` without ``cross_top``) they are computed as ``cache_fused``
    computes the cached ones: eval mode, no graph."""
    enc = model.v_encoder
    if any(
        p.requires_grad for p in itertools.chain(enc.f_encoder.parameters(), enc.frame_transform.parameters())
    ):
        return enc.forward_repr(batch, encode_clip=False)
    modes = [(m, m.training) for m in enc.modules()]
    enc.eval()
    try:
        with torch.no_grad():
            return enc.forward_repr(batch, encode_clip=False)
    finally:
        for m, mode in modes:
            m.training = mode


def multitask_forward(model, inp: dict, device, hard=False) -> dict:
    """Both fine-tuning losses from one encoding of the batch -> {"loss", "loss_st_ed", ...}."""
    cfg = model.config
    if "fused" in inp:  # cached cross-modal outputs: only the temporal transformer runs
        fused, mask = (x.to(device) for x in inp["fused"])
        frames = HeroFrameOutput(fused, model.v_encoder.c_encoder(fused, mask), mask)
    else:
        frames = model.encode_frames(inp["batch"].to(device))  # fused, v_temp (B, T, H), mask (B, T)
    out: dict = {}
    total = 0.0
    if "query" in inp:
        ids, mask, vidx, tg = (x.to(device) for x in inp["query"])
        qv = model.encode_query(ids, mask)  # (Q, H)
        vs = model.video_scores(qv, frames.v_temp, frames.mask)  # (Q, B)
        st, ed = model.span_logits(qv, frames.v_temp[vidx], frames.mask[vidx], cross=False)  # (Q, T)
        ce = F.cross_entropy(st.float(), tg[:, 0]) + F.cross_entropy(ed.float(), tg[:, 1])
        neg_ctx, neg_q = hero_heads.video_ranking_losses(
            vs.float(), vidx, margin=cfg.margin, loss_type=cfg.ranking_loss_type,
            hard_pool_size=cfg.hard_pool_size if hard else None, hard_neg_weight=cfg.hard_neg_weight,
        )  # fmt: skip
        out.update(loss_st_ed=ce, loss_neg_ctx=neg_ctx, loss_neg_q=neg_q)
        out["acc_video"] = (vs.argmax(-1) == vidx).float().mean()
        total = total + LW_ST_ED * ce + cfg.lw_neg_ctx * neg_ctx + cfg.lw_neg_q * neg_q
    if "qa" in inp:
        qvidx, qids, qmask, ans, spans = (x.to(device) for x in inp["qa"])
        C = 5
        if "qa_videos" in inp:  # per-candidate frames (official TVQA input)
            qf = candidate_frames(model, inp["qa_videos"].to(device))
            fused, fmask = qf.fused, qf.mask
        else:  # the batch's fused frames, the same for every candidate
            rows = qvidx.repeat_interleave(C)
            fused, fmask = frames.fused[rows], frames.mask[rows]
        o = model.forward_qa(fused, fmask, qids, qmask, C, targets=ans, ts_targets=spans)
        out.update(loss_qa=o.loss_qa, loss_span=o.loss_span)
        out["acc_qa"] = (o.logits.argmax(-1) == ans).float().mean()
        total = total + o.loss_qa + cfg.lw_qa_span * o.loss_span
    out["loss"] = total
    return out


def train_step(model, opt, inp: dict, device, hard: bool = False) -> dict:
    """One optimiser step on ``multitask_inputs``' output (bf16 autocast on CUDA, grad-norm 1)."""
    with common.autocast(device):
        out = multitask_forward(model, inp, device, hard=hard)
    opt.zero_grad(set_to_none=True)
    out["loss"].float().backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return out


def finetune(
    model,
    train: list[Episode],
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-4,
    variant: str = "full",
    concepts: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
    deadline: float | None = None,
    log: common.Log | None = None,
    tasks=("vcmr", "qa"),
    show_progress: bool = True,
    budget_s: float | None = None,
    hard_from: float | None = HARD_NEG_FROM,
    qa_per_video: int = 3,
    workers: int = 0,
    freeze_cross: bool = False,
    qa_videos: int | None = None,
    cross_top: int = 0,
):
    """Fine-tune in place; returns the log. ``hard_from``: fraction of the steps after which the
    VCMR ranking losses use hard negatives (None: never; with fewer in-batch negatives than the hard
    pool that only multiplies every negative's weight by ``hard_neg_weight``). ``freeze_cross``: see
    the module docstring. ``qa_videos``: QA questions from only the first N videos of each batch
    (QA costs 5 temporal passes per question; VCMR keeps the whole batch). ``cross_top`` K (with
    ``freeze_cross``): the top K cross-modal layers learn too, so nothing is cached and every step
    runs the fixed lower layers (no grad, eval mode) and the K learning ones."""
    device = torch.device(device)
    log = log or common.Log(None, "finetune")
    cfg = model.config
    fused, frozen = None, []
    layers = model.v_encoder.f_encoder.encoder.layer
    if not 0 <= cross_top <= len(layers) or (cross_top and not freeze_cross):
        raise ValueError(f"cross_top must be 0..{len(layers)} and needs freeze_cross, got {cross_top}")
    learning = layers[len(layers) - cross_top :]  # empty for cross_top 0
    learning_ids = {id(p) for p in learning.parameters()}
    if freeze_cross:
        if not cross_top:
            fused = cache_fused(model, train, variant, concepts, device, show_progress=show_progress)
        frozen = [
            p for n, p in model.named_parameters() if n.startswith(FROZEN_CROSS) and id(p) not in learning_ids
        ]

    def make(step, rng):
        eps = draw_episodes(train, rng, batch_size)
        kw = dict(qa_per_video=qa_per_video, fused=fused, qa_videos=qa_videos)
        return multitask_inputs(eps, rng, cfg, variant, concepts, tasks, **kw)

    with common.held_fixed(frozen):
        model.to(device).train()
        if freeze_cross:  # no dropout in the fixed text path either (it also reads queries and candidates)
            model.v_encoder.f_encoder.eval()
            learning.train()
        opt = common.make_optimizer(model, lr, head_lr_mul=10.0)
        run = common.training_steps(
            make, seed, steps, opt, lr, log, "finetune", show_progress, workers, budget_s, deadline
        )
        for step, total, inp, cur in run:
            hard = hard_from is not None and step >= hard_from * total
            out = train_step(model, opt, inp, device, hard=hard)
            log.add(step, lr=cur, **{k: float(v.detach()) for k, v in out.items()})
    return log


@torch.no_grad()
def cache_fused(model, eps: list[Episode], variant="full", concepts=False, device="cpu", batch_size=32,
                show_progress=True, cross_only=False) -> dict[str, torch.Tensor]:  # fmt: skip
    """{episode id: its fused frames (n, H), float32 on the CPU}: the cross-modal transformer's
    output in eval mode (as the app encodes), for ``freeze_cross`` fine-tuning. ``cross_only``: without
    the frame embedder's term (``frame_transform`` of the raw features), so that it can learn on top."""
    was = model.training
    model.to(device).eval()
    out = {}
    bar = common.progress(None, len(eps), "cache fused frames", show_progress)
    for i in range(0, len(eps), batch_size):
        chunk = eps[i : i + batch_size]
        with common.autocast(torch.device(device)):
            batch = video_batch(chunk, model.config, variant, concepts).to(device)
            f = model.encode_frames(batch, False)
            x = f.fused - model.v_encoder.frame_transform(batch.frame_feats) if cross_only else f.fused
        for j, e in enumerate(chunk):
            out[e.id] = x[j, : e.n].float().cpu()
        bar.update(len(chunk))
    model.train(was)
    return out


def main(argv=None) -> int:
    from models.io import load_pretrained, save_pretrained
    from training.data import load_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True)
    p.add_argument("--init", default="none", help="pre-trained checkpoint dir, or 'none' (MiniLM init)")
    p.add_argument("--out", required=True)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--variant", default="full")
    p.add_argument("--concepts", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=77)
    a = p.parse_args(argv)
    common.set_seed(a.seed)
    dev = common.resolve_device(a.device)
    if a.init != "none":
        model = load_pretrained(a.init)
    else:
        model = common.build_app_model(common.app_config(smoke=a.smoke, concept_tokens=a.concepts))
    train = load_split(a.train, concepts=model.config.concept_tokens)
    steps = a.steps or (150 if a.smoke else 3000)
    bs = a.batch_size or (8 if a.smoke else 64)
    log = common.Log(a.out, "finetune")
    finetune(model, train, steps, bs, a.lr, a.variant, model.config.concept_tokens > 0, dev, a.seed, log=log)
    log.save()
    save_pretrained(model.cpu(), a.out, dtype=torch.float16)
    print(json.dumps({"out": a.out, "steps": len(log.rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
