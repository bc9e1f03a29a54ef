"""Validation of SynthTV episode records (the JSON-lines schema documented in synthtv/SCHEMA.md).

`validate(record)` returns a list of problems (empty when the record is valid): required fields and
types, spans inside [0, duration] with start < end, subtitles sorted and non-overlapping, known speakers
and events, QA with 5 distinct candidates and a valid answer index.
"""

from __future__ import annotations

from synthtv.world import ACTIONS, SPLITS

NUM = (int, float)
RECORD = {
    "episode_id": str, "split": str, "seed": int, "generator_version": str, "duration": NUM,
    "frame_interval": NUM, "n_frames": int, "size": list, "actors": list, "scenes": list, "events": list,
    "speakers": list, "subtitles": list, "queries": list, "qa": list, "captions": list,
}  # fmt: skip
ITEMS = {
    "actors": {"id": str, "kind": str, "nouns": list},
    "scenes": {"start": NUM, "end": NUM, "background": str},
    "events": {"id": int, "start": NUM, "end": NUM, "action": str, "actors": list, "scene": int, "detail": dict},
    "speakers": {"name": str, "voice": str, "rate": int, "pitch": int},
    "subtitles": {"id": int, "start": NUM, "end": NUM, "speaker": str, "text": str, "kind": str},
    "queries": {"id": int, "text": str, "type": str, "start": NUM, "end": NUM, "source": str, "held_out": bool},
    "qa": {"id": int, "type": str, "question": str, "candidates": list, "answer_idx": int, "start": NUM,
           "end": NUM, "held_out": bool},
    "captions": {"start": NUM, "end": NUM, "text": str, "event": int},
}  # fmt: skip
SUBTITLE_KINDS = {"now", "preview", "recall", "offscreen", "reaction"}
QUERY_TYPES = {"video", "sub", "both"}
QA_TYPES = {"what", "which", "who-said", "when", "before-after", "counting"}


def validate(rec: dict) -> list[str]:
    """Problems found in one episode record (empty list: valid)."""
    errs: list[str] = []
    for k, t in RECORD.items():
        if k not in rec:
            errs.append(f"missing field {k!r}")
        elif not isinstance(rec[k], t) or isinstance(rec[k], bool) and t is not bool:
            errs.append(f"{k}: expected {t}, got {type(rec[k]).__name__}")
    if errs:
        return errs
    for section, fields in ITEMS.items():
        for i, item in enumerate(rec[section]):
            for k, t in fields.items():
                if k not in item:
                    errs.append(f"{section}[{i}]: missing {k!r}")
                elif not isinstance(item[k], t):
                    errs.append(f"{section}[{i}].{k}: expected {t}, got {type(item[k]).__name__}")
    if errs:
        return errs
    dur = rec["duration"]
    if rec["split"] not in SPLITS:
        errs.append(f"unknown split {rec['split']!r}")
    if not 0 < dur:
        errs.append("duration must be positive")
    for section in ("scenes", "events", "subtitles", "queries", "qa", "captions"):
        for i, x in enumerate(rec[section]):
            if not (0 <= x["start"] < x["end"] <= dur + 1e-6):
                errs.append(f"{section}[{i}]: span [{x['start']}, {x['end']}] not inside [0, {dur}]")
    actors = {a["id"] for a in rec["actors"]}
    for e in rec["events"]:
        if e["action"] not in ACTIONS or not set(e["actors"]) <= actors:
            errs.append(f"events[{e['id']}]: unknown action or actor")
    speakers = {s["name"] for s in rec["speakers"]}
    subs = rec["subtitles"]
    for i, s in enumerate(subs):
        if s["speaker"] not in speakers:
            errs.append(f"subtitles[{i}]: unknown speaker {s['speaker']!r}")
        if s["kind"] not in SUBTITLE_KINDS:
            errs.append(f"subtitles[{i}]: unknown kind {s['kind']!r}")
        if i and s["start"] < subs[i - 1]["end"]:
            errs.append(f"subtitles[{i}]: overlaps or precedes the previous line")
    for i, q in enumerate(rec["queries"]):
        if q["type"] not in QUERY_TYPES:
            errs.append(f"queries[{i}]: unknown type {q['type']!r}")
        if any(q["text"].strip().lower() == s["text"].strip().lower() for s in subs):
            errs.append(f"queries[{i}]: copies a subtitle")
    for i, q in enumerate(rec["qa"]):
        c = q["candidates"]
        if q["type"] not in QA_TYPES:
            errs.append(f"qa[{i}]: unknown type {q['type']!r}")
        if len(c) != 5 or len(set(c)) != 5 or not all(isinstance(x, str) and x for x in c):
            errs.append(f"qa[{i}]: needs 5 distinct non-empty candidates")
        if not 0 <= q["answer_idx"] < len(c):
            errs.append(f"qa[{i}]: answer_idx {q['answer_idx']} out of range")
    n_events = len(rec["events"])
    for i, c in enumerate(rec["captions"]):
        if not 0 <= c["event"] < n_events:
            errs.append(f"captions[{i}]: unknown event")
    return errs
