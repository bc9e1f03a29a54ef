"""EfficientNet-Lite0 frame features for SynthTV generation on the CPU, about twice as fast per core as
the app's encoder, with the same weights and the same features up to float rounding.

The app (demo.features.EfficientNetLite0Encoder) runs the package's eager model: batch norms, explicit
TF "SAME" zero-padding copies and ReLU6 as separate passes over memory. Here batch norm is folded into
each convolution, the asymmetric padding of the stride-2 convolutions into the kernel (a zero first tap
plus symmetric padding computes the same sums without a padded copy), and the network is frozen with
TorchScript so oneDNN runs prepacked, fused kernels. Features do not depend on the batch split or the
thread count (tests/test_synthtv.py checks them against the app's encoder).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from demo.features import EfficientNetLite0Encoder, load_frame_encoder

CHUNK = 8  # frames per forward pass: larger batches only add cache misses on the CPU


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * s
    if conv.bias is not None:
        bias = bias + conv.bias * s
    return (conv.weight * s.reshape(-1, 1, 1, 1)).detach(), bias.detach()


class FoldedConv(nn.Module):
    """A Conv2dStaticSamePadding + BatchNorm2d (+ ReLU6) of efficientnet_lite_pytorch as one convolution."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu6: bool):
        super().__init__()
        weight, bias = _fold_bn(conv, bn)
        pad = getattr(conv, "static_padding", None)
        left, right, top, bottom = pad.padding if isinstance(pad, nn.ZeroPad2d) else (0, 0, 0, 0)
        if (left, top) != (right, bottom):
            # TF pads one more at the end: y[i] = sum_k w[k] x[s*i + k - left]. A kernel with a zero first
            # tap and padding left + 1 on both sides gives the same sums and the same output size.
            if (right, bottom) != (left + 1, top + 1):
                raise ValueError(f"unexpected padding {pad.padding}")
            weight = F.pad(weight, (1, 0, 1, 0))
            top, left = bottom, right
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.stride, self.groups, self.padding, self.relu6 = (
            tuple(conv.stride),
            conv.groups,
            (top, left),
            relu6,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        return F.hardtanh_(x, 0.0, 6.0) if self.relu6 else x


class FoldedBlock(nn.Module):
    """MBConvBlock (EfficientNet-Lite has no squeeze-excitation): expand, depthwise, project, skip."""

    def __init__(self, block: nn.Module):
        super().__init__()
        args = block._block_args
        if block.has_se:
            raise ValueError("squeeze-excitation blocks are not supported (EfficientNet-Lite has none)")
        self.expand = FoldedConv(block._expand_conv, block._bn0, True) if args.expand_ratio != 1 else None
        self.depthwise = FoldedConv(block._depthwise_conv, block._bn1, True)
        self.project = FoldedConv(block._project_conv, block._bn2, False)
        # The package's own test: its first blocks carry stride as a list ([1] != 1), repeats as an int.
        self.skip = bool(args.id_skip and args.stride == 1 and args.input_filters == args.output_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return y + x if self.skip else y


class FoldedLite0(nn.Module):
    """EfficientNet.extract_features with folded batch norms: (B, 3, 224, 224) -> (B, 1280, 7, 7)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.stem = FoldedConv(net._conv_stem, net._bn0, True)
        self.blocks = nn.ModuleList(FoldedBlock(b) for b in net._blocks)
        self.head = FoldedConv(net._conv_head, net._bn1, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class FastFrameFeatures:
    """Pooled 1280-d EfficientNet-Lite0 features of encoder-sized frames on the CPU."""

    app = EfficientNetLite0Encoder  # preprocessing as the app's: 224x224, its normalisation
    name, dim, size, mean, std = app.name, app.dim, app.size, app.mean, app.std

    def __init__(self):
        net = (
            FoldedLite0(load_frame_encoder(self.name, device="cpu").net)
            .eval()
            .to(memory_format=torch.channels_last)
        )
        try:  # TorchScript is deprecated but still the fastest CPU path in torch 2.13; eager is the fallback
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", DeprecationWarning)
                example = torch.zeros(2, 3, self.size, self.size).contiguous(
                    memory_format=torch.channels_last
                )
                net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, example)))
        except Exception as e:  # pragma: no cover - depends on the torch build
            warnings.warn(
                f"synthtv: TorchScript unavailable ({e}); eager folded EfficientNet-Lite0", stacklevel=2
            )
        self.net = net

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, 224, 224, 3) RGB -> float32 (N, 1280), as demo.features pools them."""
        if frames.ndim != 4 or frames.shape[1:] != (self.size, self.size, 3) or frames.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 (N, {self.size}, {self.size}, 3) frames, got {frames.dtype} {frames.shape}"
            )
        # Still stretches of an episode repeat the same picture (~28 % of sampled frames): encode each
        # distinct frame once; a frame's features do not depend on the others in its batch.
        first: dict[bytes, int] = {}
        which = np.array([first.setdefault(f.tobytes(), len(first)) for f in frames], np.int64)
        distinct = frames[np.unique(which, return_index=True)[1]]
        out = np.empty((len(distinct), self.dim), np.float32)
        for s in range(0, len(distinct), CHUNK):
            x = torch.from_numpy(distinct[s : s + CHUNK]).permute(0, 3, 1, 2)  # (B, 3, S, S) uint8
            x = ((x.float() / 255.0 - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            out[s : s + CHUNK] = self.net(x).mean(dim=(2, 3)).numpy()  # (B, 1280)
        return out[which]


@lru_cache(maxsize=1)
def load_fast_features() -> FastFrameFeatures:
    """The CPU encoder, built once per process (each generation worker builds its own)."""
    return FastFrameFeatures()
