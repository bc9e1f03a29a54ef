"""SynthTV: determinism, schema, spans, QA balance, split constraints, rendering, CLI; mp4 + Whisper (slow)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from synthtv.episode import build_episode, sample_times
from synthtv.schema import validate
from synthtv.world import HELD_OUT_ACTIONS, HELD_OUT_TOPICS, NOVEL_PHOTOS, SPLITS

REPO = Path(__file__).resolve().parents[1]
SHORT = ("test", 35)  # a 31.5 s episode: the cheapest to render, encode and transcribe


def _records(split: str, n: int) -> list[dict]:
    return [build_episode(split, s)[0] for s in range(n)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    """The same one-episode generation run twice (features-only, one worker)."""
    from synthtv.generate import generate

    outs = []
    for k in range(2):
        out = tmp_path_factory.mktemp(f"gen{k}")
        generate(SHORT[0], SHORT[1], 1, out, workers=1, device="cpu", progress=False)
        outs.append(out)
    return outs


def test_same_seed_gives_byte_identical_annotations_and_features(generated):
    a, b = generated
    assert (a / "episodes.jsonl").read_bytes() == (b / "episodes.jsonl").read_bytes()
    rec = json.loads((a / "episodes.jsonl").read_text())
    feats = [(d / rec["features"]["path"]).read_bytes() for d in (a, b)]
    assert feats[0] == feats[1]
    f = np.load(a / rec["features"]["path"])
    assert f.dtype == np.float16 and f.shape == (rec["n_frames"], 1280)
    assert np.isfinite(f).all() and np.abs(f).sum() > 0
    assert build_episode("train", 7)[0] == build_episode("train", 7)[0]
    assert build_episode("train", 7)[0] != build_episode("train", 8)[0]


def test_generated_features_are_the_app_encoders_up_to_float_rounding(generated):
    """Generation encodes with synthtv/encoder.py (batch norm folded, TorchScript); the app with
    demo.features on the same frames must agree to float16 precision, and the workers' split of the
    frames (order, batch, repeated frames encoded once) must not change a bit."""
    from demo.features import load_frame_encoder
    from synthtv.encoder import load_fast_features
    from synthtv.generate import encoder_frames
    from synthtv.render import render_frames

    rec = json.loads((generated[0] / "episodes.jsonl").read_text())
    stored = np.load(generated[0] / rec["features"]["path"]).astype(np.float32)
    _, world = build_episode(*SHORT)
    frames = render_frames(world, sample_times(world.duration), *rec["size"])
    app = load_frame_encoder(device="cpu").encode(frames).features
    assert np.allclose(stored, app, rtol=1e-3, atol=1e-4)  # float16 keeps ~4.9e-4 relative
    cos = (stored * app).sum(1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(app, axis=1)
    assert cos.min() > 0.9999
    small = encoder_frames(frames)
    assert len({f.tobytes() for f in small}) < len(small)  # this episode has still stretches
    fast = load_fast_features()
    mixed = np.concatenate([small[::-1], small[:3]])
    assert np.array_equal(
        fast.encode(mixed)[: len(small)][::-1].astype(np.float16), stored.astype(np.float16)
    )


def test_parallel_workers_write_what_one_process_writes(generated, tmp_path):
    """The default CPU path: two worker processes, each rendering and encoding its own episodes."""
    from synthtv.generate import generate

    meta = generate(SHORT[0], SHORT[1], 2, tmp_path, workers=2, device="cpu", progress=False)
    assert meta["device"] == "cpu (workers)" and meta["stage_seconds"]["encode"] > 0
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    assert lines[0] == (generated[0] / "episodes.jsonl").read_text().strip()
    rec = json.loads(lines[0])
    path = rec["features"]["path"]
    assert (tmp_path / path).read_bytes() == (generated[0] / path).read_bytes()
    assert json.loads(lines[1])["seed"] == SHORT[1] + 1


def test_records_validate_against_the_schema():
    for split in SPLITS:
        for rec in _records(split, 8):
            rec["size"] = [640, 360]
            assert validate(rec) == [], (split, rec["seed"])
    broken = build_episode("val", 0)[0] | {"size": [640, 360]}
    broken["qa"][0]["answer_idx"] = 7
    broken["queries"][0]["end"] = broken["duration"] + 5
    errs = validate(broken)
    assert any("answer_idx" in e for e in errs) and any("not inside" in e for e in errs)


def test_spans_lie_inside_the_episode_and_frames_follow_the_app():
    from demo.video import frame_times

    for rec in _records("train", 10):
        d = rec["duration"]
        assert 30 <= d <= 120
        for key in ("subtitles", "queries", "qa", "captions", "events"):
            for x in rec[key]:
                assert 0 <= x["start"] < x["end"] <= d
        assert np.array_equal(sample_times(d), frame_times(d))
        assert rec["n_frames"] == len(frame_times(d))


def test_every_episode_has_all_annotation_types():
    types_q, types_qa = Counter(), Counter()
    for rec in _records("train", 20):
        assert len({s["speaker"] for s in rec["subtitles"]}) >= 2
        assert {s["kind"] for s in rec["subtitles"]} >= {"offscreen", "reaction"}
        types_q.update(q["type"] for q in rec["queries"])
        types_qa.update(q["type"] for q in rec["qa"])
        assert len(rec["captions"]) == len(rec["events"]) >= 3
    assert set(types_q) == {"video", "sub", "both"}
    assert set(types_qa) == {"what", "which", "who-said", "when", "before-after", "counting"}


def test_queries_paraphrase_rather_than_copy_subtitles():
    for rec in _records("val", 20):
        subs = [set(re.findall(r"[a-z]+", s["text"].lower())) for s in rec["subtitles"]]
        for q in rec["queries"]:
            words = set(re.findall(r"[a-z]+", q["text"].lower()))
            best = max(len(words & s) / len(words | s) for s in subs)
            assert best < 0.75, (q["text"], best)


def test_qa_answer_index_valid_and_positions_balanced():
    counts = Counter()
    n = 0
    for rec in _records("train", 60):
        for q in rec["qa"]:
            assert 0 <= q["answer_idx"] < 5 and len(set(q["candidates"])) == 5
            counts[q["answer_idx"]] += 1
            n += 1
    assert n > 300
    for pos in range(5):
        assert abs(counts[pos] / n - 0.2) < 0.03, counts


def test_splits_hold_out_photos_and_combinations():
    for split in ("train", "val", "test"):
        for rec in _records(split, 15):
            actors = {a["id"] for a in rec["actors"]}
            assert not actors & set(NOVEL_PHOTOS)
            for e in rec["events"]:
                assert not any((a, e["action"]) in HELD_OUT_ACTIONS for a in e["actors"])
            for s in rec["subtitles"]:
                assert (s["speaker"], s["topic"]) not in HELD_OUT_TOPICS
            assert not any(q["held_out"] for q in rec["queries"] + rec["qa"])
    for rec in _records("comp", 10):
        assert any((a, e["action"]) in HELD_OUT_ACTIONS for e in rec["events"] for a in e["actors"])
        assert any((s["speaker"], s["topic"]) in HELD_OUT_TOPICS for s in rec["subtitles"])
    for rec in _records("novel", 10):
        assert {a["id"] for a in rec["actors"]} & set(NOVEL_PHOTOS)


def test_render_is_deterministic_at_any_size():
    from synthtv.render import render_frame

    _, world = build_episode("train", 3)
    a = render_frame(world, 10.25, 320, 180)
    assert a.shape == (180, 320, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_frame(world, 10.25, 320, 180))
    assert render_frame(world, 10.25, 96, 64).shape == (64, 96, 3)
    frames = [render_frame(world, t, 160, 90) for t in np.arange(0, world.duration, 2.0)]
    assert np.std([f.mean() for f in frames]) > 0  # things change over time


def test_stats_cli_reports_counts_and_chance_baselines(generated):
    out = subprocess.run(
        [sys.executable, "-m", "synthtv", "stats", str(generated[0]), "--json"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    st = json.loads(out.stdout)
    assert st["episodes"] == 1 and st["with_features"] == 1 and sum(st["qa"].values()) > 0
    assert 0 <= st["baselines"]["qa_random"] <= 1
    bad = subprocess.run(
        [sys.executable, "-m", "synthtv", "generate", "--split", "nope", "--count", "1", "--out", "x"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2


def test_vcmr_ceiling_counts_the_episodes_a_query_cannot_tell_apart():
    """A query is unique in its episode, so alone it is always findable; beside a copy of its episode
    an oracle can only guess (R@1 0.5); over 40 episodes the same visual events recur."""
    import copy

    from synthtv.episode import build_episode
    from synthtv.stats import _query_key, vcmr_ceiling

    recs = [build_episode("test", seed)[0] for seed in range(40)]
    assert all(_query_key(r, q) is not None for r in recs for q in r["queries"])  # every gold moment found
    one = vcmr_ceiling(recs[:1])
    assert one["all"] == 1.0 and one["median_episodes"] == 1
    twin = copy.deepcopy(recs[0])
    twin["episode_id"] += "-copy"
    two = vcmr_ceiling([recs[0], twin])
    assert {k: v for k, v in two.items() if k != "median_episodes"} == {
        "all": 0.5,
        "both": 0.5,
        "sub": 0.5,
        "video": 0.5,
    }
    many = vcmr_ceiling(recs)
    assert many["video"] < many["sub"] < 1 and many["all"] < 0.9


@pytest.mark.slow
def test_mp4_decodes_with_the_app_reader_and_transcribes_close_to_gold(tmp_path):
    from demo.asr import transcribe
    from demo.features import load_frame_encoder
    from demo.video import load_audio, probe, sample_frames
    from synthtv.generate import generate, load_features, read_episodes
    from synthtv.stats import word_error_rate

    generate(SHORT[0], SHORT[1], 1, tmp_path, video=True, workers=1, device="cpu", progress=False)
    rec = read_episodes(tmp_path)[0]
    path = tmp_path / rec["video"]["path"]
    meta = probe(path)
    assert meta.has_audio and abs(meta.duration - rec["duration"]) < 0.05
    frames = sample_frames(path, meta)
    assert frames.shape == (rec["n_frames"], 360, 640, 3)
    a = load_frame_encoder(device="cpu").encode(frames).features
    b = load_features(tmp_path, rec).astype(np.float32)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.mean() > 0.9  # codec loss only
    hyp = " ".join(s.text for s in transcribe(load_audio(path, meta), language="en").subtitles)
    ref = " ".join(s["text"] for s in rec["subtitles"])
    assert word_error_rate(ref, hyp) < 0.2


def test_subtitle_baseline_spreads_a_subtitle_to_the_frames_it_overlaps():
    from training.baselines import frame_span

    assert frame_span(36.7, 41.0, 90.0) == (36.0, 42.0)
    assert frame_span(3.0, 4.5, 90.0) == (3.0, 4.5)
    assert frame_span(88.0, 89.9, 90.0) == (87.0, 90.0)
