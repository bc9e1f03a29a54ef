"""HTML fragments the UI shows besides the timeline: transcript, moment cards, the answer, chapters and the
library. Pure functions of service results; anything clickable carries `data-t` (seconds) for the seek
handler, and moments also `data-start`/`data-end` (and `data-video` in the library)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import quote

from demo.timeline import format_span, format_time

esc = html.escape


def note(text: str, kind: str = "info") -> str:
    """A one-line plain note (empty states, 'not available yet')."""
    return f'<div class="hv-note hv-{kind}">{esc(text)}</div>'


def transcript_html(subtitles: Sequence, source: str = "") -> str:
    """One clickable line per subtitle; the UI's timer marks the line being spoken."""
    if not subtitles:
        return note("No speech in this video (no audio track, or Whisper heard nothing).")
    lines = "".join(
        f'<div class="hv-line" data-t="{s.start:.3f}" data-start="{s.start:.3f}" data-end="{s.end:.3f}">'
        f'<span class="hv-ts">{format_time(s.start)}</span><span>{esc(s.text)}</span></div>'
        for s in subtitles
    )
    src = f'<div class="hv-sub">{esc(source)}</div>' if source else ""
    return f'<div class="hv-transcript">{src}{lines}</div>'


def _score_bar(value: float, top: float) -> str:
    pct = 0 if top <= 0 else round(100 * max(min(value / top, 1.0), 0.0))
    return f'<span class="hv-bar"><span style="width:{pct}%"></span></span>'


def moments_html(moments: Sequence, thumbs: Sequence[str | None], texts: Sequence[str], query: str) -> str:
    """Ranked moment cards: rank, span, score, thumbnail and the subtitle text inside."""
    if not moments:
        return note(f"No moment found for “{query}”.")
    top = max(float(m.score) for m in moments) or 1.0
    cards = []
    for rank, (m, thumb, text) in enumerate(zip(moments, thumbs, texts), 1):
        img = f'<img src="{thumb}" alt="">' if thumb else '<div class="hv-noimg"></div>'
        cards.append(
            f'<div class="hv-card hv-moment" data-t="{m.start:.3f}" data-start="{m.start:.3f}" '
            f'data-end="{m.end:.3f}" title="Play from {format_time(m.start)}">{img}<div class="hv-body">'
            f'<div class="hv-head"><b>#{rank}</b> <span class="hv-span">{format_span(m.start, m.end)}</span>'
            f' <span class="hv-score">{float(m.score):.3f}</span>{_score_bar(float(m.score), top)}</div>'
            f'<div class="hv-text">{esc(text) or "<i>no speech</i>"}</div></div></div>'
        )
    return f'<div class="hv-cards">{"".join(cards)}</div>'


def answer_html(answer) -> str:
    """The answer, its confidence, every candidate's probability, and a jump to the evidence."""
    probs = [float(p) for p in answer.scores]
    conf = probs[answer.answer_index] if probs else 0.0
    rows = "".join(
        f'<div class="hv-cand{" hv-best" if i == answer.answer_index else ""}">'
        f"<span>{esc(c)}</span>{_score_bar(p, 1.0)}<span>{100 * p:.0f}%</span></div>"
        for i, (c, p) in enumerate(zip(answer.candidates, probs))
    )
    s, e = answer.evidence
    proposed = (
        note(
            "You gave no candidate answers, so they were proposed from the video itself "
            "(its subtitles, recognised objects and captions)."
        )
        if answer.candidates_source == "proposed"
        else ""
    )
    return (
        f'<div class="hv-answer"><div class="hv-big">{esc(str(answer.answer))}</div>'
        f'<div class="hv-conf">confidence {100 * conf:.0f}%</div>'
        f'<button class="hv-jump" data-t="{s:.3f}" data-evidence="{s:.3f}-{e:.3f}">'
        f"▶ Jump to the evidence {format_span(s, e)}</button>"
        f"{proposed}<div class=hv-cands>{rows}</div></div>"
    )


def chapters_html(captions: Sequence) -> str:
    if not captions:
        return note("No chapters: the video is too short or has no content to caption.")
    rows = "".join(
        f'<div class="hv-line" data-t="{c.start:.3f}" data-start="{c.start:.3f}" data-end="{c.end:.3f}">'
        f'<span class="hv-ts">{format_span(c.start, c.end)}</span><span>{esc(c.text)}</span></div>'
        for c in captions
    )
    return f'<div class="hv-transcript">{rows}</div>'


def media_url(path: str | None) -> str | None:
    """The URL Gradio serves a file under (the library's media folder is an allowed path)."""
    return f"/gradio_api/file={quote(str(path))}" if path else None


def library_html(records: Sequence, current: str | None = None) -> str:
    """One row per ingested video; click loads it into the player."""
    if not records:
        return note("The library is empty: upload a video to add it.")
    rows = "".join(
        f'<div class="hv-line hv-video{" hv-current" if r.video_id == current else ""}" data-video="{r.video_id}"'
        f' data-t="0"><span class="hv-ts">{format_time(r.meta.duration)}</span>'
        f"<span><b>{esc(r.source_name)}</b> · {len(r.subtitles)} subtitles · {r.n_frames} frames"
        f" · <code>{r.video_id}</code></span></div>"
        for r in records
    )
    return f'<div class="hv-transcript">{rows}</div>'


def library_results_html(groups: Sequence[tuple[object, Sequence]], query: str) -> str:
    """Search results across the library, grouped by video: a small player per video (serving the
    library's copy) and one chip per moment that plays it there."""
    if not groups:
        return note(f"No moment found for “{query}” in the library.")
    out = []
    for rec, moments in groups:
        url = media_url(rec.media_path)
        player = f'<video class="hv-mini" src="{url}" controls preload="metadata"></video>' if url else ""
        chips = "".join(
            f'<button class="hv-chip" data-t="{m.start:.3f}" data-start="{m.start:.3f}" data-end="{m.end:.3f}"'
            f' data-video="{rec.video_id}" title="{esc(getattr(m, "text", "") or "")}">'
            f"{format_span(m.start, m.end)} · {float(m.score):.2f}</button>"
            for m in moments
        )
        out.append(
            f'<div class="hv-group" data-video="{rec.video_id}">{player}<div class="hv-body">'
            f'<div class="hv-head"><b>{esc(rec.source_name)}</b> <code>{rec.video_id}</code></div>'
            f'<div class="hv-chips">{chips}</div>'
            f'<button class="hv-open" data-video="{rec.video_id}" data-t="{moments[0].start:.3f}">'
            "Open in the main player</button></div></div>"
        )
    return "".join(out)


VIEWS_CSS = """
.hv-note { padding: 8px 10px; border-radius: 6px; background: var(--background-fill-secondary);
  color: var(--body-text-color-subdued); margin: 4px 0; }
.hv-warn { border-left: 3px solid #f59e0b; }
.hv-transcript { max-height: 340px; overflow-y: auto; }
.hv-sub { color: var(--body-text-color-subdued); font-size: 12px; margin-bottom: 4px; }
.hv-line { display: flex; gap: 10px; padding: 4px 6px; border-radius: 4px; cursor: pointer; }
.hv-line:hover, .hv-card:hover, .hv-group:hover { background: var(--background-fill-secondary); }
.hv-line.hv-active { background: rgba(59, 130, 246, 0.18); }
.hv-current { border-left: 3px solid #f97316; }
.hv-ts { color: #3b82f6; font-variant-numeric: tabular-nums; white-space: nowrap; min-width: 44px; }
.hv-cards { display: flex; flex-direction: column; gap: 6px; max-height: 520px; overflow-y: auto; }
.hv-card { display: flex; gap: 10px; padding: 6px; border: 1px solid var(--border-color-primary);
  border-radius: 8px; cursor: pointer; }
.hv-card img, .hv-noimg { width: 128px; height: 72px; object-fit: cover; border-radius: 4px; flex: none;
  background: var(--background-fill-secondary); }
.hv-body { flex: 1; min-width: 0; }
.hv-head { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.hv-span { font-variant-numeric: tabular-nums; color: #3b82f6; }
.hv-score { font-variant-numeric: tabular-nums; color: var(--body-text-color-subdued); }
.hv-bar { display: inline-block; width: 80px; height: 6px; border-radius: 3px;
  background: var(--background-fill-secondary); overflow: hidden; vertical-align: middle; }
.hv-bar span { display: block; height: 100%; background: #f97316; }
.hv-text { margin-top: 4px; font-size: 13px; }
.hv-answer .hv-big { font-size: 22px; font-weight: 700; }
.hv-conf { color: var(--body-text-color-subdued); margin-bottom: 6px; }
.hv-jump, .hv-open, .hv-chip { cursor: pointer; border-radius: 6px; padding: 4px 10px; margin: 4px 4px 4px 0;
  border: 1px solid #22c55e; background: rgba(34, 197, 94, 0.12); color: var(--body-text-color); }
.hv-chip { border-color: #f97316; background: rgba(249, 115, 22, 0.12); }
.hv-cand { display: grid; grid-template-columns: 1fr 90px 40px; gap: 8px; align-items: center; padding: 2px 4px; }
.hv-best { font-weight: 700; }
.hv-group { display: flex; gap: 12px; padding: 8px; border: 1px solid var(--border-color-primary);
  border-radius: 8px; margin-bottom: 8px; }
.hv-mini { width: 280px; max-width: 45%; border-radius: 6px; background: #000; }
"""
