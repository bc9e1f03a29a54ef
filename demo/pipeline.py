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
from demo.tracks import tracks_from_json, tracks_to_json

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
    tracks: tuple[str, ...] | None = None  # concept tracks to compute; None: the defaults (perception.stage)


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
    from demo.asr import LINES_VERSION
    from demo.engine import load_engine
    from demo.features import resolve_device
    from demo.perception.stage import FRAME_KINDS, resolve_kinds

    progress = progress or _noop
    device = resolve_device(options.device).type
    kinds = set(resolve_kinds(options.tracks, device == "cuda"))
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

    # --- what the library already has for this file ------------------------------------------------------
    old = library.get(video_id)
    same_frames = (
        old is not None
        and old.frame_interval == options.interval
        and old.feature_encoder == options.frame_encoder
    )
    lines = {"subtitle_lines": LINES_VERSION} if user_subs is None else {}  # how Whisper's text was cut
    same_subs = old is not None and (
        (old.subtitles_source == subs_source and all(old.info.get(k) == v for k, v in lines.items()))
        or (old.subtitles_source == "none" and user_subs is None)
    )
    have = set(old.info.get("track_kinds", [])) if same_frames else set()
    kept = [e for e in (tracks_from_json(old.info["tracks"]) if have else []) if e.kind in kinds]
    need = kinds - have
    if old is not None and same_frames and same_subs and not need:
        changed = have != kinds  # a kind turned off: drop it everywhere
        if changed:
            old.info["tracks"], old.info["track_kinds"] = tracks_to_json(kept), sorted(kinds)
        if engine is not None and old.info.get("hero_key") != engine.key:
            engine.encode_record(old)
            changed = True
        if changed:
            library.put(old)
        progress(1.0, "cached")
        return old

    # --- subtitles: the user's file, or Whisper on the audio track ---------------------------------------
    language, audio = None, None
    if "sound" in need or (not same_subs and user_subs is None and meta.has_audio):
        t = time.perf_counter()
        progress(_SPAN["audio"][0], "extracting audio")
        audio = vid.load_audio(path, meta)
        timings["audio"] = time.perf_counter() - t
    if same_subs:
        subs, subs_source, language = old.subtitles, old.subtitles_source, old.language
    elif user_subs is not None:
        subs = [s for s in user_subs if s.start < meta.duration]
    elif not meta.has_audio:
        subs, subs_source = [], "none"
    else:
        from demo.asr import load_whisper, transcribe

        t = time.perf_counter()
        progress(_SPAN["asr"][0], "loading Whisper")
        model = load_whisper(options.whisper_model, options.device, str(library.models_dir))
        result = transcribe(
            audio,
            model,
            language=options.language,
            vad=options.vad,
            batch_size=8 if model.model.device == "cuda" else 0,  # batched decoding pays off on a GPU
            progress=_stage(progress, "asr"),
        )
        subs, language = result.subtitles, result.language
        timings["asr"] = time.perf_counter() - t

    # --- frames -> features, concepts, and the frame-level tracks (objects, screen text) -----------------
    from demo.perception.stage import FramePerception, recognize_action_events, tag_sound_events

    frame_kinds = tuple(k for k in FRAME_KINDS if k in need)
    perceive = FramePerception(frame_kinds) if frame_kinds else None
    arrays = dict(old.arrays) if same_frames else {}
    if same_frames and perceive is None:
        features, concepts = old.features, old.concepts
    else:
        from demo.features import load_frame_encoder

        t = time.perf_counter()
        encoder = None if same_frames else load_frame_encoder(options.frame_encoder, options.device)
        times = vid.frame_times(meta.duration, options.interval)
        feats, concepts = [], []
        report = _stage(progress, "frames")
        t_enc = t_per = 0.0
        for start, frames in vid.iter_frames(path, meta, options.interval):
            t1 = time.perf_counter()
            if encoder is not None:
                enc = encoder.encode(frames)
                feats.append(enc.features)
                concepts.extend(enc.concepts)
            t2 = time.perf_counter()
            if perceive is not None:
                perceive(frames, times[start : start + len(frames)], options.interval)
            t_enc, t_per = t_enc + t2 - t1, t_per + time.perf_counter() - t2
            report((start + len(frames)) / len(times), "encoding frames")
        features = np.concatenate(feats, axis=0) if encoder is not None else old.features
        concepts = concepts if encoder is not None else old.concepts
        timings["frames"] = time.perf_counter() - t - t_per  # decoding + features
        timings["features"] = t_enc
        if perceive is not None:
            timings["objects+text"] = t_per
    events = list(kept) + (perceive.result() if perceive else [])
    if "sound" in need:
        t = time.perf_counter()
        progress(_SPAN["frames"][1], "tagging sounds")
        events += tag_sound_events(audio, library.models_dir)
        timings["sounds"] = time.perf_counter() - t
    if "action" in need:
        t = time.perf_counter()
        progress(_SPAN["frames"][1], "recognising actions")
        times = vid.frame_times(meta.duration, options.interval)
        acts, motion = recognize_action_events(
            path, meta, times, options.interval, library.models_dir, device
        )
        events += acts
        arrays["i3d"] = motion  # the 3D stream, kept beside the 2D features
        timings["actions"] = time.perf_counter() - t
    if "action" not in kinds:
        arrays.pop("i3d", None)
    arrays = {k: v for k, v in arrays.items() if not k.startswith("hero.")}  # inputs changed: re-encode

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
        arrays=arrays,
        info={"tracks": tracks_to_json(events), "track_kinds": sorted(kinds), **lines},
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
