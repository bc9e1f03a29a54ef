"""Learning tests of the captioning recipes: a few SynthTV episodes (real captions, stand-in features),
tiny models, a few epochs; the caption loss (MART) and the alignment loss (COOT) must fall."""

from __future__ import annotations

import numpy as np
import torch

from models.coot import CootConfig
from models.mart import Vocab
from synthtv.episode import build_episode
from training.caption_data import CaptionEpisode, frame_range, paragraphs_from_token_feats
from training.train_coot import CootRecipe, train_coot
from training.train_mart import MartRecipe, raw_segment_features, small_mart_config, train_mart


def _episodes(n: int, dim: int = 32) -> list[CaptionEpisode]:
    """SynthTV annotations (pure functions of the seed, no rendering) + a feature per event action."""
    rng = np.random.default_rng(0)
    action_vec = {}
    out = []
    for seed in range(n):
        rec, _ = build_episode("train", seed)
        caps = sorted(rec["captions"], key=lambda c: c["start"])[:6]
        t = rec["n_frames"]
        feats = 0.1 * rng.normal(size=(t, dim)).astype(np.float32)
        ranges = [frame_range(c["start"], c["end"], t) for c in caps]
        for c, (a, b) in zip(caps, ranges):  # frames of an event look like its action
            act = rec["events"][c["event"]]["action"]
            action_vec.setdefault(act, rng.normal(size=dim).astype(np.float32))
            feats[a:b] += action_vec[act]
        out.append(
            CaptionEpisode(
                rec["episode_id"],
                rec["duration"],
                feats,
                [(c["start"], c["end"]) for c in caps],
                ranges,
                [c["text"] for c in caps],
            )  # fmt: skip
        )
    return out


def test_mart_smoke_training_loss_falls():
    torch.set_num_threads(1)
    eps = _episodes(8)
    vocab = Vocab.build([c for e in eps for c in e.captions])
    feats = [raw_segment_features(e.features, e.clip_ranges) for e in eps]
    cfg = small_mart_config(vocab, feats[0].shape[1], hidden=64)
    recipe = MartRecipe(epochs=12, batch_size=4, lr=2e-3, max_n_sen=4, seed=0)
    model, hist = train_mart(eps, feats, cfg, recipe, progress=False)
    losses = [h["loss_per_word"] for h in hist]
    assert losses[-1] < 0.7 * losses[0], losses
    assert not model.training


def test_coot_smoke_training_loss_falls():
    torch.set_num_threads(1)
    eps = _episodes(8)
    rng = np.random.default_rng(1)
    # stand-in token features: a vector per word, so sentences about the same action share tokens
    words: dict[str, np.ndarray] = {}
    per_sentence = []
    for e in eps:
        for c in e.captions:
            toks = Vocab.tokenize(c)
            per_sentence.append(
                np.stack([words.setdefault(w, rng.normal(size=24).astype(np.float32)) for w in toks])
            )
    pars = paragraphs_from_token_feats(per_sentence, [len(e.captions) for e in eps])
    cfg = CootConfig(video_feature_dim=32, text_feature_dim=24, hidden_dim=32, num_heads=4, ff_dim=32,
                     pooler_hidden_dim=64)  # fmt: skip
    recipe = CootRecipe(epochs=30, batch_size=4, lr=1e-3, warmup_epochs=1, seed=0)
    _, hist = train_coot(eps, pars, recipe, config=cfg, progress=False)
    losses = [h["loss"] for h in hist]
    assert min(losses[-3:]) < 0.8 * losses[0], losses
