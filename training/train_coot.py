"""Train COOT on SynthTV dense captions (clips = caption segments, sentences = captions, paragraphs = an
episode's captions) and evaluate retrieval (paragraph <-> video, sentence <-> clip, R@1/5/10).

    python -m training.train_coot --train data/synthtv/train0 data/synthtv/train1 --val data/synthtv/val \
        --out runs/coot [--save assets/coot] [--smoke]
    python -m training.train_coot --eval assets/coot --test data/synthtv/test data/synthtv/comp --json

Recipe (official COOT, yc2_100m_coot.yaml): RAdam (beta1 0.56, beta2 0.98, eps 1.5e-9), lr 9e-4 with a
linear warm-up, margin 0.2 alignment + clustering losses at three levels, cycle consistency weight 0.001,
the best epoch by validation R-sum kept. Differences (documented in assets/coot/README.md): smaller
batches (our train set has ~200 videos), a fixed epoch budget instead of reduce-on-plateau, MiniLM token
features (384-d) instead of BERT-base layers -2,-1 (1536-d), EfficientNet-Lite0 frames instead of S3D.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.coot import Coot, CootConfig, build_coot
from training.caption_data import (
    CaptionEpisode,
    JsonLog,
    Paragraph,
    batches,
    episode_paragraphs,
    load_episodes,
    pad_sequences,
    seed_everything,
)


@dataclass
class CootRecipe:
    epochs: int = 16
    batch_size: int = 16  # official 64 (YouCook2 has 1.3k training videos; ours ~60)
    lr: float = 9e-4
    betas: tuple[float, float] = (0.56, 0.98)  # official "momentum" 0.56, adam_beta2 0.98
    eps: float = 1.5e-9
    warmup_epochs: int = 2
    eval_every: int = 4
    seed: int = 0

    @classmethod
    def smoke(cls) -> CootRecipe:
        return cls(epochs=3, batch_size=8, warmup_epochs=1, eval_every=3)


# ---------------------------------------------------------------------------------------------------------
# encoding and retrieval
# ---------------------------------------------------------------------------------------------------------


def _video_batch(eps: Sequence[CaptionEpisode]):
    feats, mask = pad_sequences([e.features for e in eps])
    return feats, mask, [e.clip_ranges for e in eps]


def _text_batch(pars: Sequence[Paragraph]):
    feats, mask = pad_sequences([p.token_feats for p in pars])
    return feats, mask, [p.sentence_ranges for p in pars]


@torch.no_grad()
def encode_videos(
    model: Coot, episodes: Sequence[CaptionEpisode], batch_size: int = 32
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per episode: video embedding (768,) and clip embeddings (n_clips, 384), float32, not normalised."""
    model.eval()
    vids, clips = [], []
    for s in range(0, len(episodes), batch_size):
        out = model.encode_video(*_video_batch(episodes[s : s + batch_size]))
        vids.extend(out.vid_emb.numpy())
        clips.extend(c[m].numpy() for c, m in zip(out.clip_emb_padded, out.clip_mask))
    return vids, clips


@torch.no_grad()
def encode_paragraphs(
    model: Coot, paragraphs: Sequence[Paragraph], batch_size: int = 32
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per paragraph: paragraph embedding (768,) and sentence embeddings (n_sents, 384)."""
    model.eval()
    pars, sents = [], []
    for s in range(0, len(paragraphs), batch_size):
        out = model.encode_text(*_text_batch(paragraphs[s : s + batch_size]))
        pars.extend(out.par_emb.numpy())
        sents.extend(c[m].numpy() for c, m in zip(out.sent_emb_padded, out.sent_mask))
    return pars, sents


def recall_at_k(sims: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """sims (N, N), row i's match is column i -> {"R1", "R5", "R10", "MedR"} (fractions; ties count
    against the query: rank = number of columns scoring >= the match, minus one)."""
    diag = np.diag(sims)[:, None]
    ranks = (sims > diag).sum(axis=1) + (sims == diag).sum(axis=1) - 1  # 0-based, pessimistic on ties
    out = {f"R{k}": float((ranks < k).mean()) for k in ks}
    out["MedR"] = float(np.median(ranks) + 1)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def retrieval_metrics(
    model: Coot, episodes: Sequence[CaptionEpisode], paragraphs: Sequence[Paragraph]
) -> dict:
    """COOT's four retrieval directions on a set of episodes (cosine similarity, every item a query)."""
    vids, clips = encode_videos(model, episodes)
    pars, sents = encode_paragraphs(model, paragraphs)
    v, p = _unit(np.stack(vids)), _unit(np.stack(pars))
    c, s = _unit(np.concatenate(clips)), _unit(np.concatenate(sents))
    vp = v @ p.T
    cs = c @ s.T
    return {
        "par2vid": recall_at_k(vp.T),
        "vid2par": recall_at_k(vp),
        "sent2clip": recall_at_k(cs.T),
        "clip2sent": recall_at_k(cs),
        "n_videos": len(episodes),
        "n_clips": int(c.shape[0]),
    }


def rsum(m: dict) -> float:
    return sum(m[d][f"R{k}"] for d in ("par2vid", "vid2par", "sent2clip", "clip2sent") for k in (1, 5, 10))


# ---------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------


def train_coot(
    train: Sequence[CaptionEpisode],
    train_pars: Sequence[Paragraph],
    recipe: CootRecipe,
    config: CootConfig | None = None,
    val: tuple[Sequence[CaptionEpisode], Sequence[Paragraph]] | None = None,
    log: JsonLog | None = None,
    progress: bool = True,
) -> tuple[Coot, list[dict]]:
    """Train COOT; returns the model (best validation R-sum epoch when ``val`` is given) and the history."""
    rng = seed_everything(recipe.seed)
    log = log or JsonLog(None)
    config = config or CootConfig()
    if train and train[0].features.shape[1] != config.video_feature_dim:
        raise ValueError(
            f"features are {train[0].features.shape[1]}-d, config expects {config.video_feature_dim}"
        )
    model = build_coot(config)
    opt = torch.optim.RAdam(model.parameters(), lr=recipe.lr, betas=recipe.betas, eps=recipe.eps)
    steps_per_epoch = -(-len(train) // recipe.batch_size)
    warmup = max(1, recipe.warmup_epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warmup))
    history, best, best_state = [], -1.0, None
    bar = tqdm(total=recipe.epochs * steps_per_epoch, desc="COOT", disable=not progress, file=sys.stderr)
    t0 = time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        losses = []
        for idx in batches(len(train), recipe.batch_size, shuffle=True, rng=rng):
            if len(idx) < 2:  # contrastive loss needs negatives
                continue
            video = model.encode_video(*_video_batch([train[i] for i in idx]))
            text = model.encode_text(*_text_batch([train_pars[i] for i in idx]))
            loss = model.compute_loss(video, text)
            opt.zero_grad(set_to_none=True)
            loss.total.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.total))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        last = epoch + 1 == recipe.epochs
        if val is not None and ((epoch + 1) % recipe.eval_every == 0 or last):
            m = retrieval_metrics(model, *val)
            row["val_rsum"] = rsum(m)
            row["val"] = m
            if row["val_rsum"] > best:
                best, best_state = row["val_rsum"], copy.deepcopy(model.state_dict())
                row["best"] = True
        history.append(row)
        log(stage="coot", **row)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


def save_coot(model: Coot, out_dir: str | Path) -> None:
    from models.io import save_pretrained

    save_pretrained(model, out_dir, model.config, dtype=torch.float16)


def load_coot(path: str | Path) -> Coot:
    from models.io import load_pretrained

    return load_pretrained(str(path)).eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.train_coot", description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="+", default=[], help="synthtv generate directories")
    ap.add_argument("--val", nargs="*", default=[], help="validation directories (best epoch by R-sum)")
    ap.add_argument("--test", nargs="*", default=[], help="directories to evaluate on, each on its own")
    ap.add_argument("--eval", default=None, help="evaluate this checkpoint instead of training")
    ap.add_argument("--out", default="runs/coot", help="run directory (log.jsonl, checkpoint/)")
    ap.add_argument("--save", default=None, help="also save the trained checkpoint here (e.g. assets/coot)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="a few episodes, 3 epochs: checks the pipeline")
    ap.add_argument("--hidden", type=int, default=256, help="COOT width (384 = the app default config)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    args = ap.parse_args(argv)
    # One thread: on a shared CPU two OpenMP threads spin-wait far more than they compute (measured 10x).
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    cache = Path("data/cache")
    limit = 16 if args.smoke else None
    if args.eval:
        model = load_coot(args.eval)
    else:
        recipe = CootRecipe.smoke() if args.smoke else CootRecipe()
        recipe.seed = args.seed
        if args.epochs:
            recipe.epochs = args.epochs
        train = load_episodes(args.train, limit=limit)
        train_pars = episode_paragraphs(train, cache)
        val = None
        if args.val:
            v_eps = load_episodes(args.val, limit=limit)
            val = (v_eps, episode_paragraphs(v_eps, cache))
        log = JsonLog(out / "log.jsonl")
        log(stage="coot_start", recipe=recipe.__dict__, n_train=len(train), argv=sys.argv[1:])
        h = args.hidden
        config = CootConfig(hidden_dim=h, ff_dim=h, pooler_hidden_dim=2 * h)
        model, _ = train_coot(train, train_pars, recipe, config=config, val=val, log=log)
        save_coot(model, out / "checkpoint")
        if args.save:
            save_coot(model, args.save)
    results = {}
    for d in args.test:
        eps = load_episodes(d, limit=limit)
        results[Path(d).name] = retrieval_metrics(model, eps, episode_paragraphs(eps, cache))
    if results:
        JsonLog(out / "log.jsonl")(stage="coot_test", results=results)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for name, m in results.items():
            print(name, {k: v for k, v in m.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
