"""Ingest: a video file -> a VideoRecord in the library (subtitles, frame features, concepts, model states).

Each stage is cached in the record by what produced it (frame interval, frame encoder, Whisper model or
subtitle file), so re-ingesting the same file is a lookup, and changing one option recomputes only the
stages it affects. Nothing is written until every stage has succeeded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo import video as vid
from demo.errors import InputError
from demo.library import Library, VideoRecord, content_hash
from demo.subtitles import Subtitle, read_subtitles

ProgressFn = Callable[[float, str], None]

# Share of the progress bar each stage gets (ASR dominates on CPU).
_SPAN = {
    "probe": (0.0, 0.02),
    "audio": (0.02, 0.05),
    "asr": (0.05, 0.6),
    "frames": (0.6, 0.95),
    "model": (0.95, 1.0),
}


@dataclass(frozen=True)
class IngestOptions:
    interval: float = vid.DEFAULT_INTERVAL  # seconds per sampled frame (HERO: 1.5)
    whisper_model: str = "base"  # bundled; a size name or repo id (online), or a local CTranslate2 dir
    language: str | None = None  # None: detect
    vad: bool = False  # drop non-speech before Whisper
    device: str = "auto"  # auto | cpu | cuda
    frame_encoder: str = "efficientnet-lite0"
    checkpoint: str | None = None  # HERO checkpoint dir or hub repo id; None: the shipped one, if any


def _noop(_f: float, _s: str) -> None:
    pass


def _stage(progress: ProgressFn, name: str) -> ProgressFn:
    lo, hi = _SPAN[name]
    return lambda f, msg: progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), msg)


def _file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def ingest(
    path: str | Path,
    subtitles_file: str | Path | None = None,
    library: Library | None = None,
    options: IngestOptions = IngestOptions(),
    progress: ProgressFn | None = None,
) -> VideoRecord:
    """Ingest one video; returns its record (from the cache when nothing changed).

    With a HERO checkpoint (options.checkpoint, else the shipped one) the record also stores HERO's
    states, so a later search or question costs only the query encoder and the heads.
    """
    from demo.engine import load_engine

    progress = progress or _noop
    engine = load_engine(options.checkpoint, options.device)
    library = library or Library()
    path = Path(path)
    user_subs: list[Subtitle] | None = None
    subs_source = f"whisper:{options.whisper_model}" + (f":{options.language}" if options.language else "")
    if subtitles_file:  # parse first: a bad subtitle file fails before any heavy work
        user_subs = read_subtitles(subtitles_file)
        subs_source = f"file:{Path(subtitles_file).name}:{_file_key(Path(subtitles_file))}"

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    progress(0.0, "reading video")
    meta = vid.probe(path)
    video_id = content_hash(path)
    timings["probe"] = time.perf_counter() - t0

    old = library.get(video_id)
    same_frames = (
        old is not None
        and old.frame_interval == options.interval
        and old.feature_encoder == options.frame_encoder
    )
    same_subs = old is not None and (
        old.subtitles_source == subs_source or (old.subtitles_source == "none" and user_subs is None)
    )
    if old is not None and same_frames and same_subs:
        if engine is not None and old.info.get("hero_key") != engine.key:
            engine.encode_record(old)
            library.put(old)
        progress(1.0, "cached")
        return old

    # --- subtitles: the user's file, or Whisper on the audio track ---------------------------------------
    language = None
    if same_subs:
        subs, subs_source, language = old.subtitles, old.subtitles_source, old.language
    elif user_subs is not None:
        subs = [s for s in user_subs if s.start < meta.duration]
    elif not meta.has_audio:
        subs, subs_source = [], "none"
    else:
        from demo.asr import load_whisper, transcribe

        t = time.perf_counter()
        progress(_SPAN["audio"][0], "extracting audio")
        audio = vid.load_audio(path, meta)
        timings["audio"] = time.perf_counter() - t
        t = time.perf_counter()
        progress(_SPAN["asr"][0], "loading Whisper")
        model = load_whisper(options.whisper_model, options.device, str(library.models_dir))
        result = transcribe(
            audio, model, language=options.language, vad=options.vad, progress=_stage(progress, "asr")
        )
        subs, language = result.subtitles, result.language
        timings["asr"] = time.perf_counter() - t

    # --- frames -> features + concepts ----------------------------------------------------------------------
    if same_frames:
        features, concepts = old.features, old.concepts
    else:
        from demo.features import load_frame_encoder

        t = time.perf_counter()
        encoder = load_frame_encoder(options.frame_encoder, options.device)
        n = len(vid.frame_times(meta.duration, options.interval))
        feats, concepts = [], []
        report = _stage(progress, "frames")
        for start, frames in vid.iter_frames(path, meta, options.interval):
            enc = encoder.encode(frames)
            feats.append(enc.features)
            concepts.extend(enc.concepts)
            report((start + len(frames)) / n, "encoding frames")
        features = np.concatenate(feats, axis=0)
        timings["frames"] = time.perf_counter() - t

    record = VideoRecord(
        video_id=video_id,
        source_name=path.name,
        meta=meta,
        frame_interval=options.interval,
        subtitles=subs,
        subtitles_source=subs_source,
        language=language,
        concepts=concepts,
        features=features,
        feature_encoder=options.frame_encoder,
        timings=timings,
    )
    if engine is not None:
        t = time.perf_counter()
        progress(_SPAN["model"][0], "encoding with HERO")
        engine.encode_record(record)
        timings["model"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    try:
        record.media_path = str(library.store_media(path, video_id))
        library.put(record)
    except OSError as e:
        raise InputError(f"{library.root}: cannot write the library ({e.strerror or e})") from None
    progress(1.0, "done")
    return record


def find_record(
    library: Library,
    video: str | Path,
    options: IngestOptions = IngestOptions(),
    progress: ProgressFn | None = None,
) -> VideoRecord:
    """A video given as a file path (ingested now if it is not in the library yet; instant if it is) or
    as the id of an ingested video -> its record."""
    if Path(video).is_file():
        return ingest(video, library=library, options=options, progress=progress)
    rec = library.get(str(video))
    if rec is None:
        raise InputError(f"{video}: neither a video file nor the id of an ingested video")
    return rec
