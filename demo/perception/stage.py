"""The perception stage of ingest: which concept tracks to compute, and computing them chunk by chunk
beside the frame features (objects, screen text), from the audio track (sounds), and from short clips
around each sampled frame (actions + I3D motion features)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from demo.errors import InputError
from demo.tracks import KINDS, ConceptEvent, merge_events

FRAME_KINDS = ("object", "screen_text")  # computed on the sampled frames while they are decoded


def resolve_kinds(kinds: Iterable[str] | None, cuda: bool) -> tuple[str, ...]:
    """The tracks to compute. Default: objects and sounds; with a GPU also screen text (on 2 CPU cores
    OCR of moving footage costs ~7 s per minute of video: benchmarks/bench_ingest.py). Actions (I3D)
    only when asked: their Kinetics labels made visual search on real footage worse (top-1 0.62 ->
    0.48 with every track on; README "Concept tracks"), and they cost ~3-5 s per sampled frame on a
    CPU. "none" turns every track off."""
    if kinds is None:
        kinds = ("object", "sound") + (("screen_text",) if cuda else ())
    kinds = tuple(k for k in kinds if k != "none")
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        raise InputError(
            f"--tracks: unknown kind(s) {', '.join(bad)}; choose from {', '.join(KINDS)} or none"
        )
    return tuple(sorted(set(kinds)))


@dataclass
class FramePerception:
    """Runs the frame-level detectors on each decoded chunk; `events` collects their output."""

    kinds: tuple[str, ...]
    device: str = "cpu"
    events: list[ConceptEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._objects = self._reader = None
        if "object" in self.kinds:
            from demo.perception.objects import ObjectDetector

            self._objects = ObjectDetector()
        if "screen_text" in self.kinds:
            from demo.perception.screentext import ScreenTextReader

            self._reader = ScreenTextReader()

    def __call__(self, frames: np.ndarray, times: np.ndarray, interval: float) -> None:
        if self._objects is not None:
            self.events += self._objects.run(frames, times, interval)
        if self._reader is not None:
            self.events += self._reader.run(frames, times, interval)

    def result(self) -> list[ConceptEvent]:
        return merge_events(self.events)  # lines and objects continuing across chunks join up


def tag_sound_events(audio: np.ndarray | None, cache_dir: Path) -> list[ConceptEvent]:
    if audio is None or len(audio) == 0:
        return []
    from demo.perception.sounds import SoundTagger

    return SoundTagger(cache_dir=cache_dir).run(audio)


def recognize_action_events(
    path: Path, meta, times: np.ndarray, interval: float, cache_dir: Path, device: str, chunk: int = 16
) -> tuple[list[ConceptEvent], np.ndarray]:
    """I3D over a 16-frame clip around each sampled frame: (action events, (N, 1024) motion features)."""
    from demo.perception.actions import ActionRecognizer, clip_indices
    from demo.video import FramesInOrder

    rec = ActionRecognizer(cache_dir=cache_dir, device=device)
    idx = clip_indices(times, meta.fps, meta.n_video_frames)  # (N, 16)
    events, feats = [], []
    with FramesInOrder(path) as reader:  # clips are in time order: one decoding pass for all
        for s in range(0, len(idx), chunk):
            block = idx[s : s + chunk]
            frames = reader.read(block.ravel())
            clips = frames.reshape(len(block), idx.shape[1], *frames.shape[1:])
            r = rec.run(list(clips), times[s : s + chunk], interval)
            events += r.events
            feats.append(r.features)
    return merge_events(events), np.concatenate(feats) if feats else np.zeros((0, 1024), np.float32)
