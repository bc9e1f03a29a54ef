"""Learning tests of the captioning recipes on real SynthTV episodes (tests/data/synthtv_smoke.npz: the
generator's records and EfficientNet-Lite0 features): tiny models, a few epochs; MART's caption loss and
COOT's alignment loss must fall."""

from __future__ import annotations

import torch

from models.coot import CootConfig
from models.mart import Vocab
from tests.conftest import ROOT
from training.caption_data import episode_paragraphs, load_fixture_episodes
from training.train_coot import CootRecipe, train_coot
from training.train_mart import MartRecipe, raw_segment_features, small_mart_config, train_mart

FIXTURE = ROOT / "tests" / "data" / "synthtv_smoke.npz"


def _episodes(n: int, max_segments: int = 6):
    eps = load_fixture_episodes(FIXTURE)[:n]
    for e in eps:  # shorter paragraphs keep the test fast
        e.segments, e.clip_ranges, e.captions = (
            e.segments[:max_segments],
            e.clip_ranges[:max_segments],
            e.captions[:max_segments],
        )
    return eps


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
    pars = episode_paragraphs(eps)  # the real text input: MiniLM token states
    assert pars[0].token_feats.shape[1] == 384
    assert len(pars[0].sentence_ranges) == len(eps[0].captions)
    cfg = CootConfig(hidden_dim=32, num_heads=4, ff_dim=32, pooler_hidden_dim=64)
    recipe = CootRecipe(epochs=30, batch_size=4, lr=1e-3, warmup_epochs=1, seed=0)
    _, hist = train_coot(eps, pars, recipe, config=cfg, progress=False)
    losses = [h["loss"] for h in hist]
    assert min(losses[-3:]) < 0.8 * losses[0], losses
