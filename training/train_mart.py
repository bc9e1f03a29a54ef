"""Train MART on SynthTV dense captions over COOT segment features and evaluate paragraph captioning.

    python -m training.train_mart --train DIR... --val DIR --coot assets/coot --features coot \
        --out runs/mart [--save assets/mart] [--no-recurrent] [--smoke]
    python -m training.train_mart --eval assets/mart --coot assets/coot --test DIR... --json

Input per segment (``--features``):
- ``coot`` (COOT+MART): [COOT video embedding 768 ; COOT clip embedding 384] = 1152-d, from a trained
  COOT (``--coot``), the segments being the caption segments (ground-truth proposals, as in the papers).
- ``raw`` (ablation): [mean of all the video's frame features ; mean of the segment's frames] = 2 x 1280,
  the same video/segment structure without COOT.
Recipe (official MART / COOT+MART configs): label smoothing 0.1, Adam with 10 % linear warm-up then
linear decay and weight decay 0.01 (BertAdam), gradient clipping 1, greedy decoding, best epoch by
validation CIDEr. Differences, all for CPU training on ~100 videos (see assets/mart/README.md): hidden
384 / 6 heads instead of 768 / 12, a higher learning rate and more epochs, random word embeddings
(no GloVe here), no EMA (0.9999 over a few hundred steps would keep the random init), training on random
windows of ``max_n_sen`` consecutive segments (the official code truncates to the first max_n_sen).
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

from models.mart import Mart, MartConfig, Vocab, build_mart, make_step_inputs
from models.mart_decoding import DecodingOptions, generate
from training.caption_data import CaptionEpisode, JsonLog, batches, load_episodes, seed_everything


@dataclass
class MartRecipe:
    epochs: int = 20
    batch_size: int = 8  # official 16; more updates from our ~60 videos
    lr: float = 5e-4  # official 1e-4 over far more steps
    warmup: float = 0.1
    weight_decay: float = 0.01
    clip_grad: float = 1.0
    max_n_sen: int = 8  # segments per training window
    eval_every: int = 5
    seed: int = 0

    @classmethod
    def smoke(cls) -> MartRecipe:
        return cls(epochs=4, batch_size=4, eval_every=4, max_n_sen=4)


def small_mart_config(
    vocab: Vocab, video_feature_size: int, recurrent: bool = True, hidden: int = 256
) -> MartConfig:
    """The CPU-trainable MART shipped in assets/mart: the official architecture (2 layers, 1 memory
    cell, 64-d heads) at a smaller width."""
    return MartConfig.for_vocab(
        vocab,
        hidden_size=hidden,
        num_attention_heads=hidden // 64,
        intermediate_size=hidden,
        num_hidden_layers=2,
        word_vec_size=hidden,
        video_feature_size=video_feature_size,
        max_v_len=3,
        max_t_len=22,
        recurrent=recurrent,
    )


# ---------------------------------------------------------------------------------------------------------
# segment features
# ---------------------------------------------------------------------------------------------------------


def raw_segment_features(features: np.ndarray, clip_ranges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Ablation input: (S, 2 * D) = [mean of all frames ; mean of the segment's frames]."""
    video = features.mean(axis=0)
    return np.stack([np.concatenate([video, features[a:b].mean(axis=0)]) for a, b in clip_ranges])


def coot_segment_features(coot, episodes: Sequence[CaptionEpisode]) -> list[np.ndarray]:
    """COOT+MART input per episode: (S, 768 + 384) = [video embedding ; clip embedding] per segment."""
    from training.train_coot import encode_videos

    vids, clips = encode_videos(coot, episodes)
    return [np.concatenate([np.repeat(v[None], c.shape[0], 0), c], axis=1) for v, c in zip(vids, clips)]


def segment_features(kind: str, episodes: Sequence[CaptionEpisode], coot=None) -> list[np.ndarray]:
    if kind == "raw":
        return [raw_segment_features(e.features, e.clip_ranges) for e in episodes]
    if kind == "coot":
        if coot is None:
            raise ValueError("--features coot needs a COOT checkpoint (--coot)")
        return coot_segment_features(coot, episodes)
    raise ValueError(f"unknown feature kind {kind!r}")


# ---------------------------------------------------------------------------------------------------------
# batches, loss, decoding
# ---------------------------------------------------------------------------------------------------------


def build_steps(
    cfg: MartConfig, feats: Sequence[np.ndarray], sentences: Sequence[Sequence[list[int]]] | None
):
    """A batch of videos -> per segment index s, MartStepInputs (videos with fewer segments get zero
    features and ignored labels at the steps they lack)."""
    n_steps = max(f.shape[0] for f in feats)
    dv = feats[0].shape[1]
    steps = []
    for s in range(n_steps):
        x = torch.zeros(len(feats), 1, dv)
        sents = []
        for i, f in enumerate(feats):
            if s < f.shape[0]:
                x[i, 0] = torch.from_numpy(np.asarray(f[s], dtype=np.float32))
                sents.append(sentences[i][s] if sentences is not None else None)
            else:
                sents.append(None)
        steps.append(make_step_inputs(cfg, x, sentences=sents if sentences is not None else None))
    return steps


def caption_loss(model: Mart, steps) -> tuple[torch.Tensor, int]:
    """Summed label-smoothed loss over all steps (official) and the number of predicted words."""
    out = model(
        [s.input_ids for s in steps],
        [s.video_features for s in steps],
        [s.input_masks for s in steps],
        [s.token_type_ids for s in steps],
        [s.labels for s in steps],
    )
    n_words = int(sum((s.labels != -1).sum() for s in steps))
    return out.loss, n_words


@torch.no_grad()
def decode(
    model: Mart,
    vocab: Vocab,
    feats: Sequence[np.ndarray],
    options: DecodingOptions = DecodingOptions(),
    batch_size: int = 32,
) -> list[list[str]]:
    """One sentence per segment for every video (memory carried across its segments)."""
    model.eval()
    out: list[list[str]] = []
    for b in range(0, len(feats), batch_size):
        chunk = feats[b : b + batch_size]
        gen = generate(model, build_steps(model.config, chunk, None), options)
        for i, f in enumerate(chunk):
            out.append([vocab.decode(gen.tokens[s][i].tolist()) for s in range(f.shape[0])])
    return out


def caption_scores(
    model: Mart,
    vocab: Vocab,
    episodes: Sequence[CaptionEpisode],
    feats: Sequence[np.ndarray],
    meteor=None,
    options: DecodingOptions = DecodingOptions(),
) -> tuple[dict, list[list[str]]]:
    from training.metrics import caption_metrics

    preds = decode(model, vocab, feats, options)
    pred = {e.episode_id: p for e, p in zip(episodes, preds)}
    refs = {e.episode_id: e.captions for e in episodes}
    return caption_metrics(pred, refs, meteor=meteor), preds


# ---------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------


def _windows(n: int, size: int, rng) -> tuple[int, int]:
    if n <= size:
        return 0, n
    start = rng.randrange(0, n - size + 1)
    return start, start + size


def train_mart(
    train: Sequence[CaptionEpisode],
    train_feats: Sequence[np.ndarray],
    config: MartConfig,
    recipe: MartRecipe,
    val: tuple[Sequence[CaptionEpisode], Sequence[np.ndarray]] | None = None,
    log: JsonLog | None = None,
    progress: bool = True,
) -> tuple[Mart, list[dict]]:
    """Teacher-forced training; returns the model (best validation CIDEr when ``val`` is given)."""
    rng = seed_everything(recipe.seed)
    log = log or JsonLog(None)
    vocab = config.get_vocab()
    model = build_mart(config)
    sentences = [[vocab.encode(c) for c in e.captions] for e in train]
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
    )
    steps_per_epoch = -(-len(train) // recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warm = max(1, int(recipe.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warm, max(0.0, (total - i) / max(1, total - warm)))
    )
    history, best, best_state = [], -1.0, None
    bar = tqdm(total=total, desc="MART", disable=not progress, file=sys.stderr)
    t0 = time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        loss_sum, word_sum = 0.0, 0
        for idx in batches(len(train), recipe.batch_size, shuffle=True, rng=rng):
            wins = [_windows(len(train[i].captions), recipe.max_n_sen, rng) for i in idx]
            feats = [train_feats[i][a:b] for i, (a, b) in zip(idx, wins)]
            sents = [sentences[i][a:b] for i, (a, b) in zip(idx, wins)]
            loss, n_words = caption_loss(model, build_steps(config, feats, sents))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_grad)
            opt.step()
            sched.step()
            loss_sum, word_sum = loss_sum + float(loss.detach()), word_sum + n_words
            bar.update(1)
            bar.set_postfix(loss_per_word=f"{float(loss.detach()) / max(n_words, 1):.3f}")
        row = {
            "epoch": epoch + 1,
            "loss_per_word": loss_sum / max(word_sum, 1),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        last = epoch + 1 == recipe.epochs
        if val is not None and ((epoch + 1) % recipe.eval_every == 0 or last):
            m, _ = caption_scores(model, vocab, *val, meteor=False)
            row["val"] = m
            if m["CIDEr"] > best:
                best, best_state = m["CIDEr"], copy.deepcopy(model.state_dict())
                row["best"] = True
        history.append(row)
        log(stage="mart", **row)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.train_mart", description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="+", default=[], help="synthtv generate directories")
    ap.add_argument("--val", nargs="*", default=[], help="validation directories (best epoch by CIDEr)")
    ap.add_argument("--test", nargs="*", default=[], help="directories to evaluate on, each on its own")
    ap.add_argument("--eval", default=None, help="evaluate this MART checkpoint instead of training")
    ap.add_argument("--coot", default=None, help="COOT checkpoint for --features coot")
    ap.add_argument("--features", choices=["coot", "raw"], default="coot")
    ap.add_argument("--no-recurrent", action="store_true", help="ablation: no memory (NonRecurTransformer)")
    ap.add_argument("--out", default="runs/mart", help="run directory (log.jsonl, checkpoint/)")
    ap.add_argument("--save", default=None, help="also save the trained checkpoint here (e.g. assets/mart)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-count", type=int, default=2, help="vocabulary: minimum word count in train")
    ap.add_argument("--smoke", action="store_true", help="a few episodes, 4 epochs: checks the pipeline")
    ap.add_argument("--hidden", type=int, default=256, help="MART width (official 768)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    ap.add_argument("--decoding", choices=["greedy", "beam"], default="greedy", help="test decoding")
    ap.add_argument("--beam-size", type=int, default=2)
    ap.add_argument("--block-ngram-repeat", type=int, default=0, help="no n-gram twice in a sentence")
    ap.add_argument(
        "--block-ngram-across", type=int, default=0, help="no n-gram an earlier sentence of the video said"
    )
    args = ap.parse_args(argv)
    options = DecodingOptions(
        method=args.decoding,
        beam_size=args.beam_size,
        block_ngram_repeat=args.block_ngram_repeat,
        block_ngram_across=args.block_ngram_across,
    )
    # One thread: on a shared CPU two OpenMP threads spin-wait far more than they compute (measured 10x).
    torch.set_num_threads(args.threads)
    from models.io import save_pretrained

    out = Path(args.out)
    limit = 12 if args.smoke else None
    coot = None
    if args.features == "coot" or args.eval:
        if args.coot:
            from training.train_coot import load_coot

            coot = load_coot(args.coot)
    log = JsonLog(out / "log.jsonl")
    if args.eval:
        from models.io import load_pretrained

        model = load_pretrained(args.eval).eval()
        coot_dim = 3 * coot.config.hidden_dim if coot is not None else None
        kind = "coot" if model.config.video_feature_size == coot_dim else "raw"
    else:
        kind = args.features
        recipe = MartRecipe.smoke() if args.smoke else MartRecipe()
        recipe.seed = args.seed
        if args.epochs:
            recipe.epochs = args.epochs
        train = load_episodes(args.train, limit=limit)
        vocab = Vocab.build([c for e in train for c in e.captions], min_count=args.min_count)
        train_feats = segment_features(kind, train, coot)
        config = small_mart_config(
            vocab, train_feats[0].shape[1], recurrent=not args.no_recurrent, hidden=args.hidden
        )
        val = None
        if args.val:
            v_eps = load_episodes(args.val, limit=limit)
            val = (v_eps, segment_features(kind, v_eps, coot))
        log(stage="mart_start", recipe=recipe.__dict__, features=kind, recurrent=config.recurrent,
            vocab_size=len(vocab), n_train=len(train), argv=sys.argv[1:])  # fmt: skip
        model, _ = train_mart(train, train_feats, config, recipe, val=val, log=log)
        save_pretrained(model, out / "checkpoint", model.config, dtype=torch.float16)
        if args.save:
            save_pretrained(model, args.save, model.config, dtype=torch.float16)
    results, samples = {}, {}
    vocab = model.config.get_vocab()
    for d in args.test:
        eps = load_episodes(d, limit=limit)
        m, preds = caption_scores(model, vocab, eps, segment_features(kind, eps, coot), options=options)
        results[Path(d).name] = m
        samples[Path(d).name] = {"episode": eps[0].episode_id, "pred": preds[0], "ref": eps[0].captions}
    if results:
        log(
            stage="mart_test",
            decoding=options.__dict__,
            features=kind,
            recurrent=model.config.recurrent,
            results=results,
            samples=samples,
        )
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for name, m in results.items():
            print(name, {k: round(v, 4) for k, v in m.items()})
            print("  e.g.", " / ".join(samples[name]["pred"][:4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
