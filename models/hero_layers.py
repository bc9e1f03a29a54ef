"""Transformer building blocks of HERO with the official (HF BERT) parameter names.

Shared by the cross-modal, temporal and query encoders in models/hero.py.
"""

from __future__ import annotations

import weakref
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
# linears: oneDNN with pre-packed weights for CPU inference

# Inference on the CPU with many rows (a video's subtitles or windows) runs the linears through
# oneDNN with its weights reordered once into its blocked layout and the bias fused: 5-15 % faster
# than MKL sgemm + a separate bias copy on these AVX2 cores; same maths up to float rounding.
# Small calls (one query) and anything with autograd use F.linear.
_DNNL = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
)
DNNL_MIN_ROWS = 256
# owner module -> {slot: (key, packed weight, bias)}; weak, so a packed copy lives only as long as
# its module (and never enters state_dict, deepcopy or pickles)
_packed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _side_by_side(linears: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(linears) == 1:
        return linears[0].weight, linears[0].bias
    return torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears])


def fused_linear(owner: nn.Module, slot: str, x: torch.Tensor, *linears: nn.Linear) -> torch.Tensor:
    """``x @ cat(weights).T + cat(biases)``: the linears side by side as one GEMM.

    x (..., in) -> (..., sum of out). The oneDNN packed weight is cached per (owner, slot) and
    rebuilt whenever a weight is replaced or modified in place (tensor version counters; writes
    through ``.data`` bypass them, so do those before the first inference call, as at init), and
    after every call with grad enabled: fused optimisers (``AdamW(fused=True)``) update weights
    without bumping their version counters, and a training step starts with such a call.
    """
    if torch.is_grad_enabled():
        _packed.pop(owner, None)
    rows = x.numel() // max(1, x.shape[-1])
    if not (
        _DNNL
        and rows >= DNNL_MIN_ROWS
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and linears[0].weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
    ):
        return F.linear(x, *_side_by_side(linears))
    key = tuple((t.data_ptr(), t._version) for m in linears for t in (m.weight, m.bias))
    cache = _packed.setdefault(owner, {})
    hit = cache.get(slot)
    if hit is None or hit[0] != key:
        w, b = _side_by_side(linears)
        hit = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach()), b.detach().contiguous())
        cache[slot] = hit
    out = torch.ops.mkldnn._linear_pointwise(x.reshape(rows, x.shape[-1]), hit[1], hit[2], "none", [], "")
    return out.view(*x.shape[:-1], out.shape[-1])


# ----------------------------------------------------------------------------------------------
# transformer layers (HF BERT names: the official checkpoints use them)


@dataclass
class Packing:
    """Real tokens of a padded (B, L) batch: linears run on the N real rows only; attention
    scatters them back to (B, L) for SDPA."""

    index: torch.Tensor  # (N,) flat positions b * L + l of the real tokens
    pad: torch.Tensor  # the other flat positions (padding)
    B: int
    L: int

    def unpack(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, C) real rows -> (B * L, C) with zeros at padding (zero keys/values: a masked key
        must stay finite, 0 * NaN would not vanish)."""
        full = rows.new_empty(self.B * self.L, rows.shape[1])
        full[self.pad] = 0  # cheaper than zero-filling everything: padding is a small share
        full[self.index] = rows
        return full


@dataclass
class QueryRows:
    """The rows a layer must output (a subset of the packed rows): attention computes queries,
    and the FFN runs, for these rows only; keys and values still come from every real row."""

    rows: torch.Tensor  # (M,) indices into the packed (N, H) rows
    index: torch.Tensor  # (M,) flat positions b * Lq + l in a (B, Lq) query layout
    Lq: int


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

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        packing: Packing | None = None,
        queries: QueryRows | None = None,
    ):
        """x (B, L, H), or (N, H) real tokens with ``packing``; bias (B, 1, 1, L) additive, or bool
        (True = attend), or None. Returns the same layout as x, or (M, H) for ``queries`` (needs
        ``packing``)."""
        H = x.shape[-1]
        nh = self.n_heads
        if bias is not None and bias.dtype != torch.bool:
            bias = bias.to(x.dtype)
        dropout_p = self.dropout_p if self.training else 0.0
        if queries is not None:
            B, L = packing.B, packing.L
            kv = packing.unpack(fused_linear(self, "kv", x, self.key, self.value))  # (B*L, 2H)
            k, v = kv.view(B, L, 2, nh, H // nh).permute(2, 0, 3, 1, 4)  # 2 x (B, nh, L, hd)
            qm = fused_linear(self, "q", x[queries.rows], self.query)  # (M, H); bf16 under autocast
            q = qm.new_zeros(B * queries.Lq, H)
            q[queries.index] = qm
            q = q.view(B, queries.Lq, nh, H // nh).transpose(1, 2)  # (B, nh, Lq, hd)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
            return out.transpose(1, 2).reshape(B * queries.Lq, H)[queries.index]  # (M, H)
        qkv = fused_linear(self, "qkv", x, self.query, self.key, self.value)  # (B, L, 3H) or (N, 3H)
        if packing is not None:
            B, L = packing.B, packing.L
            qkv = packing.unpack(qkv)  # (B*L, 3H)
        else:
            B, L = x.shape[:2]
        q, k, v = qkv.view(B, L, 3, nh, H // nh).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, L, hd)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)  # (B, nh, L, hd)
        out = out.transpose(1, 2).reshape(B, L, H)
        return out if packing is None else out.reshape(B * L, H)[packing.index]


class BertSelfOutput(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(fused_linear(self, "dense", h, self.dense)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def forward(self, x, bias, packing: Packing | None = None, queries: QueryRows | None = None):
        """x (B, L, H) (or (N, H) packed) -> same shape, or (M, H) for ``queries``."""
        residual = x if queries is None else x[queries.rows]
        return self.output(self.self(x, bias, packing, queries), residual)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if cfg.hidden_act != "gelu":
            raise ValueError(f"only erf-gelu is used by HERO, got {cfg.hidden_act!r}")
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(fused_linear(self, "dense", h, self.dense))


class BertOutput(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(fused_linear(self, "dense", h, self.dense)) + residual)


class BertLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, x, bias, packing: Packing | None = None, queries: QueryRows | None = None):
        a = self.attention(x, bias, packing, queries)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, pack: bool = False, out_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L, H), mask (B, L) 1 = real -> (B, L, H).

        pack=True: only real tokens go through the linears; padded output rows are zero. Only for
        callers that never read padded rows: the official VSM convolution does read the temporal
        encoder's padded rows, so the temporal encoder keeps the official padded computation.
        out_lens (B,) long: return only the first out_lens[b] positions of each sequence
        (B, max out_lens, H) (packed, zeros elsewhere); the last layer then computes queries and its
        FFN for those rows only (same values).
        """
        B, L, H = x.shape
        real = mask.reshape(-1) > 0
        all_real = bool(real.all())
        # no padding: no mask at all (adding zeros changes nothing and costs a pass per layer)
        bias = None if all_real else attention_bias(mask, x.dtype)
        if out_lens is None and (not pack or not len(self.layer) or all_real):
            for layer in self.layer:
                x = layer(x, bias)
            return x
        if bias is not None:
            # packed: a bool mask (SDPA's faster path). exp(-10000 + s) is 0 in float32 as is
            # exp(-inf), so the softmax is the same; only a sequence without any real token
            # would differ (NaN instead of a uniform average), and its rows are never read.
            bias = (mask > 0)[:, None, None, :]  # (B, 1, 1, L)
        packing = Packing(real.nonzero()[:, 0], (~real).nonzero()[:, 0], B, L)
        h = x.reshape(B * L, H)[packing.index]  # (N, H)
        queries = None
        if out_lens is not None:
            seq, pos = packing.index // L, packing.index % L
            rows = (pos < out_lens[seq]).nonzero()[:, 0]
            Lq = max(1, int(out_lens.max()))
            queries = QueryRows(rows, seq[rows] * Lq + pos[rows], Lq)
            if not len(self.layer):
                h = h[rows]
        for i, layer in enumerate(self.layer):
            h = layer(h, bias, packing, queries if i == len(self.layer) - 1 else None)
        if queries is None:
            return h.new_zeros(B * L, H).index_copy_(0, packing.index, h).view(B, L, H)
        return h.new_zeros(B * queries.Lq, H).index_copy_(0, queries.index, h).view(B, queries.Lq, H)


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
        x = fused_linear(self, "net", self.net[0](self.LayerNorm(x)), self.net[1])
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
