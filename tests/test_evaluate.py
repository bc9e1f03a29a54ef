"""training.evaluate --from-video on one short SynthTV episode: the app's ingest (decoded frames, Whisper)
feeds HERO, the stored-features evaluation of the same episode comes along, and a re-run reuses the ingest."""

import json

import numpy as np
import pytest
import torch

from models.hero import build_hero, hero_mini_config
from models.io import save_pretrained

SHORT = ("test", 35)  # a 31.5 s episode (tests/test_synthtv.py): the cheapest to render and transcribe


@pytest.fixture(scope="module")
def episode_dir(tmp_path_factory):
    from synthtv.generate import generate

    out = tmp_path_factory.mktemp("stv")
    generate(SHORT[0], SHORT[1], 1, out, video=True, workers=1, device="cpu", progress=False)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = hero_mini_config(head="app")
    cfg.f_config.num_hidden_layers, cfg.c_config.num_hidden_layers = 1, 1
    cfg.asr_hold_s = 3.0  # as app checkpoints: Whisper's lines reach HERO held
    path = tmp_path_factory.mktemp("ckpt")
    save_pretrained(build_hero(cfg), path, cfg, dtype=torch.float16)
    return str(path)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return tmp_path_factory.mktemp("library")


@pytest.mark.slow
def test_from_video_reports_both_numbers_and_reuses_the_ingest(episode_dir, checkpoint, lib, capsys):
    from training.evaluate import main

    args = ["--checkpoint", checkpoint, "--data", str(episode_dir), "--json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*args, "--from-video", "--library", str(lib), "--app-methods"]) == 0
    res = json.loads(capsys.readouterr().out)

    assert res["from_video"] and res["n_queries"] == plain["n_queries"] > 0
    assert plain["vcmr_ceiling"]["all"] == 1.0  # one episode: an oracle finds every query's video
    assert {"svmr", "vcmr", "qa", "svmr_by_type", "qa_by_type"} <= res.keys()
    # the stored-features condition is exactly the evaluation without --from-video
    assert res["conditions"]["stored_features+gold_subtitles"]["svmr"] == plain["svmr"]
    assert res["conditions"]["stored_features+gold_subtitles"]["qa"] == plain["qa"]
    assert res["asr"]["wer"] < 0.3 and res["asr"]["episodes"][0]["asr_lines"] > 0
    assert res["frames"]["episodes_same_n_frames"] == 1 and res["frames"]["cosine_mean"] > 0.9
    assert res["timings"]["episodes"] == 1 and res["timings"]["ingested_now"] in (0, 1)
    assert res["app"]["text"]["method"] == ["text"] and "hero+text" in res["app"]["hero"]["method"]

    assert main([*args, "--from-video", "--library", str(lib)]) == 0  # cached: no Whisper, same numbers
    again = json.loads(capsys.readouterr().out)
    assert again["timings"]["ingested_now"] == 0
    assert again["svmr"] == res["svmr"] and again["qa"] == res["qa"]


@pytest.mark.slow
def test_app_states_match_the_evaluated_encoding(episode_dir, checkpoint, lib):
    """What evaluate scores from the ingested record is what the app stored for it (same inputs)."""
    from demo.engine import hero_subtitles
    from demo.library import Library
    from models.io import load_pretrained
    from training.data import load_records
    from training.evaluate import encode_all, ingest_episodes

    recs, records, _ = ingest_episodes(episode_dir, Library(lib), checkpoint=checkpoint)
    model = load_pretrained(checkpoint).eval()
    feats = [np.asarray(r.features, np.float32) for r in records]
    eps = load_records(recs, feats, subs=[hero_subtitles(r, model.config) for r in records])
    enc = encode_all(model, eps)[0]
    atol = 2e-2  # the library stores the states in float16
    np.testing.assert_allclose(enc.v_temp.numpy(), records[0].arrays["hero.v_temp"], atol=atol)
    np.testing.assert_allclose(enc.fused.numpy(), records[0].arrays["hero.fused"], atol=atol)


def test_library_needs_from_video(tmp_path, capsys):
    from training.evaluate import main

    (tmp_path / "episodes.jsonl").write_text("")
    assert main(["--data", str(tmp_path), "--library", str(tmp_path / "lib")]) == 2
    assert "--from-video" in capsys.readouterr().err
