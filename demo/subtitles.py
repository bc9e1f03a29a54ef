"""Timed subtitles: the record, SRT and WebVTT reading/writing, and HERO's subtitle -> frame alignment."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from demo.errors import InputError


@dataclass(frozen=True)
class Subtitle:
    start: float  # seconds
    end: float  # seconds
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


# --- alignment --------------------------------------------------------------------------------------


def align_to_frames(subs: list[Subtitle], n_frames: int, interval: float) -> list[list[int]]:
    """Frames each subtitle overlaps, as HERO pairs them: frame i covers [i*dt, (i+1)*dt).

    Neighbouring subtitles may share a frame; a subtitle shorter than a frame still gets the frame it
    falls in; one that starts after the last frame gets none. Frames with no subtitle simply appear in
    no list (the model still encodes them through the temporal transformer).
    """
    out = []
    for s in subs:
        first = math.floor(s.start / interval)
        last = max(first, math.ceil(s.end / interval) - 1)
        first, last = max(first, 0), min(last, n_frames - 1)
        out.append(list(range(first, last + 1)) if first <= last else [])
    return out


def held(subs: list[Subtitle], seconds: float) -> list[Subtitle]:
    """Each line kept on until the next one starts, at most ``seconds`` past its own end (never shortened;
    the last line gets the full ``seconds``). Whisper's lines end with the speech; the SynthTV lines HERO
    learnt from run on ~1.3 s past it, so the app feeds HERO Whisper's lines held (``HeroConfig.asr_hold_s``)."""
    out = []
    for i, s in enumerate(subs):
        until = s.end + seconds if i + 1 == len(subs) else min(s.end + seconds, subs[i + 1].start)
        out.append(Subtitle(s.start, max(s.end, until), s.text))
    return out


def frame_subtitles(subs: list[Subtitle], n_frames: int, interval: float) -> list[list[int]]:
    """The inverse map: for each frame, the indices of the subtitles that overlap it."""
    out: list[list[int]] = [[] for _ in range(n_frames)]
    for j, frames in enumerate(align_to_frames(subs, n_frames, interval)):
        for i in frames:
            out[i].append(j)
    return out


def text_in_span(subs: list[Subtitle], start: float, end: float) -> str:
    """The subtitle text spoken inside [start, end) (any overlap), in order."""
    return " ".join(s.text for s in subs if s.start < end and s.end > start)


# --- formats ----------------------------------------------------------------------------------------


def format_timestamp(seconds: float, sep: str = ",") -> str:
    """HH:MM:SS,mmm (SRT) or with sep='.' HH:MM:SS.mmm (WebVTT); rounded to the millisecond."""
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(subs: list[Subtitle]) -> str:
    blocks = [
        f"{i}\n{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text.strip()}\n"
        for i, s in enumerate(subs, 1)
    ]
    return "\n".join(blocks)


def to_vtt(subs: list[Subtitle], kind: str | None = None) -> str:
    """WebVTT; `kind="chapters"` gives the same cue format for a chapters track."""
    head = "WEBVTT" + (f" - {kind}" if kind else "") + "\n\n"
    cues = [
        f"{format_timestamp(s.start, '.')} --> {format_timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in subs
    ]
    return head + "\n".join(cues)


_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})$")
_CUE = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)(?:\s.*)?$")
_TAG = re.compile(r"</?[^>]+>")


def parse_timestamp(text: str) -> float:
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"bad timestamp {text!r}")
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_subtitles(text: str, name: str = "subtitles") -> list[Subtitle]:
    """Parse SRT or WebVTT text (detected from the content). Cue tags (<i>, <v Name>) are dropped."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    is_vtt = text.startswith("WEBVTT")
    subs: list[Subtitle] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines or (is_vtt and lines[0].startswith(("WEBVTT", "NOTE", "STYLE", "REGION"))):
            continue
        k = next((i for i, ln in enumerate(lines[:2]) if "-->" in ln), None)
        if k is None:
            raise InputError(
                f"{name}: not a valid SRT/WebVTT file (no 'start --> end' line in block {lines[0]!r})"
            )
        m = _CUE.match(lines[k])
        try:
            start, end = parse_timestamp(m.group(1)), parse_timestamp(m.group(2))  # type: ignore[union-attr]
        except (ValueError, AttributeError):
            raise InputError(f"{name}: not a valid SRT/WebVTT file (bad time line {lines[k]!r})") from None
        if end < start:
            raise InputError(f"{name}: cue ends before it starts ({lines[k]!r})")
        body = " ".join(_TAG.sub("", ln).strip() for ln in lines[k + 1 :]).strip()
        if body:
            subs.append(Subtitle(start, end, body))
    if not subs:
        raise InputError(f"{name}: no subtitle cues found (expected SRT or WebVTT)")
    return sorted(subs, key=lambda s: (s.start, s.end))


def read_subtitles(path: str | Path) -> list[Subtitle]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such subtitle file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (expected an .srt or .vtt file)") from None
    return parse_subtitles(text, str(path))


def subtitles_to_array(subs: list[Subtitle]) -> np.ndarray:
    """(n, 2) float start/end seconds."""
    return np.array([[s.start, s.end] for s in subs], dtype=np.float64).reshape(-1, 2)
