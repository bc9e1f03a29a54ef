"""The timeline strip: relevance curve, subtitle bands, moments, chapters, QA evidence and concept tracks.

`render_timeline` returns plain HTML (positions in percent of the duration, the curve as a stretched SVG)
so it scales with the page. Every band carries `data-t` (and `data-start`/`data-end`): the UI's click
handler seeks the player there; the track itself carries `data-duration` for clicks between bands.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import numpy as np

# Lane names of the concept-track kinds (demo/tracks.py KINDS).
TRACK_LANES = {"object": "Objects", "action": "Actions", "screen_text": "Screen text", "sound": "Sounds"}
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def format_time(seconds: float) -> str:
    """12.3 -> '0:12', 3725 -> '1:02:05' (what a player shows)."""
    s = int(max(seconds, 0.0))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_span(start: float, end: float) -> str:
    """'0:07.6-0:10.2': tenths, since moments are often shorter than a few seconds."""

    def fmt(t: float) -> str:
        return f"{format_time(t)}.{int(round(max(t, 0.0) * 10)) % 10}"

    return f"{fmt(start)}–{fmt(end)}"


def tick_step(duration: float, max_ticks: int = 10) -> int:
    """The smallest 'nice' step (s) that gives at most max_ticks ticks over the duration."""
    return next((s for s in _TICK_STEPS if duration / s <= max_ticks), _TICK_STEPS[-1])


def _pct(t: float, duration: float) -> float:
    return round(100.0 * min(max(t, 0.0), duration) / duration, 3)


def _band(
    start: float, end: float, duration: float, cls: str, label: str, title: str, style: str = ""
) -> str:
    left, right = _pct(start, duration), _pct(end, duration)
    width = max(right - left, 0.4)  # a zero-length span stays visible and clickable
    esc = html.escape
    return (
        f'<div class="tl-band {cls}" data-t="{start:.3f}" data-start="{start:.3f}" data-end="{end:.3f}" '
        f'style="left:{left}%;width:{width}%;{style}" title="{esc(title)}"><span>{esc(label)}</span></div>'
    )


def saliency_path(saliency: Sequence[float], interval: float, duration: float) -> str:
    """SVG path (viewBox 0 0 1000 100) of the per-frame scores in [0, 1], one point per frame centre,
    closed to the baseline so it can be filled."""
    s = np.clip(np.asarray(saliency, dtype=np.float64).reshape(-1), 0.0, 1.0)
    if s.size == 0:
        return ""
    xs = [(i + 0.5) * interval for i in range(s.size)]
    pts = [(1000.0 * min(x, duration) / duration, 100.0 - 96.0 * v) for x, v in zip(xs, s)]
    line = " ".join(f"L{x:.1f},{y:.1f}" for x, y in pts)
    return f"M0,100 L0,{pts[0][1]:.1f} {line} L1000,{pts[-1][1]:.1f} L1000,100 Z"


def _row(name: str, inner: str, cls: str = "") -> str:
    return (
        f'<div class="tl-row {cls}"><div class="tl-label">{html.escape(name)}</div>'
        f'<div class="tl-track">{inner}</div></div>'
    )


def render_timeline(
    duration: float,
    *,
    interval: float = 1.5,
    saliency: Sequence[float] | None = None,
    subtitles: Iterable = (),
    moments: Iterable = (),
    chapters: Iterable = (),
    evidence: tuple[float, float] | None = None,
    tracks: Iterable = (),
    selected: tuple[float, float] | None = None,
) -> str:
    """HTML of the whole strip. subtitles/moments/chapters: objects with .start, .end and .text (moments
    also .score); tracks: ConceptEvents (.kind, .start, .end, .label, .score); evidence and selected:
    (start, end) spans highlighted across every lane. Lanes with nothing to show are left out, except
    Speech, which says so when the video has no subtitles."""
    duration = float(duration) if duration and duration > 0 else 1.0
    rows = []
    if saliency is not None and len(saliency):
        path = saliency_path(saliency, interval, duration)
        rows.append(
            _row(
                "Relevance",
                '<svg class="tl-curve" viewBox="0 0 1000 100" preserveAspectRatio="none">'
                f'<path d="{path}" vector-effect="non-scaling-stroke"/></svg>',
                "tl-relevance",
            )
        )
    moments = list(moments)
    if moments:
        top = max((float(getattr(m, "score", 0.0)) for m in moments), default=1.0) or 1.0
        bands = []
        for rank, m in reversed(list(enumerate(moments, 1))):  # the best drawn last, on top
            score = float(getattr(m, "score", 0.0))
            alpha = 0.35 + 0.65 * max(min(score / top, 1.0), 0.0)
            bands.append(
                _band(
                    m.start,
                    m.end,
                    duration,
                    "tl-moment",
                    f"#{rank}",
                    f"#{rank} {format_span(m.start, m.end)} score {score:.3f}",
                    f"opacity:{alpha:.2f}",
                )
            )
        rows.append(_row("Moments", "".join(bands), "tl-moments"))
    subtitles = list(subtitles)
    speech = "".join(
        _band(s.start, s.end, duration, "tl-sub", s.text, f"{format_span(s.start, s.end)} {s.text}")
        for s in subtitles
    )
    rows.append(_row("Speech", speech or '<span class="tl-empty">no speech</span>', "tl-speech"))
    chapters = list(chapters)
    if chapters:
        rows.append(
            _row(
                "Chapters",
                "".join(
                    _band(
                        c.start,
                        c.end,
                        duration,
                        f"tl-chapter tl-c{i % 2}",
                        c.text,
                        f"{format_span(c.start, c.end)} {c.text}",
                    )
                    for i, c in enumerate(chapters)
                ),
                "tl-chapters",
            )
        )
    by_kind: dict[str, list] = {}
    for ev in tracks:
        by_kind.setdefault(ev.kind, []).append(ev)
    for kind, name in TRACK_LANES.items():
        if by_kind.get(kind):
            bands = "".join(
                _band(
                    e.start,
                    e.end,
                    duration,
                    f"tl-track-{kind}",
                    e.label,
                    f"{format_span(e.start, e.end)} {e.label} ({e.score:.2f})",
                )
                for e in by_kind[kind]
            )
            rows.append(_row(name, bands, f"tl-lane-{kind}"))

    step = tick_step(duration)
    ticks = "".join(
        f'<span class="tl-tick" style="left:{_pct(t, duration)}%">{format_time(t)}</span>'
        for t in range(0, int(duration) + 1, step)
    )
    rows.append(_row("", ticks, "tl-axis"))

    overlays = []
    for span, cls, label in ((selected, "tl-selected", "selected"), (evidence, "tl-evidence", "evidence")):
        if span is not None:
            s, e = float(span[0]), float(span[1])
            left, right = _pct(s, duration), _pct(e, duration)
            overlays.append(
                f'<div class="tl-span {cls}" data-t="{s:.3f}" data-start="{s:.3f}" data-end="{e:.3f}" '
                f'style="left:{left}%;width:{max(right - left, 0.4)}%" '
                f'title="{label} {format_span(s, e)}"><span>{label}</span></div>'
            )
    overlays.append('<div class="tl-playhead" style="left:0%"></div>')
    return (
        f'<div class="tl" data-duration="{duration:.3f}">{"".join(rows)}'
        f'<div class="tl-overlay">{"".join(overlays)}</div></div>'
    )


TIMELINE_CSS = """
.tl { position: relative; font-size: 12px; user-select: none; padding: 4px 0; }
.tl-row { display: flex; align-items: stretch; min-height: 22px; margin: 2px 0; }
.tl-label { flex: 0 0 84px; color: var(--body-text-color-subdued); padding-right: 8px; text-align: right;
  line-height: 22px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tl-track { position: relative; flex: 1 1 auto; background: var(--background-fill-secondary);
  border-radius: 4px; cursor: pointer; overflow: hidden; }
.tl-relevance .tl-track { height: 48px; }
.tl-curve { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
.tl-curve path { fill: rgba(249, 115, 22, 0.25); stroke: #f97316; stroke-width: 1.5; }
.tl-band { position: absolute; top: 2px; bottom: 2px; border-radius: 3px; overflow: hidden;
  white-space: nowrap; text-overflow: ellipsis; padding: 0 4px; line-height: 18px; font-size: 11px;
  box-sizing: border-box; }
.tl-band span { pointer-events: none; }
.tl-band:hover { outline: 2px solid var(--body-text-color); z-index: 3; }
.tl-sub { background: rgba(59, 130, 246, 0.30); color: var(--body-text-color); }
.tl-moment { background: #f97316; color: #fff; font-weight: 600; }
.tl-chapter.tl-c0 { background: rgba(16, 185, 129, 0.35); color: var(--body-text-color); }
.tl-chapter.tl-c1 { background: rgba(16, 185, 129, 0.18); color: var(--body-text-color); }
.tl-track-object { background: rgba(168, 85, 247, 0.30); color: var(--body-text-color); }
.tl-track-action { background: rgba(236, 72, 153, 0.30); color: var(--body-text-color); }
.tl-track-screen_text { background: rgba(234, 179, 8, 0.35); color: var(--body-text-color); }
.tl-track-sound { background: rgba(20, 184, 166, 0.30); color: var(--body-text-color); }
.tl-empty { color: var(--body-text-color-subdued); padding-left: 6px; line-height: 22px; }
.tl-axis .tl-track { background: transparent; height: 16px; overflow: visible; }
.tl-tick { position: absolute; top: 0; transform: translateX(-50%); color: var(--body-text-color-subdued);
  font-size: 10px; white-space: nowrap; }
.tl-tick:first-child { transform: none; }
.tl-overlay { position: absolute; top: 0; bottom: 18px; left: 84px; right: 0; pointer-events: none; }
.tl-span { position: absolute; top: 0; bottom: 0; pointer-events: none; border-radius: 3px; }
.tl-span span { position: absolute; top: -1px; left: 2px; font-size: 10px; font-weight: 600; }
.tl-evidence { background: rgba(34, 197, 94, 0.18); border: 2px solid #22c55e; }
.tl-evidence span { color: #16a34a; }
.tl-selected { background: rgba(249, 115, 22, 0.10); border: 2px dashed #f97316; }
.tl-selected span { color: #ea580c; top: auto; bottom: -1px; }
.tl-playhead { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #ef4444; }
"""
