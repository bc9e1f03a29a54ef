"""The tracks find what only they can: a SynthTV episode made with --extras, ingested by the app, searched
with and without its screen-text and sound tracks (a cheap run of benchmarks/bench_tracks_effect.py)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pygame") is None, reason="pygame (its example sounds) not installed"
)


def test_extras_are_opt_in_and_deterministic():
    from synthtv.episode import build_episode
    from synthtv.extras import add_extras, draw_frames, mix_sounds

    plain, _ = build_episode("test", 3)
    again, _ = build_episode("test", 3)
    before = json.dumps(again, sort_keys=True)
    extras = add_extras(again)
    assert json.dumps(plain, sort_keys=True) == before  # building an episode never draws extras
    third, _ = build_episode("test", 3)
    assert add_extras(third) == extras  # a pure function of (split, seed)
    types = [q["type"] for q in again["queries"]]
    assert types.count("screen_text") == 2 and types.count("sound") == 2
    s1, s2 = sorted((s["start"], s["end"]) for s in extras["sounds"])
    assert s1[1] <= s2[0]  # the two effects never overlap
    frames = np.zeros((2, 180, 320, 3), np.uint8)
    assert min(s["start"] for s in extras["signs"]) >= 1.0
    drawn = draw_frames(frames, [0.5, extras["signs"][0]["start"] + 0.1], extras)
    assert drawn[0].max() == 0 and drawn[1].max() == 255 and frames.max() == 0  # white letters, on a copy
    audio = mix_sounds(np.zeros(int(again["duration"] * 16000), np.float32), extras)
    loud = np.flatnonzero(np.abs(audio) > 0.05) / 16000
    assert s1[0] - 0.01 <= loud.min() and loud.max() <= s2[1] + 0.01


@pytest.mark.slow  # ~45 CPU-seconds: a 35 s video is rendered, read (OCR) and heard (YAMNet)
def test_sound_and_sign_queries_need_their_tracks(tmp_path):
    from benchmarks.bench_tracks_effect import build_synthtv, hits, ingest, score

    ((path, rec),) = build_synthtv(tmp_path / "synthtv", 1, 40.0, size=(320, 180))
    assert rec["episode_id"] == "test-0000003"
    subs = path.with_suffix(".srt")  # gold subtitles: Whisper is not what this test is about
    from demo.subtitles import Subtitle, to_srt

    subs.write_text(to_srt([Subtitle(s["start"], s["end"], s["text"]) for s in rec["subtitles"]]))
    kinds = ("screen_text", "sound")
    record = ingest(path, tmp_path / "library", kinds, subs)
    assert {e.kind for e in record.tracks()} == set(kinds)
    queries = [q for q in rec["queries"] if q["type"] in kinds]
    rows = score(record, queries, {"none": (), "tracks": kinds}, rec["episode_id"])
    found = {
        (r.type, r.text): (hits(r.top["none"], r.gold)[0], hits(r.top["tracks"], r.gold)[0]) for r in rows
    }
    sound = [v for (t, _), v in found.items() if t == "sound"]
    sign = [v for (t, _), v in found.items() if t == "screen_text"]
    # With the tracks, a sound and a sign are found (IoU >= 0.5) that the same search misses without them.
    assert any(with_ and not without for without, with_ in sound), found
    assert any(with_ and not without for without, with_ in sign), found
    assert sum(w for _, w in found.values()) > sum(n for n, _ in found.values()), found
