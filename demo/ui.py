"""The Gradio app: layout and event wiring only. Every result comes from a demo/ service (pipeline,
search, qa, captions, library); this file turns their records into components and their errors into
one-line messages. Per-user state (the current video, its last results) lives in gr.State."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

import gradio as gr

from demo import views
from demo.errors import InputError
from demo.library import Library, VideoRecord
from demo.subtitles import text_in_span, to_srt, to_vtt
from demo.timeline import TIMELINE_CSS, TRACK_LANES, format_span, render_timeline

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "sample.mp4"
VIDEO_TYPES = (".mp4", ".webm", ".mkv", ".mov", ".avi")
SUBTITLE_TYPES = (".srt", ".vtt")
MAX_UPLOAD_MB = float(os.environ.get("HEROVID_MAX_UPLOAD_MB", "500"))
MAX_MINUTES = float(os.environ.get("HEROVID_MAX_MINUTES", "30"))
# HERO checkpoint for search and QA (dir or hub repo id); default: the one shipped in assets/hero-mini.
CHECKPOINT_ENV = "HEROVID_CHECKPOINT"
# Model work (ingest, search, QA, captions) at once; the rest of the UI stays responsive meanwhile.
GPU_CONCURRENCY = int(os.environ.get("HEROVID_GPU_CONCURRENCY", "1"))

try:  # Hugging Face ZeroGPU: a GPU is attached only while a decorated function runs
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(fn=None, **_kwargs):
        """No-op stand-in for spaces.GPU off Spaces."""
        return fn if fn is not None else (lambda f: f)


# --- services ------------------------------------------------------------------------------------------

_SERVICE_NAMES = {"search": "Moment search", "qa": "Question answering", "captions": "Captioning"}


def service(name: str) -> ModuleType | None:
    """demo.<name> if it is part of this build, else None (the tab then says it is not available)."""
    try:
        return importlib.import_module(f"demo.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"demo.{name}":
            return None
        raise


def require(name: str) -> ModuleType:
    mod = service(name)
    if mod is None:
        raise gr.Error(f"{_SERVICE_NAMES[name]} is not available in this build yet.", print_exception=False)
    return mod


@dataclasses.dataclass(frozen=True)
class Hero:
    """The HERO checkpoint that searches and answers in this app (engine None: the text matcher)."""

    engine: object | None
    name: str  # as the user named it, for the page

    @classmethod
    def load(cls, checkpoint: str | None) -> Hero:
        """`checkpoint` (dir or hub repo id; None: the shipped one, if any), loaded once per process; a
        checkpoint that cannot be loaded stops the app with its one line (InputError)."""
        mod = service("engine")
        engine = mod.load_engine(checkpoint) if mod is not None else None
        if engine is None:
            return cls(None, "")
        path = Path(engine.path)
        return cls(engine, checkpoint or str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))

    def label(self) -> str:
        if self.engine is None:
            return f"a text matcher (no HERO checkpoint: set {CHECKPOINT_ENV} or --checkpoint)"
        return f"HERO ({self.name})"

    def note(self, task: str, method: str | None, hero_weight: float | None = None) -> str:
        """A plain line saying which model made a result (the services report `method`, and HERO's
        share where it was fused with the text matcher)."""
        if not method:
            return ""
        why = (
            "no HERO checkpoint is loaded"
            if self.engine is None
            else f"the HERO checkpoint {self.name} has no {'search' if task == 'search' else 'QA'} head"
        )
        if method == "hero+text":
            verb = "Ranked by HERO" if task == "search" else "Answered by HERO's QA head"
            text = f"{verb} ({self.name}), fused with subtitle and concept matching"
            if hero_weight is not None:
                text += f"; HERO's share {hero_weight:.0%}"
                if hero_weight == 0:
                    text += " (it does not recognise this query in this video)"
            text += "."
        elif method == "text":
            verb = "Ranked" if task == "search" else "Answered"
            text = f"{verb} by a text matcher over the subtitles and recognised concepts: {why}."
        else:
            text = f"Method: {method}"
        return views.note(text)


def call_service(fn, *args, engine=None, **kwargs):
    """fn(*args, **kwargs), passing the HERO engine when the service takes one."""
    if "engine" in inspect.signature(fn).parameters:
        kwargs["engine"] = engine
    return fn(*args, **kwargs)


def device_label() -> str:
    from demo.features import resolve_device

    dev = resolve_device("auto")
    if dev.type == "cuda":
        import torch

        return f"GPU ({torch.cuda.get_device_name(0)}, bf16)"
    return f"CPU ({os.cpu_count()} cores)"


TRACK_CHOICES = [(name, kind) for kind, name in TRACK_LANES.items()]  # the timeline's lane names


def default_tracks() -> tuple[str, ...]:
    """The concept tracks ingest computes by default on this machine (demo.perception.stage)."""
    from demo.features import resolve_device
    from demo.perception.stage import resolve_kinds

    return resolve_kinds(None, resolve_device("auto").type == "cuda")


def plain(message: str) -> str:
    """A service's message as a user reads it: an upload named by its file name, not Gradio's temp path,
    and no errno codes."""
    uploads = re.escape(gr.utils.get_upload_folder())
    message = re.sub(uploads + r"/[^/\s'\"]+/", "", message)
    message = re.sub(r"\[Errno -?\d+\] ", "", message)
    return re.sub(r"(:\s*'[^']*')+\)", ")", message)  # "...input: 'x.mp4')" names the file twice


def user_errors(fn):
    """Bad input -> gr.Error with its one line; anything else -> logged with its traceback, shown as one
    line naming the action. Never a stack trace in the page."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except InputError as e:
            raise gr.Error(plain(str(e)), print_exception=False) from None
        except Exception as e:
            log.exception("%s failed", fn.__name__)
            first = plain((str(e).strip().splitlines() or [type(e).__name__])[0])[:200]
            action = fn.__name__.removeprefix("on_").replace("_", " ")
            raise gr.Error(f"{action} failed: {first}", print_exception=False) from None

    return wrapper


def check_upload(path: Path) -> None:
    """Type and size of an uploaded video, before any decoding."""
    if path.suffix.lower() not in VIDEO_TYPES:
        raise InputError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'}; upload {', '.join(VIDEO_TYPES)}"
        )
    size_mb = path.stat().st_size / 2**20
    if size_mb > MAX_UPLOAD_MB:
        size = f"{size_mb:.0f}" if size_mb >= 10 else f"{size_mb:.1f}"
        raise InputError(f"{path.name}: {size} MB is over the {MAX_UPLOAD_MB:g} MB upload limit")


def check_duration(path: Path, duration: float) -> None:
    if duration > MAX_MINUTES * 60:
        raise InputError(
            f"{path.name}: {duration / 60:.1f} min is over the {MAX_MINUTES:g} min limit of this app"
        )


def subtitles_origin(rec: VideoRecord) -> str:
    """Where the transcript came from, in words ("whisper:base" -> "Whisper base")."""
    kind, _, rest = rec.subtitles_source.partition(":")
    if kind == "whisper":
        return f"Whisper {rest.replace(':', ', ')}".strip()
    if kind == "file":
        return f"from {rest.rsplit(':', 1)[0]}"
    return {"none": "no audio track"}.get(kind, rec.subtitles_source)


def new_session() -> dict:
    """One user's view: the current video and its latest results (plain data, copied per session)."""
    return {
        "video_id": None,
        "saliency": None,
        "moments": [],
        "chapters": [],
        "evidence": None,
        "selected": None,
    }


class Exports:
    """Files offered for download, each in a fresh folder under the system temp dir (Gradio serves it)."""

    def __init__(self):
        self.root = Path(tempfile.gettempdir()) / "herovid-exports"

    def write(self, name: str, text: str) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.root))
        path = folder / name
        path.write_text(text, encoding="utf-8")
        return str(path)


def _ns(items: list[dict]) -> list[SimpleNamespace]:
    return [SimpleNamespace(**d) for d in items]


def record_tracks(rec: VideoRecord) -> list:
    """The record's concept tracks (demo/tracks.py layout under info['tracks']), or none."""
    data = rec.info.get("tracks")
    if not data:
        return []
    from demo.tracks import tracks_from_json

    try:
        return tracks_from_json(data)
    except (ValueError, KeyError, TypeError) as e:
        log.warning("%s: concept tracks unusable (%s)", rec.video_id, e)
        return []


@contextlib.contextmanager
def examples_cache(data_root: Path, outputs: list):
    """Gradio's example cache inside the library's folder (unless GRADIO_EXAMPLES_CACHE says where),
    one folder per layout of the cached outputs, so a cache written by another version is never read."""
    layout = hashlib.sha1(" ".join(type(c).__name__ for c in outputs).encode()).hexdigest()[:8]
    old = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(Path(old or data_root / "gradio-examples") / layout)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GRADIO_EXAMPLES_CACHE", None)
        else:
            os.environ["GRADIO_EXAMPLES_CACHE"] = old


# --- the app -------------------------------------------------------------------------------------------

CLICK_JS = """
const seek = (t) => {
  const v = document.querySelector('#player video');
  if (!v || !isFinite(t)) return;
  v.currentTime = t;
  v.play().catch(() => {});
};
element.addEventListener('click', (ev) => {
  const el = ev.target.closest('[data-t], [data-video]');
  if (el && el.dataset.video && !el.classList.contains('hv-chip')) {
    trigger('click', {video_id: el.dataset.video, t: parseFloat(el.dataset.t || '0')});
    return;
  }
  const group = el && el.closest('.hv-group');
  if (group) {
    const v = group.querySelector('video');
    if (v) { v.currentTime = parseFloat(el.dataset.t); v.play().catch(() => {}); }
    return;
  }
  let t = el ? parseFloat(el.dataset.t) : NaN;
  if (!el) {
    const track = ev.target.closest('.tl-track');
    const tl = ev.target.closest('.tl');
    if (track && tl) {
      const r = track.getBoundingClientRect();
      t = (ev.clientX - r.left) / r.width * parseFloat(tl.dataset.duration);
    }
  }
  seek(t);
  if (el && el.dataset.end) {
    trigger('click', {start: parseFloat(el.dataset.start), end: parseFloat(el.dataset.end)});
  }
});
"""

# The playhead on the timeline and the line being spoken in the transcript follow the player.
PLAYHEAD_JS = (
    CLICK_JS
    + """
if (!window.herovidTimer) {
  window.herovidTimer = setInterval(() => {
    const v = document.querySelector('#player video');
    if (!v) return;
    const t = v.currentTime;
    document.querySelectorAll('.tl').forEach((tl) => {
      const ph = tl.querySelector('.tl-playhead');
      const d = parseFloat(tl.dataset.duration);
      if (ph && d > 0) ph.style.left = (100 * Math.min(t / d, 1)) + '%';
    });
    document.querySelectorAll('.hv-said').forEach((line) => {
      const on = t >= parseFloat(line.dataset.start) && t < parseFloat(line.dataset.end);
      line.classList.toggle('hv-active', on);
    });
  }, 250);
}
"""
)

APP_CSS = (
    TIMELINE_CSS
    + views.VIEWS_CSS
    + """
.hv-title h1 { margin-bottom: 0; }
.hv-small { font-size: 12px; color: var(--body-text-color-subdued); }
#player video { max-height: 420px; }
"""
)


def build_app(data_dir: str | Path | None = None, checkpoint: str | None = None) -> gr.Blocks:
    """The whole UI over the library in data_dir (default: $HEROVID_DATA or the user cache dir), searching
    and answering with the HERO `checkpoint` (default: $HEROVID_CHECKPOINT, else the shipped one if any)."""
    library = Library(data_dir)
    checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV) or None
    hero = Hero.load(checkpoint)
    exports = Exports()
    cache: dict[str, tuple[float, VideoRecord]] = {}  # shared read cache; records are replaced whole

    def get_record(video_id: str | None) -> VideoRecord:
        if not video_id:
            raise gr.Error("Upload a video first (or pick one in the Library tab).", print_exception=False)
        path = library.record_path(video_id)
        mtime = path.stat().st_mtime if path.is_file() else -1.0
        hit = cache.get(video_id)
        if hit and hit[0] == mtime:
            return hit[1]
        rec = library.get(video_id)
        if rec is None:
            raise gr.Error("This video is no longer in the library; upload it again.", print_exception=False)
        if len(cache) > 16:
            cache.clear()
        cache[video_id] = (mtime, rec)
        return rec

    def timeline(rec: VideoRecord, sess: dict) -> str:
        return render_timeline(
            rec.meta.duration,
            interval=rec.frame_interval,
            saliency=sess["saliency"],
            subtitles=rec.subtitles,
            moments=_ns(sess["moments"]),
            chapters=_ns(sess["chapters"]),
            evidence=sess["evidence"],
            selected=sess["selected"],
            tracks=record_tracks(rec),
        )

    def media(rec: VideoRecord, progress=None) -> str | None:
        """The library's copy of the video, or its browser-playable transcode."""
        from demo.playable import playable_copy

        if not rec.media_path or not Path(rec.media_path).is_file():
            return None
        return str(playable_copy(rec.media_path, rec.video_id, library.media_dir, progress))

    def player(rec: VideoRecord, t: float = 0.0):
        subs = (
            exports.write(f"{Path(rec.source_name).stem}.vtt", to_vtt(rec.subtitles))
            if rec.subtitles
            else None
        )
        return gr.update(value=media(rec), subtitles=subs, playback_position=float(t))

    def details(rec: VideoRecord) -> dict:
        s = rec.summary()
        s.pop("concepts", None)
        s["n_subtitles"] = len(s.pop("subtitles"))
        return s

    def show(rec: VideoRecord, sess: dict, t: float = 0.0) -> tuple:
        """Everything that changes when a video is opened (order: show_outputs)."""
        stem = Path(rec.source_name).stem
        n = len(rec.subtitles)
        return (
            player(rec, t),
            details(rec),
            views.transcript_html(
                rec.subtitles, f"{n} line{'s' * (n != 1)} · {subtitles_origin(rec)}"
            ).replace('class="hv-line"', 'class="hv-line hv-said"'),
            timeline(rec, sess),
            exports.write(f"{stem}.srt", to_srt(rec.subtitles)),
            exports.write(f"{stem}.vtt", to_vtt(rec.subtitles)),
            views.note("Search this video to see its moments here."),
            views.note("Ask a question to see the answer here."),
            views.note("Caption the video to see its chapters here."),
            sess,
            library_view(rec.video_id),
            gr.update(choices=library_choices(), value=rec.video_id),
        )

    def library_choices() -> list[tuple[str, str]]:
        return [(f"{r.source_name} · {r.video_id}", r.video_id) for r in library.records(arrays=False)]

    def library_view(current: str | None = None) -> str:
        return views.library_html(library.records(arrays=False), current)

    # --- handlers --------------------------------------------------------------------------------------

    @gpu(duration=120)
    @user_errors
    def on_ingest(video, subtitles, sess, tracks=None, progress=gr.Progress()):
        """tracks: the concept-track kinds to recognise (None: the defaults for this device; [] none)."""
        from demo.pipeline import IngestOptions, ingest
        from demo.video import probe

        if not video:
            raise InputError("Upload a video first (mp4, webm, mkv, mov or avi).")
        path = Path(video)
        check_upload(path)
        if subtitles and Path(subtitles).suffix.lower() not in SUBTITLE_TYPES:
            raise InputError(f"{Path(subtitles).name}: subtitles must be an .srt or .vtt file")
        progress(0.0, desc="reading video")
        check_duration(path, probe(path).duration)
        rec = ingest(
            path,
            subtitles or None,
            library,
            IngestOptions(
                device="auto",
                checkpoint=checkpoint,
                tracks=None if tracks is None else (tuple(tracks) or ("none",)),
            ),
            progress=lambda f, stage: progress(f, desc=stage),
        )
        media(rec, lambda f: progress(f, desc="making a browser-playable copy"))
        return show(rec, new_session() | {"video_id": rec.video_id})

    def on_subtitles(video, subtitles, sess, tracks=None, progress=gr.Progress()):
        """Subtitles added after the video: process the video again with them (no Whisper)."""
        if not video:
            gr.Info("Subtitles ready: now upload the video they belong to.")
            return (gr.skip(),) * len(show_outputs)
        return on_ingest(video, subtitles, sess, tracks, progress)

    def on_example(video, progress=gr.Progress()):
        """The sample through ingest, as plain values only (details, transcript, timeline, SRT, VTT):
        Gradio's example cache stores these once for all users; on_example_open adds the player and
        the session."""
        return on_ingest(video, None, new_session(), None, progress)[1:6]

    @user_errors
    def on_example_open(details, sess, progress=gr.Progress()):
        """After the (cached) example: open its record with the player and a fresh session. Ingest the
        sample again when the record is gone (removed from the library, or a cache from elsewhere)."""
        vid = details.get("video_id") if isinstance(details, dict) else None
        rec = library.get(vid) if vid else None
        if rec is None:
            return on_ingest(str(SAMPLE), None, sess, None, progress)
        return show(rec, new_session() | {"video_id": rec.video_id})

    @gpu(duration=60)
    @user_errors
    def on_search(query, top_k, min_len, max_len, sess, progress=gr.Progress()):
        search = require("search")
        rec = get_record(sess["video_id"])
        query = (query or "").strip()
        if not query:
            raise InputError("Type what you are looking for, e.g. “a cat looks at the camera”.")
        if min_len and max_len and min_len > max_len:
            raise InputError(f"shortest span {min_len} s is longer than the longest {max_len} s")
        progress(0.2, desc="searching moments")
        res = call_service(
            search.search_moments,
            rec,
            query,
            top_k=int(top_k),
            min_len=min_len or None,
            max_len=max_len or None,
            engine=hero.engine,
        )
        progress(0.8, desc="thumbnails")
        from demo.thumbs import thumbnails

        moments = list(res.moments)
        texts = [getattr(m, "text", "") or text_in_span(rec.subtitles, m.start, m.end) for m in moments]
        thumbs = thumbnails(
            rec.media_path, [(m.start + m.end) / 2 for m in moments], rec.meta.fps, rec.meta.n_video_frames
        )
        saliency = [float(x) for x in res.saliency]
        items = [
            {"start": float(m.start), "end": float(m.end), "score": float(m.score), "text": t}
            for m, t in zip(moments, texts)
        ]
        sess = sess | {"saliency": saliency, "moments": items, "selected": None}
        payload = {
            "video_id": rec.video_id,
            "query": query,
            "moments": items,
            "saliency": saliency,
            "method": res.method,
            **res.extra,
        }
        return (
            hero.note("search", res.method, res.extra.get("hero_weight"))
            + views.moments_html(moments, thumbs, texts, query),
            timeline(rec, sess),
            payload,
            exports.write(f"{Path(rec.source_name).stem}.search.json", json.dumps(payload, indent=1)),
            sess,
        )

    @gpu(duration=60)
    @user_errors
    def on_ask(question, candidates, sess, progress=gr.Progress()):
        qa = require("qa")
        rec = get_record(sess["video_id"])
        question = (question or "").strip()
        if not question:
            raise InputError("Type a question about the video, e.g. “What animal looks at the camera?”.")
        cands = [c.strip() for c in (candidates or "").splitlines() if c.strip()] or None
        if cands is not None and len(cands) < 2:
            raise InputError(
                "Give two or more candidate answers, one per line, or none to have them proposed."
            )
        progress(0.2, desc="answering" if cands else "proposing candidates and answering")
        ans = call_service(qa.answer_question, rec, question, candidates=cands, engine=hero.engine)
        s, e = (float(x) for x in ans.evidence)
        payload = {
            "video_id": rec.video_id,
            "question": question,
            "answer": ans.answer,
            "answer_index": int(ans.answer_index),
            "scores": [float(p) for p in ans.scores],
            "candidates": list(ans.candidates),
            "evidence": {"start": s, "end": e},
            "candidates_source": ans.candidates_source,
            "method": ans.method,
        } | ({} if ans.hero_weight is None else {"hero_weight": ans.hero_weight})
        sess = sess | {"evidence": (s, e)}
        return (
            views.answer_html(ans) + hero.note("qa", ans.method, ans.hero_weight),
            timeline(rec, sess),
            payload,
            exports.write(f"{Path(rec.source_name).stem}.qa.json", json.dumps(payload, indent=1)),
            sess,
        )

    @gpu(duration=120)
    @user_errors
    def on_caption(sess, progress=gr.Progress()):
        captions = require("captions")
        rec = get_record(sess["video_id"])
        progress(0.1, desc="proposing segments and captioning")
        caps = call_service(captions.caption_video, rec)
        items = [{"start": float(c.start), "end": float(c.end), "text": c.text} for c in caps]
        sess = sess | {"chapters": items}
        stem = Path(rec.source_name).stem
        payload = {"video_id": rec.video_id, "segments": items}
        return (
            views.chapters_html(caps),
            timeline(rec, sess),
            payload,
            exports.write(f"{stem}.chapters.vtt", captions.chapters_vtt(caps)),
            exports.write(f"{stem}.captions.json", json.dumps(payload, indent=1)),
            sess,
        )

    @gpu(duration=60)
    @user_errors
    def on_caption_moment(start, end, sess):
        captions = require("captions")
        rec = get_record(sess["video_id"])
        if start is None or end is None or end <= start:
            raise InputError("Select a moment first: click one in the search results or on the timeline.")
        cap = call_service(captions.caption_video, rec, [(float(start), float(end))])
        text = cap[0].text if cap else ""
        return f"**{format_span(start, end)}** — {text}" if text else "_Nothing to caption in that span._"

    def on_pick(sess, evt: gr.EventData):
        """A band, card or line was clicked (the page already seeked): remember it as the selection."""
        data = getattr(evt, "_data", None) or {}
        if "start" not in data or not sess.get("video_id"):
            return gr.skip(), gr.skip(), gr.skip(), sess
        s, e = float(data["start"]), float(data["end"])
        sess = sess | {"selected": (s, e)}
        try:
            tl = timeline(get_record(sess["video_id"]), sess)
        except gr.Error:
            tl = gr.skip()
        return tl, s, e, sess

    @user_errors
    def on_open(video_id, sess, t=0.0):
        """Open a library video in the player (at t seconds); a fresh view of it."""
        rec = get_record(video_id)
        return show(rec, new_session() | {"video_id": rec.video_id}, float(t or 0.0))

    def on_open_click(sess, evt: gr.EventData):
        data = getattr(evt, "_data", None) or {}
        if not data.get("video_id"):
            raise gr.Error("Pick a video in the list.", print_exception=False)
        return on_open(data["video_id"], sess, data.get("t", 0.0))

    @gpu(duration=60)
    @user_errors
    def on_library_search(query, top_k, progress=gr.Progress()):
        search = require("search")
        query = (query or "").strip()
        if not query:
            raise InputError("Type what you are looking for across all your videos.")
        progress(0.2, desc="searching the library")
        moments = call_service(search.search_library, library, query, top_k=int(top_k), engine=hero.engine)
        method = search.default_first_stage(hero.engine)  # the library ranks and scores spans this way
        groups: dict[str, list] = {}
        for m in moments:
            groups.setdefault(m.video_id, []).append(m)
        shown, payload = [], []
        for vid, ms in groups.items():
            rec = library.get(vid)
            if rec is None:
                continue
            shown.append((dataclasses.replace(rec, media_path=media(rec)), ms))
            payload.append(
                {
                    "video_id": vid,
                    "source_name": rec.source_name,
                    "moments": [
                        {"start": float(m.start), "end": float(m.end), "score": float(m.score)} for m in ms
                    ],
                }
            )
        return (
            hero.note("search", method) + views.library_results_html(shown, query),
            {"query": query, "videos": payload, "method": method},
        )

    @user_errors
    def on_remove(video_id, sess):
        if not video_id:
            raise InputError("Pick a video to remove.")
        if not library.remove(video_id):
            raise InputError(f"{video_id}: not in the library (already removed?)")
        cache.pop(video_id, None)
        gr.Info(f"Removed {video_id} from the library.")
        cleared = sess["video_id"] == video_id
        sess = new_session() if cleared else sess
        return (
            library_view(sess["video_id"]),
            gr.update(choices=library_choices(), value=None),
            None if cleared else gr.skip(),
            sess,
        )

    def on_library_list(sess):
        return library_view(sess["video_id"]), gr.update(choices=library_choices())

    # --- layout ----------------------------------------------------------------------------------------

    available = {name: service(name) is not None for name in _SERVICE_NAMES}
    missing = lambda name: views.note(f"{_SERVICE_NAMES[name]} is not available in this build yet.", "warn")  # noqa: E731

    with gr.Blocks(
        title="HERO video explorer", delete_cache=(3600, 24 * 3600), analytics_enabled=False
    ) as demo:
        sess = gr.State(new_session())
        gr.Markdown(
            "# HERO video explorer\nUpload a video: it is transcribed (Whisper) and encoded once, then you can "
            "search its moments, ask about it and caption it. Click any line, moment or band to jump there.",
            elem_classes="hv-title",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                video_player = gr.Video(
                    label="Player", elem_id="player", interactive=False, height=420, autoplay=False
                )
            with gr.Column(scale=2, min_width=300):
                video_in = gr.File(label="Video", file_types=list(VIDEO_TYPES), elem_id="video-upload")
                subs_in = gr.File(
                    label="Subtitles (optional: .srt or .vtt, replaces Whisper)",
                    file_types=list(SUBTITLE_TYPES),
                    elem_id="subs-upload",
                    height=150,
                )
                tracks_in = gr.CheckboxGroup(
                    choices=TRACK_CHOICES,
                    value=list(default_tracks()),
                    label="Recognise (timed tracks on the timeline, used by search and QA)",
                    elem_id="tracks-pick",
                )
                ingest_btn = gr.Button("Process video", variant="primary", elem_id="ingest-btn")
                gr.Markdown(
                    f"{', '.join(t[1:] for t in VIDEO_TYPES)} · up to {MAX_UPLOAD_MB:g} MB and "
                    f"{MAX_MINUTES:g} min · running on {device_label()} · search and answers: {hero.label()}",
                    elem_classes="hv-small",
                )
                examples_slot = gr.Column()
        timeline_html = gr.HTML(
            views.note("The timeline appears once a video is processed."),
            elem_id="timeline",
            js_on_load=PLAYHEAD_JS,
        )
        with gr.Tabs():
            with gr.Tab("Transcript", id="transcript"):
                transcript_html = gr.HTML(
                    views.note("No video yet."), elem_id="transcript", js_on_load=CLICK_JS
                )
                with gr.Row():
                    srt_file = gr.DownloadButton("⬇ Subtitles (SRT)", size="sm", variant="secondary")
                    vtt_file = gr.DownloadButton("⬇ Subtitles (WebVTT)", size="sm", variant="secondary")
            with gr.Tab("Search moments", id="search"):
                if not available["search"]:
                    gr.HTML(missing("search"))
                with gr.Row():
                    query = gr.Textbox(
                        label="Find a moment",
                        placeholder="e.g. a rocket on the launch pad",
                        scale=4,
                        elem_id="search-query",
                    )
                    search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-btn")
                with gr.Row():
                    top_k = gr.Slider(1, 20, value=5, step=1, label="Results (top-k)")
                    min_len = gr.Slider(0, 60, value=0, step=0.5, label="Shortest span, s (0: any)")
                    max_len = gr.Slider(0, 120, value=0, step=0.5, label="Longest span, s (0: any)")
                moments_html = gr.HTML(
                    views.note("Search this video to see its moments here."),
                    elem_id="moments",
                    js_on_load=CLICK_JS,
                )
                with gr.Accordion("Results as JSON", open=False):
                    search_json = gr.JSON(label="Search results")
                    search_file = gr.DownloadButton("⬇ Results (JSON)", size="sm", variant="secondary")
            with gr.Tab("Ask", id="ask"):
                if not available["qa"]:
                    gr.HTML(missing("qa"))
                with gr.Row():
                    with gr.Column(scale=3):
                        question = gr.Textbox(
                            label="Question",
                            placeholder="e.g. What animal looks at the camera?",
                            elem_id="question",
                        )
                        candidates = gr.Textbox(
                            label="Candidate answers (optional, one per line; none: proposed from the video)",
                            lines=4,
                            elem_id="candidates",
                        )
                        ask_btn = gr.Button("Ask", variant="primary", elem_id="ask-btn")
                    with gr.Column(scale=2):
                        answer_out = gr.HTML(
                            views.note("Ask a question to see the answer here."),
                            elem_id="answer",
                            js_on_load=CLICK_JS,
                        )
                with gr.Accordion("Answer as JSON", open=False):
                    qa_json = gr.JSON(label="Answer")
                    qa_file = gr.DownloadButton("⬇ Results (JSON)", size="sm", variant="secondary")
            with gr.Tab("Captions", id="captions"):
                if not available["captions"]:
                    gr.HTML(missing("captions"))
                with gr.Row():
                    caption_btn = gr.Button(
                        "Caption the video (chapters)", variant="primary", elem_id="caption-btn"
                    )
                    caption_sel_btn = gr.Button("Caption the selected moment", elem_id="caption-moment-btn")
                with gr.Row():
                    sel_start = gr.Number(label="Selected from (s)", precision=2, minimum=0)
                    sel_end = gr.Number(label="to (s)", precision=2, minimum=0)
                moment_caption = gr.Markdown()
                chapters_out = gr.HTML(
                    views.note("Caption the video to see its chapters here."),
                    elem_id="chapters",
                    js_on_load=CLICK_JS,
                )
                with gr.Row():
                    chapters_file = gr.DownloadButton("⬇ Chapters (WebVTT)", size="sm", variant="secondary")
                    captions_file = gr.DownloadButton("⬇ Captions (JSON)", size="sm", variant="secondary")
                with gr.Accordion("Captions as JSON", open=False):
                    captions_json = gr.JSON(label="Captions")
            with gr.Tab("Library", id="library"):
                gr.Markdown(
                    "Every processed video stays here. Click one to open it.", elem_classes="hv-small"
                )
                library_out = gr.HTML(library_view(), elem_id="library", js_on_load=CLICK_JS)
                with gr.Row():
                    lib_pick = gr.Dropdown(label="Video", choices=library_choices(), scale=3)
                    lib_open = gr.Button("Open", scale=1)
                    lib_remove = gr.Button("Remove from the library", variant="stop", scale=1)
                with gr.Row():
                    lib_query = gr.Textbox(
                        label="Search all videos",
                        placeholder="e.g. a cup of coffee",
                        scale=4,
                        elem_id="library-query",
                    )
                    lib_k = gr.Slider(1, 30, value=10, step=1, label="Results", scale=1)
                    lib_btn = gr.Button(
                        "Search library", variant="primary", scale=1, elem_id="library-search-btn"
                    )
                lib_results = gr.HTML(elem_id="library-results", js_on_load=CLICK_JS)
                with gr.Accordion("Library results as JSON", open=False):
                    lib_json = gr.JSON(label="Library search")
            with gr.Tab("Details", id="details"):
                details_json = gr.JSON(label="Video details (ingest summary)")

        show_outputs = [
            video_player,
            details_json,
            transcript_html,
            timeline_html,
            srt_file,
            vtt_file,
            moments_html,
            answer_out,
            chapters_out,
            sess,
            library_out,
            lib_pick,
        ]
        heavy = {"concurrency_limit": GPU_CONCURRENCY, "concurrency_id": "gpu"}
        private = {"api_visibility": "private"}
        ingest_args = ([video_in, subs_in, sess, tracks_in], show_outputs)
        ingest_btn.click(on_ingest, *ingest_args, api_name="ingest", **heavy)
        video_in.upload(on_ingest, *ingest_args, **private, **heavy)
        subs_in.upload(on_subtitles, *ingest_args, **private, **heavy)
        if SAMPLE.is_file():
            example_outputs = [details_json, transcript_html, timeline_html, srt_file, vtt_file]
            with examples_slot, examples_cache(library.root, example_outputs):
                sample = gr.Examples(
                    examples=[[str(SAMPLE)]],
                    inputs=[video_in],
                    outputs=example_outputs,
                    fn=on_example,
                    # Cached at first use for every user. Gradio's cache stores plain values only (a
                    # component update such as the player's subtitles cannot be cached), so the
                    # player and the session are set by the cheap step after it.
                    cache_examples=True,
                    cache_mode="lazy",
                    api_name="example",
                    label="Try the sample (33 s, five photographs with narration)",
                )
            # Outside the model-work queue: once cached, opening the sample must not wait behind another
            # user's long ingest (its one uncached run is held to one at a time by Gradio's example lock).
            sample.cache_event.success(on_example_open, [details_json, sess], show_outputs, **private)

        search_args = (
            [query, top_k, min_len, max_len, sess],
            [moments_html, timeline_html, search_json, search_file, sess],
        )
        search_btn.click(on_search, *search_args, api_name="search", **heavy)
        query.submit(on_search, *search_args, **private, **heavy)
        ask_args = ([question, candidates, sess], [answer_out, timeline_html, qa_json, qa_file, sess])
        ask_btn.click(on_ask, *ask_args, api_name="ask", **heavy)
        question.submit(on_ask, *ask_args, **private, **heavy)
        caption_outputs = [chapters_out, timeline_html, captions_json, chapters_file, captions_file, sess]
        caption_btn.click(on_caption, [sess], caption_outputs, api_name="caption", **heavy)
        caption_sel_btn.click(
            on_caption_moment,
            [sel_start, sel_end, sess],
            [moment_caption],
            api_name="caption_moment",
            **heavy,
        )
        pick_outputs = [timeline_html, sel_start, sel_end, sess]
        for clickable in (timeline_html, moments_html, transcript_html, chapters_out, answer_out):
            clickable.click(on_pick, [sess], pick_outputs, queue=False, **private)
        for clickable in (library_out, lib_results):
            clickable.click(on_open_click, [sess], show_outputs, **private)
        lib_open.click(on_open, [lib_pick, sess], show_outputs, api_name="open_video")
        lib_remove.click(
            on_remove,
            [lib_pick, sess],
            [library_out, lib_pick, video_player, sess],
            api_name="library_remove",
        )
        lib_args = ([lib_query, lib_k], [lib_results, lib_json])
        lib_btn.click(on_library_search, *lib_args, api_name="library_search", **heavy)
        lib_query.submit(on_library_search, *lib_args, **private, **heavy)
        demo.load(on_library_list, [sess], [library_out, lib_pick], api_visibility="private", queue=False)
    demo.queue(default_concurrency_limit=8)
    demo.herovid_library = library  # launch() serves the library's media folder from it
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs) -> None:
    """Launch with the app's theme, CSS and file permissions; kwargs go to Blocks.launch."""
    demo = demo or build_app()
    library: Library = demo.herovid_library
    opts = {
        "css": APP_CSS,
        "theme": gr.themes.Soft(primary_hue="orange"),
        "allowed_paths": [str(library.media_dir)],
        "max_file_size": int(MAX_UPLOAD_MB * 2**20),
        "show_error": True,
    }
    opts.update(kwargs)
    return demo.launch(**opts)
