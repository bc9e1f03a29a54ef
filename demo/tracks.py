"""Timed concept tracks: the one record shape for objects, actions, on-screen text and sounds.

Every perception stage returns `ConceptEvent`s; this module merges them into intervals, serialises
them for the library, filters by kind and turns them into per-frame concept names (frame i covers
[i*dt, (i+1)*dt), as in demo/video.py's sampling).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

KINDS = ("object", "action", "screen_text", "sound")
TRACKS_VERSION = 1  # bump when the dict layout below changes; the library stores it beside the events

# Frames whose spans touch (end == next start) must merge despite float rounding.
_EPS = 1e-6


@dataclass(frozen=True)
class ConceptEvent:
    """One concept seen or heard over [start, end) seconds.

    kind: one of KINDS. label: the concept ("person", "riding a bike", a line of screen text,
    "Explosion"). score: the detector's confidence in [0, 1] (max over merged detections).
    extra: JSON-able details, e.g. objects' per-frame "times", "counts" and "boxes".
    """

    kind: str
    start: float
    end: float
    label: str
    score: float
    extra: dict | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown concept kind {self.kind!r}; expected one of {KINDS}")
        if self.end < self.start:
            raise ValueError(f"event ends before it starts: {self.start} > {self.end}")


def frame_spans(times: Sequence[float], interval: float | None = None) -> list[tuple[float, float]]:
    """[start, end) of each sampled frame, given its centre time (frame i at (i + 0.5) * dt).

    interval: the sampling interval dt; by default the median spacing of `times` (1.5 s, HERO's,
    for a single frame).
    """
    times = [float(t) for t in times]
    if interval is None:
        interval = float(np.median(np.diff(times))) if len(times) > 1 else 1.5
    half = interval / 2
    return [(max(0.0, t - half), t + half) for t in times]


def _merge_extra(a: dict | None, b: dict | None) -> dict | None:
    """Lists under the same key are concatenated (per-frame records); other values keep `a`'s."""
    if a is None or b is None:
        return a if b is None else b
    out = dict(a)
    for key, value in b.items():
        if isinstance(out.get(key), list) and isinstance(value, list):
            out[key] = out[key] + value
        else:
            out.setdefault(key, value)
    return out


def merge_events(events: Iterable[ConceptEvent], gap: float = 0.0) -> list[ConceptEvent]:
    """Merge detections of the same (kind, label) whose intervals overlap or lie <= `gap` s apart.

    The merged event spans both, keeps the higher score and concatenates per-frame lists in extra.
    Returned sorted by (start, kind, label).
    """
    groups: dict[tuple[str, str], list[ConceptEvent]] = {}
    for ev in events:
        groups.setdefault((ev.kind, ev.label), []).append(ev)
    merged: list[ConceptEvent] = []
    for group in groups.values():
        group.sort(key=lambda e: (e.start, e.end))
        cur = group[0]
        for ev in group[1:]:
            if ev.start - cur.end <= gap + _EPS:
                cur = replace(
                    cur,
                    end=max(cur.end, ev.end),
                    score=max(cur.score, ev.score),
                    extra=_merge_extra(cur.extra, ev.extra),
                )
            else:
                merged.append(cur)
                cur = ev
        merged.append(cur)
    merged.sort(key=lambda e: (e.start, e.kind, e.label))
    return merged


def filter_kinds(events: Iterable[ConceptEvent], kinds: Iterable[str] | None) -> list[ConceptEvent]:
    """Keep only events whose kind is in `kinds` (None keeps all). Unknown kinds raise."""
    if kinds is None:
        return list(events)
    kinds = set(kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError(f"unknown concept kinds {sorted(unknown)}; expected some of {KINDS}")
    return [ev for ev in events if ev.kind in kinds]


def _jsonable(value):
    """numpy scalars/arrays and tuples -> plain Python, so json.dumps accepts any extra."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def event_to_dict(event: ConceptEvent) -> dict:
    """JSON-able dict {"kind","start","end","label","score"[,"extra"]}."""
    d = asdict(event)
    d["start"], d["end"], d["score"] = float(event.start), float(event.end), float(event.score)
    if event.extra is None:
        del d["extra"]
    else:
        d["extra"] = _jsonable(event.extra)
    return d


def event_from_dict(d: dict) -> ConceptEvent:
    """Inverse of event_to_dict."""
    return ConceptEvent(
        kind=d["kind"],
        start=float(d["start"]),
        end=float(d["end"]),
        label=str(d["label"]),
        score=float(d["score"]),
        extra=d.get("extra"),
    )


def tracks_to_json(events: Iterable[ConceptEvent], kinds: Iterable[str] | None = None) -> dict:
    """{"version": TRACKS_VERSION, "events": [event dicts]} for the library (optionally kinds only)."""
    return {"version": TRACKS_VERSION, "events": [event_to_dict(e) for e in filter_kinds(events, kinds)]}


def tracks_from_json(obj: dict) -> list[ConceptEvent]:
    """Inverse of tracks_to_json; refuses a newer layout than this code knows."""
    version = int(obj.get("version", 0))
    if version > TRACKS_VERSION:
        raise ValueError(f"concept tracks version {version} is newer than supported ({TRACKS_VERSION})")
    return [event_from_dict(d) for d in obj["events"]]


def count_label(label: str, count: int) -> str:
    """'person', 3 -> '3 persons' (plain English plural; COCO names are simple nouns)."""
    if count <= 1:
        return label
    plural = label + ("es" if label.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{count} {plural}"


def frame_concepts(
    events: Iterable[ConceptEvent],
    n_frames: int,
    interval: float,
    kinds: Iterable[str] | None = None,
    with_counts: bool = False,
) -> list[list[str]]:
    """Concept names per frame: frame i lists the labels of events overlapping [i*dt, (i+1)*dt).

    Ordered by score, highest first, without duplicates. with_counts: object labels become "3 persons"
    using the count at the frame time in extra["times"]/extra["counts"] when present.
    """
    out: list[list[tuple[float, str]]] = [[] for _ in range(n_frames)]
    for ev in filter_kinds(events, kinds):
        first = max(0, int(np.floor(ev.start / interval + _EPS)))
        last = min(n_frames - 1, int(np.ceil(ev.end / interval - _EPS)) - 1)
        for i in range(first, last + 1):
            label = ev.label
            if with_counts and ev.kind == "object" and ev.extra and "counts" in ev.extra:
                label = count_label(ev.label, _count_at(ev.extra, (i + 0.5) * interval))
            out[i].append((ev.score, label))
    names: list[list[str]] = []
    for frame in out:
        seen: list[str] = []
        for _, label in sorted(frame, key=lambda p: -p[0]):
            if label not in seen:
                seen.append(label)
        names.append(seen)
    return names


def _count_at(extra: dict, t: float) -> int:
    """The object count recorded at the frame time nearest to t."""
    times, counts = extra.get("times") or [], extra["counts"]
    if not times:
        return int(max(counts))
    j = int(np.argmin(np.abs(np.asarray(times) - t)))
    return int(counts[j])
