"""The HERO checkpoint the app ships (assets/hero-mini): what a user gets by default, measured on
SynthTV episodes it never saw (the smoke fixture's val split: 128 episodes, 1011 queries)."""

import json
from pathlib import Path

import pytest

from demo.engine import DEFAULT_CHECKPOINT, load_engine
from training.baselines import MiniLM, retrieval_baselines
from training.data import fixture_splits, load_fixture
from training.evaluate import evaluate

FIXTURE = Path(__file__).parent / "data" / "synthtv_smoke.npz"


def test_shipped_checkpoint_is_the_default_and_fits():
    weights = DEFAULT_CHECKPOINT / "model.safetensors"
    assert weights.stat().st_size <= 60e6  # fp16, MiniLM's word embeddings not stored
    cfg = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())
    assert cfg["head"] == "app" and cfg["minilm_word_embeddings"]
    engine = load_engine(None, "cpu")
    assert engine is not None and engine.can_search and engine.can_answer
    assert load_engine("none") is None  # the text matcher on request
    assert (DEFAULT_CHECKPOINT / "README.md").read_text().count("SynthTV only") >= 1


@pytest.mark.slow
def test_shipped_hero_beats_the_subtitle_baseline_on_held_out_episodes():
    """Moment retrieval in one video and over all 128: above MiniLM subtitle matching, and on the
    queries about what is shown (measured 2026-12-07, session 20's checkpoint: VCMR R1@0.5 0.300 vs
    0.120, SVMR 0.628 vs 0.432, video 0.409 vs 0.230, both 0.445 vs 0.047; session 15's: VCMR 0.306,
    SVMR 0.607, video 0.377, both 0.414; on the first 32 episodes, before session 18: VCMR 0.447 vs
    0.224, SVMR 0.588 vs 0.431)."""
    engine = load_engine(None, "cpu")
    res = evaluate(engine.model, load_fixture(FIXTURE)["val"], tasks=("svmr", "vcmr"))
    base = retrieval_baselines(fixture_splits(FIXTURE)["val"][0], MiniLM())
    hero = {t: r["R1@0.5"] for t, r in res["svmr_by_type"].items()}
    sub = {t: r["R1@0.5"] for t, r in base["subtitle_svmr"].items()}
    assert res["n_queries"] >= 200
    assert res["vcmr"]["R1@0.5"] > base["subtitle_vcmr"]["all"]["R1@0.5"] + 0.05, (res["vcmr"], base)
    assert res["svmr"]["R1@0.5"] > sub["all"], (hero, sub)
    assert hero["video"] > sub["video"] and hero["both"] > sub["both"], (hero, sub)
