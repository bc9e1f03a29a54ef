"""Concept tracks: merging into intervals, JSON round-trips, kind filtering, per-frame names."""

import json

import numpy as np
import pytest

from demo.tracks import (
    KINDS,
    TRACKS_VERSION,
    ConceptEvent,
    filter_kinds,
    frame_concepts,
    frame_spans,
    merge_events,
    tracks_from_json,
    tracks_to_json,
)


def _obj(i, label="person", count=1, dt=1.5, score=0.9):
    t = (i + 0.5) * dt
    return ConceptEvent(
        "object", i * dt, (i + 1) * dt, label, score, {"times": [t], "counts": [count], "boxes": [[]]}
    )


def test_frame_spans_centre_times():
    assert frame_spans([0.75, 2.25, 3.75]) == [(0.0, 1.5), (1.5, 3.0), (3.0, 4.5)]
    assert frame_spans([1.0], interval=2.0) == [(0.0, 2.0)]


def test_merge_consecutive_frames_into_one_interval():
    events = [_obj(0, score=0.6), _obj(1, score=0.9), _obj(2, count=3), _obj(5), _obj(1, "car")]
    merged = merge_events(events)
    persons = [e for e in merged if e.label == "person"]
    assert [(e.start, e.end) for e in persons] == [(0.0, 4.5), (7.5, 9.0)]
    assert persons[0].score == 0.9
    assert persons[0].extra["counts"] == [1, 1, 3]  # per-frame records kept, in time order
    assert persons[0].extra["times"] == [0.75, 2.25, 3.75]
    assert [e.label for e in merged] == ["person", "car", "person"]  # sorted by start


def test_merge_gap_tolerance_bridges_a_missed_frame():
    events = [_obj(0), _obj(2)]
    assert len(merge_events(events)) == 2
    assert [(e.start, e.end) for e in merge_events(events, gap=1.5)] == [(0.0, 4.5)]


def test_merge_keeps_kinds_apart():
    a = ConceptEvent("sound", 0, 1, "Music", 0.5)
    b = ConceptEvent("screen_text", 0.5, 2, "Music", 0.7)
    assert len(merge_events([a, b])) == 2


def test_json_round_trip_with_numpy_extra():
    ev = ConceptEvent(
        "object", 0.0, 1.5, "cat", np.float32(0.91), {"boxes": [np.array([[0.1, 0.2, 0.5, 0.6]])]}
    )
    plain = ConceptEvent("sound", 1.0, 2.0, "Explosion", 0.7)
    obj = json.loads(json.dumps(tracks_to_json([ev, plain])))
    assert obj["version"] == TRACKS_VERSION
    back = tracks_from_json(obj)
    assert back[1] == plain
    assert back[0].label == "cat" and back[0].score == pytest.approx(0.91)
    assert back[0].extra["boxes"][0][0] == pytest.approx([0.1, 0.2, 0.5, 0.6])


def test_newer_version_is_refused():
    with pytest.raises(ValueError):
        tracks_from_json({"version": TRACKS_VERSION + 1, "events": []})


def test_bad_records_are_refused():
    with pytest.raises(ValueError):
        ConceptEvent("scene", 0, 1, "beach", 0.5)
    with pytest.raises(ValueError):
        ConceptEvent("object", 2, 1, "cat", 0.5)
    with pytest.raises(ValueError):
        filter_kinds([], ["objects"])


def test_turning_a_kind_off_removes_it_everywhere():
    events = [
        _obj(0),
        ConceptEvent("sound", 0.0, 3.0, "Applause", 0.8),
        ConceptEvent("screen_text", 1.5, 3.0, "OPEN DAILY", 0.99),
        ConceptEvent("action", 0.0, 1.5, "riding a bike", 0.4),
    ]
    on = [k for k in KINDS if k != "sound"]
    kept = filter_kinds(events, on)
    assert all(e.kind != "sound" for e in kept) and len(kept) == 3
    assert all(e["kind"] != "sound" for e in tracks_to_json(events, kinds=on)["events"])
    names = frame_concepts(events, n_frames=2, interval=1.5, kinds=on)
    assert "Applause" not in sum(names, [])
    assert "Applause" in frame_concepts(events, n_frames=2, interval=1.5)[1]


def test_frame_concepts_overlap_order_and_counts():
    events = merge_events([_obj(0, count=3), _obj(1, count=2), _obj(1, "bicycle", score=0.5)])
    events.append(ConceptEvent("sound", 1.6, 1.9, "Bell", 0.95))  # inside frame 1 only
    names = frame_concepts(events, n_frames=3, interval=1.5)
    assert names == [["person"], ["Bell", "person", "bicycle"], []]
    counted = frame_concepts(events, n_frames=3, interval=1.5, kinds=["object"], with_counts=True)
    assert counted == [["3 persons"], ["2 persons", "bicycle"], []]


def test_event_past_the_end_is_clipped():
    ev = ConceptEvent("sound", 2.0, 100.0, "Music", 0.9)
    assert frame_concepts([ev], n_frames=2, interval=1.5) == [[], ["Music"]]
