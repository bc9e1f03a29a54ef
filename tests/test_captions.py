"""Captioning service: segment proposals, chapters export, captions from the shipped COOT + MART, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from demo.captions import (
    Caption,
    caption_video,
    captions_json,
    chapters_vtt,
    frame_range,
    parse_segments,
    propose_segments,
)
from demo.errors import InputError
from demo.library import VideoRecord
from demo.subtitles import Subtitle, parse_subtitles
from tests.conftest import ASSETS, SAMPLE, run_cli

CUTS = (7.0, 13.5, 20.0, 27.0)  # assets/sample_script.json shots


def _record(features, duration, subtitles=(), interval=1.5) -> VideoRecord:
    from demo.video import VideoMeta

    return VideoRecord(
        video_id="test",
        source_name="test.mp4",
        meta=VideoMeta(duration, 12.0, 640, 360, int(duration * 12), True),
        frame_interval=interval,
        subtitles=list(subtitles),
        subtitles_source="test",
        language="en",
        concepts=[[] for _ in range(len(features))],
        features=np.asarray(features, dtype=np.float32),
        feature_encoder="efficientnet-lite0",
    )


@pytest.fixture(scope="module")
def sample(sample_script) -> VideoRecord:
    """The sample video's real frame features (decoded + EfficientNet-Lite0) and its script's lines."""
    from demo import video as vid
    from demo.features import load_frame_encoder

    meta = vid.probe(SAMPLE)
    feats = load_frame_encoder(device="cpu").encode(vid.sample_frames(SAMPLE, meta)).features
    subs = [Subtitle(x["start"], x["end"], x["text"]) for x in sample_script["lines"]]
    return _record(feats, meta.duration, subs)


def _check_cover(segs, duration, min_len, max_len):
    assert segs[0][0] == 0.0 and segs[-1][1] == pytest.approx(duration)
    for (_, e), (s2, _) in zip(segs, segs[1:]):
        assert e == s2  # contiguous, in time order
    for s, e in segs:
        assert min_len - 1e-6 <= e - s <= max_len + 1e-6


@pytest.mark.parametrize("min_len,max_len", [(3.0, 30.0), (2.0, 6.0), (5.0, 12.0)])
def test_proposals_respect_lengths_on_random_features(min_len, max_len):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 64))
    # four shots (one of a single frame) with small noise
    feats = np.repeat(base, [10, 1, 30, 39], axis=0) + 0.05 * rng.normal(size=(80, 64))
    subs = [Subtitle(t, t + 4.0, "line") for t in np.arange(2.0, 115.0, 9.0)]
    rec = _record(feats, 120.0, subs)
    segs = propose_segments(rec, min_len, max_len)
    _check_cover(segs, 120.0, min_len, max_len)
    assert propose_segments(rec, min_len, max_len) == segs  # deterministic


def test_long_scene_is_split_at_a_subtitle_gap():
    subs = [Subtitle(0.5, 20.0, "a"), Subtitle(22.0, 50.0, "b")]
    segs = propose_segments(_record(np.ones((40, 8)), 60.0, subs), 3.0, 30.0)
    assert segs[0] == (0.0, 21.0)  # the middle of the gap 20-22: no subtitle is cut
    _check_cover(segs, 60.0, 3.0, 30.0)


def test_short_video_is_one_segment():
    assert propose_segments(_record(np.ones((1, 8)), 1.0)) == [(0.0, 1.0)]


def test_proposals_cut_at_the_sample_shots(sample):
    segs = propose_segments(sample)
    bounds = [e for _, e in segs[:-1]]
    assert len(bounds) == len(CUTS)
    for b, cut in zip(bounds, CUTS):
        assert abs(b - cut) <= sample.frame_interval / 2 + 1e-6  # the frame boundary nearest the cut
    _check_cover(segs, sample.meta.duration, 3.0, 30.0)


def test_frame_range_and_parse_segments():
    assert frame_range(1.8, 6.3, 56, 1.5) == (1, 5)
    assert frame_range(90.0, 95.0, 56, 1.5) == (55, 56)  # clamped, never empty
    assert parse_segments("0-7.5, 7.5-13") == [(0.0, 7.5), (7.5, 13.0)]
    for bad in ("", "3", "5-3", "a-b", "1-2;3-4"):
        with pytest.raises(InputError):
            parse_segments(bad)


def test_chapters_vtt_and_json():
    caps = [Caption(0.0, 7.5, "An astronaut smiles."), Caption(7.5, 13.5, "A cat looks up.")]
    vtt = chapters_vtt(caps)
    assert vtt.startswith("WEBVTT")
    assert "00:00:00.000 --> 00:00:07.500\nAn astronaut smiles." in vtt
    back = parse_subtitles(vtt)
    assert [(s.start, s.end, s.text) for s in back] == [(c.start, c.end, c.text) for c in caps]
    assert captions_json(caps) == {"segments": [c.to_dict() for c in caps]}
    json.dumps(captions_json(caps))


@pytest.mark.skipif(not (ASSETS / "mart" / "model.safetensors").is_file(), reason="no shipped MART")
def test_caption_video_with_shipped_checkpoints(sample):
    caps = caption_video(sample)
    assert [(c.start, c.end) for c in caps] == propose_segments(sample)
    assert all(c.text.strip() and c.text[0].isupper() for c in caps)
    # chapters read as a list of different events: no 4 words in a row said by an earlier chapter
    words = [[w for w in c.text.lower().replace(",", " ").replace(".", " ").split()] for c in caps]
    grams = [{tuple(w[i : i + 4]) for i in range(len(w) - 3)} for w in words]
    assert all(not (g & set().union(*grams[:k])) for k, g in enumerate(grams) if k)
    # a user- or search-picked moment, given out of order: captions come back in time order
    picked = caption_video(sample, [(20.0, 26.0), (1.0, 5.0)])
    assert [(c.start, c.end) for c in picked] == [(1.0, 5.0), (20.0, 26.0)]
    assert all(c.text.strip() for c in picked)
    assert caption_video(sample, [(1.0, 5.0)])[0].text  # one segment alone
    with pytest.raises(InputError):
        caption_video(sample, [(40.0, 50.0)])  # outside the video


def test_cli_caption_bad_segments_exit_2(tmp_path):
    r = run_cli("caption", str(SAMPLE), "--segments", "3-x", "--json", data_dir=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "--segments" in r.stderr
    assert r.stdout == ""


@pytest.mark.slow
@pytest.mark.skipif(not (ASSETS / "mart" / "model.safetensors").is_file(), reason="no shipped MART")
def test_cli_caption_sample(data_dir, sample_record):
    r = run_cli("caption", str(SAMPLE), "--segments", "0-7,7-13.5", "--json", "--quiet", data_dir=data_dir)
    assert r.returncode == 0, r.stderr
    segs = json.loads(r.stdout)["segments"]
    assert [(s["start"], s["end"]) for s in segs] == [(0.0, 7.0), (7.0, 13.5)]
    assert all(s["text"] for s in segs)
    r = run_cli("caption", sample_record.video_id, "--format", "vtt", "--quiet", data_dir=data_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("WEBVTT - chapters")
