"""Transformer building blocks of HERO with the official (HF BERT) parameter names.

Shared by the cross-modal, temporal and query encoders in models/hero.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TransformerConfig:
    """One transformer stack; the fields and defaults of the official ``RobertaModelConfig``."""

    hidden_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 514
    type_vocab_size: int = 2
    vocab_size: int = 50272
    initializer_range: float = 0.02
    # the official configs never set it, so RobertaModelConfig's default 1e-12 applies inside the
    # transformer layers; every other LayerNorm in HERO is hard-coded to 1e-5
    layer_norm_eps: float = 1e-12


# ----------------------------------------------------------------------------------------------
# small helpers


def mask_logits(target: torch.Tensor, mask: torch.Tensor, eps: float = -1e4) -> torch.Tensor:
    """Official masking: keep ``target`` where mask == 1, put ``eps`` where mask == 0."""
    mask = mask.to(target.dtype)
    return target * mask + (1 - mask) * eps


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) 1/0 key mask -> (B, 1, 1, L) additive bias, the official (1 - m) * -10000."""
    return ((1.0 - mask.to(dtype)) * -10000.0)[:, None, None, :]


# ----------------------------------------------------------------------------------------------
# transformer layers (HF BERT names: the official checkpoints use them)


@dataclass
class Packing:
    """Real tokens of a padded (B, L) batch: linears run on the N real rows only; attention
    scatters them back to (B, L) for SDPA."""

    index: torch.Tensor  # (N,) flat positions b * L + l of the real tokens
    B: int
    L: int


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        self.n_heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, packing: Packing | None = None):
        """x (B, L, H), or (N, H) real tokens with ``packing``; bias (B, 1, 1, L) additive or None.
        Returns the same layout as x."""
        H = x.shape[-1]
        nh = self.n_heads
        w = torch.cat([self.query.weight, self.key.weight, self.value.weight])  # (3H, H): one GEMM
        b = torch.cat([self.query.bias, self.key.bias, self.value.bias])
        qkv = F.linear(x, w, b)  # (B, L, 3H) or (N, 3H)
        if packing is not None:
            B, L = packing.B, packing.L
            full = qkv.new_zeros(B * L, 3 * H)
            full[packing.index] = qkv
            qkv = full
        else:
            B, L = x.shape[:2]
        q, k, v = qkv.view(B, L, 3, nh, H // nh).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, L, hd)
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout_p if self.training else 0.0
        )  # (B, nh, L, hd)
        out = out.transpose(1, 2).reshape(B, L, H)
        return out if packing is None else out.reshape(B * L, H)[packing.index]


class BertSelfOutput(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, packing: Packing | None = None):
        """x (B, L, H) (or (N, H) packed) -> same shape."""
        return self.output(self.self(x, bias, packing), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if cfg.hidden_act != "gelu":
            raise ValueError(f"only erf-gelu is used by HERO, got {cfg.hidden_act!r}")
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(h))


class BertOutput(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, packing: Packing | None = None):
        a = self.attention(x, bias, packing)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pack: bool = False) -> torch.Tensor:
        """x (B, L, H), mask (B, L) 1 = real -> (B, L, H).

        pack=True: only real tokens go through the linears; padded output rows are zero. Only for
        callers that never read padded rows: the official VSM convolution does read the temporal
        encoder's padded rows, so the temporal encoder keeps the official padded computation.
        """
        bias = attention_bias(mask, x.dtype)
        B, L, H = x.shape
        real = mask.reshape(-1) > 0
        if not pack or not len(self.layer) or bool(real.all()):
            for layer in self.layer:
                x = layer(x, bias)
            return x
        packing = Packing(real.nonzero()[:, 0], B, L)
        h = x.reshape(B * L, H)[packing.index]  # (N, H)
        for layer in self.layer:
            h = layer(h, bias, packing)
        return h.new_zeros(B * L, H).index_copy_(0, packing.index, h).view(B, L, H)


class BertPooler(nn.Module):
    """Kept for checkpoint compatibility (tanh(W h_0)); HERO's heads do not use it."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(h[:, 0]))


class LinearLayer(nn.Module):
    """LayerNorm(in) -> Dropout -> Linear -> ReLU (official ``LinearLayer``)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, relu: bool = True):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(in_dim, eps=1e-5)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net(self.LayerNorm(x))
        return F.relu(x) if self.relu else x


class MLPLayer(nn.Module):
    """Linear(d, 2d) -> gelu -> LayerNorm -> Linear(2d, out) (official ``MLPLayer``)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, in_dim * 2)
        self.LayerNorm = nn.LayerNorm(in_dim * 2, eps=1e-5)
        self.linear_2 = nn.Linear(in_dim * 2, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.LayerNorm(F.gelu(self.linear_1(x))))


class FrameFeatureRegression(nn.Module):
    """MFM head: hidden -> predicted raw frame feature."""

    def __init__(self, hidden: int, feat_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=1e-5), nn.Linear(hidden, feat_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BertLMPredictionHead(nn.Module):
    """MLM head; ``decoder.weight`` is the word embedding matrix (tied)."""

    def __init__(self, cfg: TransformerConfig, word_embeddings: nn.Parameter):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=1e-5)
        self.decoder = nn.Linear(cfg.hidden_size, word_embeddings.shape[0], bias=False)
        self.decoder.weight = word_embeddings
        self.bias = nn.Parameter(torch.zeros(word_embeddings.shape[0]))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.LayerNorm(F.gelu(self.dense(h)))) + self.bias
