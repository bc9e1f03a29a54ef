"""COOT: hierarchical video/text encoders (frame -> clip -> video, word -> sentence -> paragraph) and losses.

Follows Ging et al., NeurIPS 2020 and the official code (simon-ging/coot-videotext, nntrainer
``TransformerLegacy`` x 4, ``RetrievalModelManager``, ``coot/loss_fn.py``). Module names match the official
state dicts ``net_{video,text}_{local,global}.*`` so official weights load with ``strict=True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

# Official masking constant: "infinity" representable in float16, large enough that exp(-INF) == 0.
INF = 32752.0

# Names of the four networks, as in the official checkpoints.
NET_NAMES = ("net_video_local", "net_video_global", "net_text_local", "net_text_global")


@dataclass
class CootConfig:
    """COOT hyper-parameters; the four networks share them as in the official ``same_as`` configs.

    Defaults are our app's: 1280-d EfficientNet-Lite0 frame features (one per 1.5 s), 384-d MiniLM token
    features, hidden 384. Official YouCook2 values otherwise (yc2_100m_coot.yaml).
    """

    model_type: str = "coot"  # models/io.py registry key
    video_feature_dim: int = 1280  # per-frame input features
    text_feature_dim: int = 384  # per-token input features
    hidden_dim: int = 384  # transformer width = clip / sentence embedding size
    num_heads: int = 8  # attention heads of the self- and cross-attention layers
    ff_dim: int = 384  # pointwise feed-forward width (0 means hidden_dim, as official)
    num_layers: int = 1  # self-attention layers per network (and cross-attention layers)
    dropout: float = 0.05  # attention / feed-forward / pooler dropout
    pooler_hidden_dim: int = 768  # AFA (GenPool) attention MLP width
    pooler_num_heads: int = 2  # AFA heads
    max_len: int = 1000  # sinusoidal position table length (frames per video or tokens per paragraph)
    layer_norm_eps: float = 1e-6  # COOT LayerNorm: gain * (x - mean) / (std + eps) + bias, unbiased std
    # Official "avg_special" pooling of the global networks sums every position, padded ones included, and
    # divides by the real length. True reproduces official numbers; False makes embeddings independent of
    # how a batch is padded (our app default).
    avg_pool_include_padding: bool = False
    init_std: float = 0.01  # truncated-normal init std (values resampled beyond 2 std)
    # losses (official defaults: margin 0.2, all weights 1 except context-internal 0, cycle 0.001)
    margin: float = 0.2
    weight_high: float = 1.0  # video <-> paragraph alignment
    weight_low: float = 1.0  # clip <-> sentence alignment
    weight_context: float = 1.0  # video context <-> paragraph context alignment
    weight_high_internal: float = 1.0  # clustering loss on video / paragraph embeddings
    weight_low_internal: float = 1.0  # clustering loss on clip / sentence embeddings
    weight_context_internal: float = 0.0  # clustering loss on contexts
    weight_cycle: float = 0.001  # cross-modal cycle consistency
    cycle_num_samples: int = 1  # sequence positions sampled per cycle loss term (-1: all), official 1

    @classmethod
    def small(cls) -> CootConfig:
        """The official config with dims shrunk, as used for the parity reference."""
        return cls(
            video_feature_dim=24,
            text_feature_dim=40,
            hidden_dim=32,
            num_heads=4,
            ff_dim=32,
            pooler_hidden_dim=64,
            avg_pool_include_padding=True,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CootConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown CootConfig fields: {sorted(unknown)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------------------
# Building blocks (official names)
# ---------------------------------------------------------------------------------------------------------


class CootLayerNorm(nn.Module):
    """COOT's own layer norm: divides by (unbiased std + eps), parameters ``gain`` / ``bias``."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True)
        return self.gain * (x - mean) / (std + self.eps) + self.bias


def coot_sincos_table(max_len: int, dim: int) -> torch.Tensor:
    """COOT's sinusoid table (its own variant: divisor 10000 ** (2 * d / dim) for dimension index d)."""
    pe = torch.zeros(max_len, dim)
    position = torch.arange(max_len).float().unsqueeze(1)  # (L, 1)
    div_term = 10000 ** (2 * torch.arange(dim).float() / dim)  # (dim,)
    pe[:, 0::2] = torch.sin(position / div_term[0::2])
    pe[:, 1::2] = torch.cos(position / div_term[1::2])
    return pe


class PositionalEncodingSinCos(nn.Module):
    """Adds the fixed table ``pe`` (kept in the state dict, as official) to a (B, L, D) sequence."""

    def __init__(self, dim: int, max_len: int = 1000):
        super().__init__()
        self.register_buffer("pe", coot_sincos_table(max_len, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequence of {x.shape[1]} exceeds the position table ({self.pe.shape[0]})")
        return x + self.pe[: x.shape[1]]


class InputFC(nn.Module):
    """Official one-layer ``MLP``: Linear (``mlp.0``) then GELU."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim))
        self.activation_output = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation_output(self.mlp(x))


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with ``{query,key,value,final}_projection``."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.d_head = dim // num_heads
        self.query_projection = nn.Linear(dim, dim)
        self.key_projection = nn.Linear(dim, dim)
        self.value_projection = nn.Linear(dim, dim)
        self.final_projection = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pad_mask: torch.Tensor
    ) -> torch.Tensor:
        """query (B, Lq, D), key/value (B, Lk, D), pad_mask (B, Lk) True on padded keys -> (B, Lq, D)."""
        b, lq, d = query.shape
        lk = key.shape[1]
        q = self.query_projection(query).view(b, lq, self.num_heads, self.d_head).transpose(1, 2)
        k = self.key_projection(key).view(b, lk, self.num_heads, self.d_head).transpose(1, 2)
        v = self.value_projection(value).view(b, lk, self.num_heads, self.d_head).transpose(1, 2)
        # q: (B, nh, Lq, dh), k/v: (B, nh, Lk, dh)
        scores = q @ k.transpose(2, 3) / math.sqrt(self.d_head)  # (B, nh, Lq, Lk)
        scores = scores.masked_fill(pad_mask[:, None, None, :], -INF)
        attn = self.dropout(scores.softmax(dim=-1))
        ctx = (attn @ v).transpose(1, 2).reshape(b, lq, d)  # (B, Lq, D)
        return self.final_projection(ctx)


class PointwiseFeedForward(nn.Module):
    """``feed_forward`` = Linear, Dropout, GELU, Linear, Dropout (indices 0 and 3 hold weights)."""

    def __init__(self, dim: int, ff_dim: int, dropout: float):
        super().__init__()
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, ff_dim),
            nn.Dropout(dropout),
            nn.GELU(),
            nn.Linear(ff_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(x)


class Sublayer(nn.Module):
    """Post-norm residual wrapper: ``layer_normalization(sublayer(x, ...) + x)``."""

    def __init__(self, sublayer: nn.Module, dim: int, eps: float):
        super().__init__()
        self.sublayer = sublayer
        self.layer_normalization = CootLayerNorm(dim, eps)

    def forward(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        return self.layer_normalization(self.sublayer(x, *args) + x)


class TransformerEncoderLayer(nn.Module):
    """Attention sublayer then feed-forward sublayer; query may differ from key/value (cross-attention)."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float, eps: float):
        super().__init__()
        self.self_attention_layer = Sublayer(MultiHeadAttention(dim, num_heads, dropout), dim, eps)
        self.pointwise_feedforward_layer = Sublayer(
            PointwiseFeedForward(dim, ff_dim or dim, dropout), dim, eps
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """query (B, Lq, D), key_value (B, Lk, D), pad_mask (B, Lk) True on padding -> (B, Lq, D)."""
        x = self.dropout(self.self_attention_layer(query, key_value, key_value, pad_mask))
        return self.pointwise_feedforward_layer(x)


class TransformerStack(nn.Module):
    """``encoder_layers.N``; self-attention when ``query`` is None, else cross-attention over ``x``."""

    def __init__(self, cfg: CootConfig):
        super().__init__()
        self.encoder_layers = nn.ModuleList(
            TransformerEncoderLayer(
                cfg.hidden_dim, cfg.num_heads, cfg.ff_dim, cfg.dropout, cfg.layer_norm_eps
            )
            for _ in range(cfg.num_layers)
        )

    def forward(
        self, x: torch.Tensor, pad_mask: torch.Tensor, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L, D), pad_mask (B, L), query (B, Lq, D) or None -> (B, Lq or L, D)."""
        out = x if query is None else query
        for layer in self.encoder_layers:
            out = layer(out, x if query is not None else out, pad_mask)
        return out


class GenPool(nn.Module):
    """Attention-aware feature aggregation (AFA; generalized pooling, one softmax per channel group).

    Two-layer MLP per head scores every position; a softmax over the sequence per head and output channel
    weights the features; head h weighs channels [h * D/nh, (h+1) * D/nh).
    """

    def __init__(self, dim: int, hidden_dim: int, num_heads: int, dropout: float):
        super().__init__()
        hidden_dim = hidden_dim or dim
        if hidden_dim % num_heads or dim % num_heads:
            raise ValueError(f"pooler dims {hidden_dim}/{dim} not divisible by {num_heads} heads")
        d_head, d_out = hidden_dim // num_heads, dim // num_heads
        self.genpool_w1_head = nn.Parameter(torch.zeros(num_heads, dim, d_head))
        self.genpool_b1_head = nn.Parameter(torch.zeros(num_heads, d_head))
        self.genpool_w2_head = nn.Parameter(torch.zeros(num_heads, d_head, d_out))
        self.genpool_b2_head = nn.Parameter(torch.zeros(num_heads, d_out))
        self.genpool_one = nn.Parameter(torch.ones(1), requires_grad=False)  # official fixed parameter
        self.activation = nn.GELU()
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), pad_mask (B, L) True on padding -> pooled (B, D)."""
        b, length, d = x.shape
        h = x.unsqueeze(1) @ self.genpool_w1_head.unsqueeze(0) + self.genpool_b1_head[None, :, None]
        h = self.activation(self.dropout1(h))  # (B, nh, L, d_head)
        h = h @ self.genpool_w2_head.unsqueeze(0) + self.genpool_b2_head[None, :, None]
        h = self.dropout2(h)  # (B, nh, L, D/nh)
        h = h.masked_fill(pad_mask[:, None, :, None], -INF)
        weights = self.dropout3(h.softmax(dim=2))  # softmax over the sequence
        weights = weights.transpose(1, 2).reshape(b, length, d)  # (B, L, nh * D/nh)
        return (x * weights).sum(dim=1)


class MultiGenPool(nn.Module):
    """Official wrapper ``pools.0`` (one AFA pool; the official code only works with one)."""

    def __init__(self, dim: int, hidden_dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.pools = nn.ModuleList([GenPool(dim, hidden_dim, num_heads, dropout)])

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        return self.pools[0](x, pad_mask)


class TemporalAvgPool(nn.Module):
    """Official ``avg_special``: sum over positions / real length (padding included unless told not to)."""

    def __init__(self, include_padding: bool):
        super().__init__()
        self.include_padding = include_padding

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), pad_mask (B, L) -> (B, D)."""
        lengths = (~pad_mask).sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)  # (B, 1)
        if not self.include_padding:
            x = x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        return x.sum(dim=1) / lengths


class CootNet(nn.Module):
    """One of the four COOT networks (official ``TransformerLegacy``).

    local: norm_input -> input_fc (Linear + GELU) -> sin-cos positions -> transformer -> AFA pooling.
    global: norm_input -> positions -> transformer -> average pooling, concatenated with the result of a
    cross-attention (``tf_context``) whose single query is the local network's context vector.
    """

    def __init__(self, cfg: CootConfig, input_dim: int, is_global: bool):
        super().__init__()
        self.is_global = is_global
        self.norm_input = CootLayerNorm(input_dim, cfg.layer_norm_eps)
        self.input_fc = None if is_global else InputFC(input_dim, cfg.hidden_dim)
        if is_global and input_dim != cfg.hidden_dim:
            raise ValueError("global network input must equal hidden_dim (no input FC)")
        self.embedding = PositionalEncodingSinCos(cfg.hidden_dim, cfg.max_len)
        self.tf = TransformerStack(cfg)
        self.tf_context = TransformerStack(cfg) if is_global else None
        if is_global:
            self.pooler = TemporalAvgPool(cfg.avg_pool_include_padding)
        else:
            self.pooler = MultiGenPool(
                cfg.hidden_dim, cfg.pooler_hidden_dim, cfg.pooler_num_heads, cfg.dropout
            )
        self.reset_parameters(cfg.init_std)

    def reset_parameters(self, std: float) -> None:
        """Official init: truncated normal (|x| <= 2 std) on weights, biases and AFA; norms stay 1 / 0."""
        for name, p in self.named_parameters():
            if "layer_normalization" in name or "norm_input." in name or "genpool_one" in name:
                continue
            nn.init.trunc_normal_(p.data, std=std, a=-2 * std, b=2 * std)

    def forward(
        self, x: torch.Tensor, pad_mask: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: (B, L, input_dim) features.
            pad_mask: (B, L) bool, True on padded positions (official convention).
            context: (B, hidden) cross-attention query; required by global networks.
        Returns:
            pooled: (B, hidden) local, or (B, 2 * hidden) global = [average pooled ; context attention].
            hidden_states: (B, L, hidden) sequence after the self-attention transformer.
        """
        x = self.norm_input(x)
        if self.input_fc is not None:
            x = self.input_fc(x)
        x = self.tf(self.embedding(x), pad_mask)
        pooled = self.pooler(x, pad_mask)
        if self.tf_context is not None:
            if context is None:
                raise ValueError("a global COOT network needs the context vector")
            ctx = self.tf_context(x, pad_mask, query=context.unsqueeze(1)).squeeze(1)  # (B, hidden)
            pooled = torch.cat([pooled, ctx], dim=-1)
        return pooled, x


# ---------------------------------------------------------------------------------------------------------
# Model wrapper
# ---------------------------------------------------------------------------------------------------------


@dataclass
class CootVideoOutput:
    """COOT video embeddings (not L2-normalised; normalise for cosine retrieval).

    vid_emb: (B, 2 * hidden) = [mean-pooled clip states ; cross-attention with the video context].
    clip_emb: (N_clips, hidden), all videos' clips concatenated in order.
    vid_context: (B, hidden) local network over all frames.
    clip_emb_padded: (B, C_max, hidden), zeros at padding; clip_mask: (B, C_max) bool, True on real clips.
    """

    vid_emb: torch.Tensor
    clip_emb: torch.Tensor
    vid_context: torch.Tensor
    clip_emb_padded: torch.Tensor
    clip_mask: torch.Tensor


@dataclass
class CootTextOutput:
    """COOT text embeddings: par_emb (B, 2 * hidden), sent_emb (N_sents, hidden), par_context (B, hidden),
    sent_emb_padded (B, S_max, hidden), sent_mask (B, S_max) True on real sentences."""

    par_emb: torch.Tensor
    sent_emb: torch.Tensor
    par_context: torch.Tensor
    sent_emb_padded: torch.Tensor
    sent_mask: torch.Tensor


def gather_segments(
    feats: torch.Tensor, ranges: Sequence[Sequence[tuple[int, int]]], lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut every [start, end) range out of its sequence in one gather.

    Args:
        feats: (B, T, D) padded sequences; lengths: (B,) real lengths.
        ranges: per sequence, its segments as half-open (start, end) index pairs.
    Returns:
        seg_feats (N, L_max, D), seg_pad_mask (N, L_max) True on padding, seq_index (N,), slot (N,) the
        segment's position inside its sequence.
    """
    flat = [(b, i, int(s), int(e)) for b, segs in enumerate(ranges) for i, (s, e) in enumerate(segs)]
    if len(ranges) != feats.shape[0]:
        raise ValueError(f"{len(ranges)} range lists for a batch of {feats.shape[0]}")
    if not flat:
        raise ValueError("no segments given")
    info = torch.tensor(flat, dtype=torch.long, device=feats.device)  # (N, 4)
    seq_index, slot, start, end = info.unbind(1)
    seg_len = end - start
    if (seg_len <= 0).any() or (start < 0).any() or (end > lengths[seq_index]).any():
        raise ValueError("every segment needs 0 <= start < end <= sequence length")
    max_len = int(seg_len.max())
    offs = torch.arange(max_len, device=feats.device)  # (L_max,)
    pad_mask = offs[None, :] >= seg_len[:, None]  # (N, L_max)
    idx = (start[:, None] + offs[None, :]).clamp(max=feats.shape[1] - 1)  # (N, L_max)
    seg_feats = feats[seq_index[:, None], idx]  # (N, L_max, D)
    seg_feats = seg_feats.masked_fill(pad_mask.unsqueeze(-1), 0.0)
    return seg_feats, pad_mask, seq_index, slot


def scatter_segments(
    emb: torch.Tensor, seq_index: torch.Tensor, slot: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) segment embeddings -> (B, S_max, D) zero-padded and (B, S_max) bool mask True on real."""
    n_slots = int(slot.max()) + 1
    out = emb.new_zeros(batch_size, n_slots, emb.shape[-1])
    out = out.index_put((seq_index, slot), emb)
    mask = torch.zeros(batch_size, n_slots, dtype=torch.bool, device=emb.device)
    mask[seq_index, slot] = True
    return out, mask


class Coot(nn.Module):
    """The four COOT networks with official names, plus batched encoders and the training loss."""

    def __init__(self, config: CootConfig):
        super().__init__()
        self.config = config
        h = config.hidden_dim
        self.net_video_local = CootNet(config, config.video_feature_dim, is_global=False)
        self.net_video_global = CootNet(config, h, is_global=True)
        self.net_text_local = CootNet(config, config.text_feature_dim, is_global=False)
        self.net_text_global = CootNet(config, h, is_global=True)

    def _encode(
        self,
        local: CootNet,
        global_: CootNet,
        feats: torch.Tensor,
        mask: torch.Tensor | None,
        ranges: Sequence[Sequence[tuple[int, int]]],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = feats.shape
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=feats.device)
        mask = mask.bool()
        lengths = mask.sum(dim=1)
        context, _ = local(feats, ~mask)  # (B, hidden)
        seg_feats, seg_pad, seq_index, slot = gather_segments(feats, ranges, lengths)
        seg_emb, _ = local(seg_feats, seg_pad)  # (N, hidden)
        padded, seg_mask = scatter_segments(seg_emb, seq_index, slot, b)  # (B, S_max, hidden)
        top, _ = global_(padded, ~seg_mask, context)  # (B, 2 * hidden)
        return top, seg_emb, context, padded, seg_mask

    def encode_video(
        self,
        frame_feats: torch.Tensor,
        frame_mask: torch.Tensor | None,
        clip_ranges: Sequence[Sequence[tuple[int, int]]],
    ) -> CootVideoOutput:
        """
        Args:
            frame_feats: (B, T, video_feature_dim) frame features, zero-padded after each video's end.
            frame_mask: (B, T) bool, True on real frames (None: all real).
            clip_ranges: per video, its clips as half-open frame ranges [(start, end), ...] in time order.
        Returns:
            CootVideoOutput (see its docstring for shapes).
        """
        top, seg, ctx, padded, seg_mask = self._encode(
            self.net_video_local, self.net_video_global, frame_feats, frame_mask, clip_ranges
        )
        return CootVideoOutput(
            vid_emb=top, clip_emb=seg, vid_context=ctx, clip_emb_padded=padded, clip_mask=seg_mask
        )

    def encode_text(
        self,
        token_feats: torch.Tensor,
        token_mask: torch.Tensor | None,
        sentence_ranges: Sequence[Sequence[tuple[int, int]]],
    ) -> CootTextOutput:
        """
        Args:
            token_feats: (B, T, text_feature_dim) token features of each paragraph, zero-padded.
            token_mask: (B, T) bool, True on real tokens (None: all real).
            sentence_ranges: per paragraph, its sentences as half-open token ranges.
        Returns:
            CootTextOutput (see its docstring for shapes).
        """
        top, seg, ctx, padded, seg_mask = self._encode(
            self.net_text_local, self.net_text_global, token_feats, token_mask, sentence_ranges
        )
        return CootTextOutput(
            par_emb=top, sent_emb=seg, par_context=ctx, sent_emb_padded=padded, sent_mask=seg_mask
        )

    def compute_loss(self, video: CootVideoOutput, text: CootTextOutput) -> CootLossOutput:
        """Official training loss for a batch of matching (video, paragraph) pairs; see ``coot_loss``."""
        return coot_loss(video, text, self.config)


def build_coot(config: CootConfig) -> Coot:
    """Random-initialised COOT (official init); load weights with models/io.py."""
    return Coot(config)


# ---------------------------------------------------------------------------------------------------------
# Losses (coot/loss_fn.py and RetrievalTrainer)
# ---------------------------------------------------------------------------------------------------------


def margin_contrastive_loss(a: torch.Tensor, b: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Bidirectional hinge loss on cosine similarity, summed over all negatives, divided by N * N.

    a, b: (N, D) embeddings, row i of ``a`` matches row i of ``b`` (L2-normalised here) -> scalar.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    scores = a @ b.t()  # (N, N)
    diag = scores.diag().view(-1, 1)  # (N, 1)
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_b = (margin + scores - diag).clamp(min=0).masked_fill(eye, 0)  # row i: negatives for a_i
    cost_a = (margin + scores - diag.t()).clamp(min=0).masked_fill(eye, 0)  # column j: negatives for b_j
    return (cost_b.sum() + cost_a.sum()) / (a.shape[0] * b.shape[0])


def clustering_loss(a: torch.Tensor, b: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Intra-modal contrastive loss: (L(a, a) + L(b, b)) / 2 keeps different items apart in each modality."""
    return (margin_contrastive_loss(a, a, margin) + margin_contrastive_loss(b, b, margin)) / 2


def _soft_nn(
    source: torch.Tensor, source_mask: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft nearest neighbour of every source item among the targets (proximity = -mean squared distance).

    source (B, Ls, D), target (B, Lt, D), masks True on real -> nn (B, Ls, D), weights (B, Ls, Lt).
    """
    proximity = -((source.unsqueeze(2) - target.unsqueeze(1)) ** 2).mean(dim=-1)  # (B, Ls, Lt)
    both = source_mask.unsqueeze(2) & target_mask.unsqueeze(1)
    weights = proximity.masked_fill(~both, -INF).softmax(dim=-1)
    return weights @ target, weights


def _cycle_index_loss(beta: torch.Tensor, mask: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Squared distance between each item's index and the soft index its cycle returns to.

    beta: (B, L, L) weights of the return trip, mask (B, L) True on real -> scalar (mean over sampled
    positions per sequence, then over the batch; ``num_samples`` positions drawn uniformly, -1 = all).
    """
    length = beta.shape[1]
    idx = torch.arange(length, device=beta.device, dtype=beta.dtype)  # (L,)
    soft_index = (beta * idx).sum(dim=-1)  # (B, L)
    per_item = ((soft_index - idx) ** 2).masked_fill(~mask, 0.0)  # (B, L)
    lengths = mask.sum(dim=1)
    if num_samples == -1:
        return (per_item.sum(dim=1) / lengths).mean()
    # uniform sample without replacement: random keys, masked positions never chosen
    keys = torch.rand(mask.shape, device=beta.device).masked_fill(~mask, 2.0)
    ranks = keys.argsort(dim=1).argsort(dim=1)  # (B, L) rank of each position
    n = lengths.clamp(max=num_samples)  # (B,)
    chosen = ranks < n[:, None]
    return ((per_item * chosen).sum(dim=1) / n).mean()


def cycle_consistency_loss(
    clip_emb: torch.Tensor,
    clip_mask: torch.Tensor,
    sent_emb: torch.Tensor,
    sent_mask: torch.Tensor,
    num_samples: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-modal cycle consistency: clip -> soft NN sentence -> soft NN clip should return to itself.

    Args:
        clip_emb: (B, C, D), sent_emb: (B, S, D) padded sequences (official: not normalised).
        clip_mask: (B, C), sent_mask: (B, S) bool, True on real items.
        num_samples: positions per sequence entering the loss (official 1, drawn at random; -1 = all).
    Returns:
        (clip_clip_loss, sent_sent_loss) scalars.
    """
    clip_sent, _ = _soft_nn(clip_emb, clip_mask, sent_emb, sent_mask)
    _, clip_beta = _soft_nn(clip_sent, clip_mask, clip_emb, clip_mask)
    sent_clip, _ = _soft_nn(sent_emb, sent_mask, clip_emb, clip_mask)
    _, sent_beta = _soft_nn(sent_clip, sent_mask, sent_emb, sent_mask)
    return (
        _cycle_index_loss(clip_beta, clip_mask, num_samples),
        _cycle_index_loss(sent_beta, sent_mask, num_samples),
    )


@dataclass
class CootLossOutput:
    """total = contrastive + cycle; parts are scalars (unweighted) for logging."""

    total: torch.Tensor
    contrastive: torch.Tensor
    cycle: torch.Tensor
    align_high: torch.Tensor
    align_low: torch.Tensor
    align_context: torch.Tensor
    cluster_high: torch.Tensor
    cluster_low: torch.Tensor
    cycle_clip: torch.Tensor
    cycle_sent: torch.Tensor


def coot_loss(video: CootVideoOutput, text: CootTextOutput, cfg: CootConfig) -> CootLossOutput:
    """Official COOT objective for matching (video i, paragraph i) and (clip j, sentence j) pairs.

    Alignment at video-paragraph, clip-sentence and context level plus clustering, weighted as in
    ``cfg``; cycle consistency on the padded clip / sentence sequences weighted by ``weight_cycle``.
    """
    m = cfg.margin
    high = margin_contrastive_loss(video.vid_emb, text.par_emb, m)
    low = margin_contrastive_loss(video.clip_emb, text.sent_emb, m)
    ctx = margin_contrastive_loss(video.vid_context, text.par_context, m)
    c_high = clustering_loss(video.vid_emb, text.par_emb, m)
    c_low = clustering_loss(video.clip_emb, text.sent_emb, m)
    contrastive = cfg.weight_high * high + cfg.weight_low * low + cfg.weight_context * ctx
    contrastive = contrastive + cfg.weight_high_internal * c_high + cfg.weight_low_internal * c_low
    if cfg.weight_context_internal:
        contrastive = contrastive + cfg.weight_context_internal * clustering_loss(
            video.vid_context, text.par_context, m
        )
    cc_clip, cc_sent = cycle_consistency_loss(
        video.clip_emb_padded, video.clip_mask, text.sent_emb_padded, text.sent_mask, cfg.cycle_num_samples
    )
    cycle = cfg.weight_cycle * (cc_clip + cc_sent)
    return CootLossOutput(
        total=contrastive + cycle,
        contrastive=contrastive,
        cycle=cycle,
        align_high=high,
        align_low=low,
        align_context=ctx,
        cluster_high=c_high,
        cluster_low=c_low,
        cycle_clip=cc_clip,
        cycle_sent=cc_sent,
    )
