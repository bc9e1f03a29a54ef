"""The persistent library: one record per ingested video, keyed by a hash of the file's content.

Layout under the data directory:
    videos/<video_id>.npz   the record: JSON metadata + arrays (features, HERO representations, ...)
    media/<video_id><ext>   the video itself, so the library stays playable after the upload is gone
    models/                 bundled weights unpacked once (Whisper), converted checkpoints
Every write goes to a temporary file in the same directory and is renamed into place, so a crash or a
bad input never leaves a half-written record, and an existing record is only ever replaced whole.
A record of another schema version, or one that fails to load, is reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demo.errors import InputError
from demo.subtitles import Subtitle
from demo.video import VideoMeta

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def default_data_dir() -> Path:
    """$HEROVID_DATA, else the user's cache directory (~/.cache/herovid on Linux)."""
    env = os.environ.get("HEROVID_DATA")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("herovid"))


def content_hash(path: str | Path, chunk: int = 8 << 20) -> str:
    """First 16 hex digits of the SHA-256 of the file's bytes: the video's id."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


@dataclass
class VideoRecord:
    """Everything ingest computed for one video. Arrays are float32 in memory (float16 on disk)."""

    video_id: str
    source_name: str  # the file name the user gave
    meta: VideoMeta
    frame_interval: float
    subtitles: list[Subtitle]
    subtitles_source: str  # "whisper:<model>", "file:<name>", or "none" (no audio track)
    language: str | None
    concepts: list[list[str]]  # top-k ImageNet names per sampled frame
    features: np.ndarray  # (n_frames, D) frame features
    feature_encoder: str
    timings: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # model outputs, e.g. "hero.v_temp"
    info: dict = field(default_factory=dict)  # keys of the models that made `arrays`, tracks, ...
    media_path: str | None = None
    created: float = field(default_factory=time.time)

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])

    def tracks(self) -> list:
        """The concept tracks (demo.tracks.ConceptEvent: objects, screen text, sounds, actions)."""
        from demo.tracks import tracks_from_json

        return tracks_from_json(self.info["tracks"]) if self.info.get("tracks") else []

    def frame_labels(self) -> list[list[str]]:
        """Per frame, what was recognised in it: tracks first ("2 persons", a sound, screen text), then the
        ImageNet concepts."""
        from demo.tracks import frame_concepts

        tracks = frame_concepts(self.tracks(), self.n_frames, self.frame_interval, with_counts=True)
        return [t + [c for c in cs if c not in t] for t, cs in zip(tracks, self.concepts)]

    def summary(self) -> dict:
        """The ingest JSON of the CLI contract."""
        return {
            "video_id": self.video_id,
            "source_name": self.source_name,
            "duration": round(self.meta.duration, 3),
            "frame_interval": self.frame_interval,
            "n_frames": self.n_frames,
            "has_audio": self.meta.has_audio,
            "language": self.language,
            "subtitles_source": self.subtitles_source,
            "subtitles": [s.to_dict() for s in self.subtitles],
            "concepts": self.concepts,
            "feature_dim": int(self.features.shape[1]),
            "feature_encoder": self.feature_encoder,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "tracks": self.info.get("tracks", {}).get("events", []),
        }

    # --- serialisation --------------------------------------------------------------------------------

    def _header(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "video_id": self.video_id,
            "source_name": self.source_name,
            "meta": self.meta.to_dict(),
            "frame_interval": self.frame_interval,
            "n_frames": self.n_frames,
            "subtitles": [s.to_dict() for s in self.subtitles],
            "subtitles_source": self.subtitles_source,
            "language": self.language,
            "concepts": self.concepts,
            "feature_encoder": self.feature_encoder,
            "timings": self.timings,
            "info": self.info,
            "media_path": self.media_path,
            "created": self.created,
            "arrays": sorted(self.arrays),
        }

    def save(self, path: Path) -> None:
        payload = {"header": np.frombuffer(json.dumps(self._header()).encode(), dtype=np.uint8)}
        payload["features"] = self.features.astype(np.float16)
        for k, v in self.arrays.items():
            payload[f"a.{k}"] = v.astype(np.float16) if v.dtype.kind == "f" else v
        atomic_write(path, lambda f: np.savez(f, **payload))

    @classmethod
    def load(cls, path: Path, arrays: bool = True) -> VideoRecord:
        """The record at `path`; arrays=False reads only the header (for listings: features become an
        (n_frames, 0) placeholder and `arrays` stays empty)."""
        with np.load(path, allow_pickle=False) as z:  # an npz member is read only when accessed
            h = json.loads(z["header"].tobytes().decode())
            if h.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema version {h.get('schema_version')} != {SCHEMA_VERSION}")
            if arrays or "n_frames" not in h:
                loaded = {k: _f32(z[f"a.{k}"]) for k in h["arrays"]} if arrays else {}
                features = _f32(z["features"]) if arrays else np.zeros((len(z["features"]), 0), np.float32)
            else:
                loaded, features = {}, np.zeros((h["n_frames"], 0), np.float32)
        return cls(
            video_id=h["video_id"],
            source_name=h["source_name"],
            meta=VideoMeta(**h["meta"]),
            frame_interval=h["frame_interval"],
            subtitles=[Subtitle(**s) for s in h["subtitles"]],
            subtitles_source=h["subtitles_source"],
            language=h["language"],
            concepts=h["concepts"],
            features=features,
            feature_encoder=h["feature_encoder"],
            timings=h["timings"],
            arrays=loaded,
            info=h["info"],
            media_path=h["media_path"],
            created=h["created"],
        )


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype == np.float16 else a


def atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Library:
    """Records of ingested videos under one data directory."""

    def __init__(self, data_dir: str | Path | None = None):
        self.root = Path(data_dir) if data_dir else default_data_dir()
        self.videos_dir = self.root / "videos"
        self.media_dir = self.root / "media"
        self.models_dir = self.root / "models"
        try:
            for d in (self.videos_dir, self.media_dir, self.models_dir):
                d.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.videos_dir, prefix=".probe-", delete=True)
            probe.close()
        except OSError as e:
            raise InputError(f"{self.root}: the data directory is not writable ({e.strerror or e})") from None

    def record_path(self, video_id: str) -> Path:
        return self.videos_dir / f"{video_id}.npz"

    def get(self, video_id: str, arrays: bool = True) -> VideoRecord | None:
        """The stored record, or None if absent; a corrupt or outdated one is reported and treated as absent.
        arrays=False: the header only (fast; for listings)."""
        path = self.record_path(video_id)
        if not path.is_file():
            return None
        try:
            return VideoRecord.load(path, arrays)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError, TypeError) as e:
            log.warning("library entry %s is unusable (%s); it will be rebuilt", video_id, e)
            return None

    def put(self, record: VideoRecord) -> None:
        if record.n_frames and record.features.shape[1] == 0:
            raise ValueError("a header-only record (records(arrays=False)) cannot be saved")
        record.save(self.record_path(record.video_id))

    def store_media(self, src: str | Path, video_id: str) -> Path:
        """Keep a copy of the video (a hard link when possible) next to its record."""
        src = Path(src)
        dst = self.media_dir / f"{video_id}{src.suffix.lower() or '.mp4'}"
        if dst.is_file() and dst.stat().st_size == src.stat().st_size:
            return dst
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        return dst

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.videos_dir.glob("*.npz") if not p.name.startswith("."))

    def records(self, arrays: bool = True) -> list[VideoRecord]:
        """Every usable record; arrays=False reads headers only (listing a large library stays fast)."""
        return [r for r in (self.get(i, arrays) for i in self.ids()) if r is not None]

    def remove(self, video_id: str) -> bool:
        path = self.record_path(video_id)
        found = path.is_file()
        path.unlink(missing_ok=True)
        for m in self.media_dir.glob(f"{video_id}.*"):
            m.unlink(missing_ok=True)
        return found
