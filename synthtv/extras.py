"""Opt-in SynthTV extras: signs drawn into the frames and real sound effects mixed into the audio, each with
gold moment queries that need the app's screen-text or sound track to be found.

Off by default (`generate(..., extras=True)`, CLI `--extras`): episodes made without it stay byte-identical.
The extras draw from their own random stream, seeded by (split, seed, EXTRAS_VERSION), never from the
episode's, and are added to the record as `extras` plus queries of type `screen_text` and `sound`.
The sound effects are the real recordings that the pygame wheel ships (read as files, never imported).
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from synthtv.world import SPLIT_BASE

EXTRAS_VERSION = "extras-1"
SIGN_WORDS = ("BAKERY", "MUSEUM", "PHARMACY", "HOTEL", "LIBRARY", "GARAGE", "STATION", "THEATRE", "CINEMA")
SIGN_QUERIES = ("When the sign says {w}.", "The sign that reads {w}.", "A sign with the word {w} on it.")
SIGN_COLOURS = ((20, 90, 50), (25, 45, 120), (120, 25, 25), (30, 30, 30))  # board RGB; text is white
# name -> (pygame example file, times played, pause between plays in s, longest span in s, queries).
# Chosen so YAMNet names them over eSpeak speech (measured: "Explosion" 14/17 offsets for three booms,
# "Whoosh, swoosh, swish" 16/17 for four punches, "Music" 17/17); car_door.wav is only "Sound effect".
SOUNDS = {
    "explosions": ("boom.wav", 3, 0.15, 5.0, ("When explosions are heard.", "The sound of an explosion.")),
    "whoosh": ("punch.wav", 4, 0.25, 5.0, ("When whooshing sounds are heard.", "The swishing noises.")),
    "music": ("house_lo.ogg", 1, 0.0, 5.0, ("When music is playing.", "The part with music.")),
}
SAMPLE_RATE = 16_000
EFFECT_GAIN = 0.8  # effect peak relative to the speech track's peak (0.9), before the mix is re-normalised


@dataclass(frozen=True)
class Sign:
    text: str
    start: float
    end: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 of the board, normalised to the frame
    colour: tuple[int, int, int]


def _rng(split: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(EXTRAS_VERSION.encode()), SPLIT_BASE[split] + seed])


def _place(
    rng: np.random.Generator, n: int, lengths: list[float], duration: float, gap: float
) -> list[float]:
    """Start times for n spans of the given lengths inside [1, duration - 1], at least `gap` s apart."""
    for _ in range(200):
        starts = [float(np.round(rng.uniform(1.0, duration - 1.0 - ln), 2)) for ln in lengths[:n]]
        spans = sorted(zip(starts, [s + ln for s, ln in zip(starts, lengths)]))
        if all(b[0] - a[1] >= gap for a, b in zip(spans, spans[1:])):
            return starts
    raise ValueError(f"cannot place {n} spans in {duration} s")


def add_extras(record: dict) -> dict:
    """Add two signs, two sound effects and their queries to an episode record (in place); returns the
    `extras` dict. Query types: `screen_text` (needs the sign read) and `sound` (needs the effect heard)."""
    rng = _rng(record["split"], record["seed"])
    dur = float(record["duration"])
    words = [str(w) for w in rng.choice(SIGN_WORDS, size=2, replace=False)]
    sign_len = [float(rng.choice([4.5, 6.0, 7.5])) for _ in words]
    sign_start = _place(rng, 2, sign_len, dur, gap=4.5)
    signs = []
    for w, s, ln in zip(words, sign_start, sign_len):
        x1 = float(rng.choice([0.04, 0.52]))
        signs.append({"text": w, "start": s, "end": round(s + ln, 2), "box": [x1, 0.05, x1 + 0.44, 0.25],
                      "colour": list(SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))])})  # fmt: skip
    names = [str(n) for n in rng.choice(sorted(SOUNDS), size=2, replace=False)]
    lengths = [effect_seconds(n) for n in names]
    sounds = [
        {"name": n, "file": SOUNDS[n][0], "start": s, "end": round(s + ln, 2)}
        for n, s, ln in zip(names, _place(rng, 2, lengths, dur, gap=3.0), lengths)
    ]
    queries = record.setdefault("queries", [])
    for sign in signs:
        text = str(rng.choice(SIGN_QUERIES)).format(w=sign["text"].lower())
        queries.append(_query(len(queries), text, "screen_text", sign, "sign"))
    for snd in sounds:
        text = str(rng.choice(SOUNDS[snd["name"]][4]))
        queries.append(_query(len(queries), text, "sound", snd, snd["name"]))
    record["extras"] = {"version": EXTRAS_VERSION, "signs": signs, "sounds": sounds}
    return record["extras"]


def _query(i: int, text: str, qtype: str, span: dict, source: str) -> dict:
    return {"text": text, "type": qtype, "start": span["start"], "end": span["end"], "source": source,
            "held_out": False, "id": i}  # fmt: skip


# --- drawing ------------------------------------------------------------------------------------------


def signs_of(extras: dict) -> list[Sign]:
    return [
        Sign(s["text"], s["start"], s["end"], tuple(s["box"]), tuple(s["colour"])) for s in extras["signs"]
    ]


def draw_signs(frame: np.ndarray, t: float, signs: Iterable[Sign]) -> np.ndarray:
    """The frame (RGB uint8, drawn on in place) with every sign shown at time t: a coloured board with a
    white border and its word in large white capitals, sized to the frame."""
    h, w = frame.shape[:2]
    for s in signs:
        if not s.start <= t < s.end:
            continue
        x1, y1, x2, y2 = (round(v * d) for v, d in zip(s.box, (w, h, w, h)))
        cv2.rectangle(frame, (x1, y1), (x2, y2), s.colour, -1)
        border = max(1, round(h / 90))
        cv2.rectangle(frame, (x1, y1), (x2, y2), (255, 255, 255), border)
        font, thick = cv2.FONT_HERSHEY_DUPLEX, max(1, round(h / 130))
        (tw, th), _ = cv2.getTextSize(s.text, font, 1.0, thick)
        scale = min(0.8 * (x2 - x1) / tw, 0.55 * (y2 - y1) / th)
        (tw, th), _ = cv2.getTextSize(s.text, font, scale, thick)
        org = (x1 + (x2 - x1 - tw) // 2, y1 + (y2 - y1 + th) // 2)
        cv2.putText(frame, s.text, org, font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return frame


def draw_frames(frames: np.ndarray, times: Iterable[float], extras: dict) -> np.ndarray:
    """Sampled frames (N, H, W, 3) at `times` with the signs drawn in (a copy)."""
    signs = signs_of(extras)
    return np.stack([draw_signs(f.copy(), float(t), signs) for f, t in zip(frames, times)])


def draw_video(frames: Iterable[np.ndarray], fps: float, extras: dict) -> Iterator[np.ndarray]:
    """Video frame k (time k / fps) with the signs drawn in."""
    signs = signs_of(extras)
    for k, frame in enumerate(frames):
        yield draw_signs(frame, k / fps, signs)


# --- sound --------------------------------------------------------------------------------------------


def pygame_data_dir() -> Path:
    spec = importlib.util.find_spec("pygame")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pygame is not installed (its example sounds are the sound effects)")
    return Path(list(spec.submodule_search_locations)[0]) / "examples" / "data"


@cache
def load_sound(name: str) -> np.ndarray:
    """A pygame example sound as float32 mono at 16 kHz, peak 1 (PyAV decodes its ADPCM/ogg files)."""
    import av

    out = []
    with av.open(str(pygame_data_dir() / name)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in c.decode(audio=0):
            out += [f.to_ndarray()[0] for f in res.resample(frame)]
        out += [f.to_ndarray()[0] for f in res.resample(None)]
    x = np.concatenate(out).astype(np.float32)
    return x / max(float(np.abs(x).max()), 1e-6)


def effect(name: str) -> np.ndarray:
    """The effect as mixed: the sound played `times` times with pauses, cut to its longest span."""
    file, times, pause, longest, _ = SOUNDS[name]
    x = load_sound(file)
    one = np.concatenate([x, np.zeros(int(pause * SAMPLE_RATE), np.float32)])
    return np.tile(one, times)[: int(longest * SAMPLE_RATE)]


def effect_seconds(name: str) -> float:
    return round(len(effect(name)) / SAMPLE_RATE, 2)


def mix_sounds(audio: np.ndarray, extras: dict, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The speech track with each effect added at its start, re-normalised to a 0.9 peak."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"effects are mixed at {SAMPLE_RATE} Hz, got {sample_rate}")
    out = np.asarray(audio, np.float32).copy()
    ref = max(float(np.abs(out).max()), 0.1)
    for s in extras["sounds"]:
        x = effect(s["name"]) * EFFECT_GAIN * ref
        i = int(round(s["start"] * sample_rate))
        n = max(0, min(len(x), len(out) - i))
        out[i : i + n] += x[:n]
    peak = float(np.abs(out).max())
    return out * (0.9 / peak) if peak > 0 else out
