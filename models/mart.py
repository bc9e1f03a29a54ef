"""MART: memory-augmented recurrent transformer for paragraph captioning, one sentence per video segment.

Follows Lei et al., ACL 2020 and the official code (jayleicn/recurrent-transformer; Python 3 port in
simon-ging/coot-videotext ``mart/``). Module names match the official ``RecursiveTransformer`` /
``NonRecurTransformer`` state dicts (including the spelling ``memory_initilizer``). Also here: the word
``Vocab`` and the step input builder; decoding (greedy and beam, key/value cache) is in
``models/mart_decoding.py``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MartConfig:
    """MART hyper-parameters (official names). Defaults are COOT+MART on YouCook2 (yc2_100m_coot_vidclip_mart):
    per segment one input vector [COOT video embedding 768 ; COOT clip embedding 384] = 1152-d, so
    ``max_v_len`` = 3 ([CLS] [VID] [SEP]). ``vocab_size`` must be set from the vocabulary."""

    model_type: str = "mart"  # models/io.py registry key
    vocab_size: int = 0  # len(Vocab); ids 0..6 are the special tokens
    hidden_size: int = 768
    num_attention_heads: int = 12
    num_hidden_layers: int = 2
    intermediate_size: int = 768  # must equal hidden_size (the official memory layer assumes it)
    word_vec_size: int = 300  # word embedding width before word_fc (GloVe size in the paper)
    video_feature_size: int = 1152
    max_v_len: int = 3  # [CLS] + video tokens + [SEP] (+ padding)
    max_t_len: int = 22  # [BOS] + words + [EOS] (+ padding)
    n_memory_cells: int = 1
    memory_dropout_prob: float = 0.1
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    label_smoothing: float = 0.1
    share_wd_cls_weight: bool = False  # tie classifier to word embeddings (needs word_vec_size == hidden)
    recurrent: bool = True  # False: the non-recurrent ablation (each sentence decoded on its own)
    vocab: dict | None = None  # Vocab.to_dict(), so that config.json carries the words (see for_vocab)

    @property
    def max_position_embeddings(self) -> int:
        return self.max_v_len + self.max_t_len

    @classmethod
    def small(cls) -> MartConfig:
        """The official architecture shrunk, as used for the parity reference."""
        return cls(
            vocab_size=50,
            hidden_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            intermediate_size=64,
            word_vec_size=32,
            video_feature_size=24,
            max_v_len=4,
            max_t_len=8,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MartConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown MartConfig fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def for_vocab(cls, vocab: Vocab, **kwargs) -> MartConfig:
        """A config whose vocab_size and stored words come from ``vocab``."""
        return cls(vocab_size=len(vocab), vocab=vocab.to_dict(), **kwargs)

    def get_vocab(self) -> Vocab | None:
        return Vocab.from_dict(self.vocab) if self.vocab is not None else None


# ---------------------------------------------------------------------------------------------------------
# Building blocks (BERT-style, official names)
# ---------------------------------------------------------------------------------------------------------


def gelu(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def sinusoid_table(max_len: int, dim: int) -> torch.Tensor:
    """Standard transformer sinusoids, (max_len, dim)."""
    pe = torch.zeros(max_len, dim)
    position = torch.arange(max_len).float().unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2).float() * -(math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


class PositionEncoding(nn.Module):
    """Adds the fixed table ``pe`` (in the state dict, as official)."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(max_len, dim))

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, L, D); positions (L,) indices into the table (default 0..L-1) -> (N, L, D)."""
        pe = self.pe[: x.shape[-2]] if positions is None else self.pe[positions]
        return x + pe


class BertSelfAttention(nn.Module):
    """Multi-head attention ``query``/``key``/``value``; 0/1 mask turned into -10000 additive, as official."""

    def __init__(self, cfg: MartConfig):
        super().__init__()
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        self.num_heads = cfg.num_attention_heads
        self.head_size = cfg.hidden_size // cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.attention_probs_dropout_prob)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        return x.view(n, length, self.num_heads, self.head_size).transpose(1, 2)  # (N, nh, L, dh)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q (N, nh, Lq, dh), k/v (N, nh, Lk, dh) projected heads; mask (N, Lq, Lk) 1 = visible -> (N, Lq, D)."""
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)  # (N, nh, Lq, Lk)
        scores = scores + (1 - mask.unsqueeze(1).to(scores.dtype)) * -10000.0
        probs = self.dropout(scores.softmax(dim=-1))
        ctx = (probs @ v).transpose(1, 2)  # (N, Lq, nh, dh)
        return ctx.reshape(ctx.shape[0], ctx.shape[1], -1)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor):
        """query (N, Lq, D), key/value (N, Lk, D), mask (N, Lq, Lk) with 1 = may attend -> (N, Lq, D)."""
        q = self.heads(self.query(query))
        return self.attend(q, self.heads(self.key(key)), self.heads(self.value(value)), mask)


class BertSelfOutput(nn.Module):
    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    """Self-attention (``self``) + projection, residual and LayerNorm (``output``)."""

    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (N, L, D), mask (N, L, L) -> (N, L, D)."""
        return self.output(self.self(x, x, x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


def make_pad_shifted_mask(input_mask: torch.Tensor, max_v_len: int, max_t_len: int, memory_len: int = 0):
    """Attention mask of the joint sequence [memory ; video ; text].

    Video queries see memory + video; text query i sees memory + video + text <= i; padded keys hidden.
    input_mask: (N, M + L) 1 on valid keys -> (N, L, M + L) with L = max_v_len + max_t_len.
    """
    n, seq_len = input_mask.shape
    if memory_len + max_v_len + max_t_len != seq_len:
        raise ValueError(f"mask of length {seq_len} != {memory_len} + {max_v_len} + {max_t_len}")
    shifted = input_mask.new_zeros(n, max_v_len + max_t_len, seq_len)
    shifted[:, :, : memory_len + max_v_len] = 1
    shifted[:, max_v_len:, memory_len + max_v_len :] = torch.tril(input_mask.new_ones(max_t_len, max_t_len))
    return shifted * input_mask.unsqueeze(1)


class MemoryInitializer(nn.Module):
    """Initial memory: masked mean of the video states + a learned bias per cell -> Linear -> LayerNorm."""

    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.n_memory_cells = cfg.n_memory_cells
        self.init_memory_bias = nn.Parameter(torch.randn(1, cfg.n_memory_cells, 1))  # (1, M, 1)
        self.init_memory_fc = nn.Sequential(
            nn.Linear(cfg.hidden_size, cfg.hidden_size),
            nn.LayerNorm(cfg.hidden_size, eps=1e-12),  # official: default eps, not the config's
            nn.Dropout(cfg.memory_dropout_prob),
        )

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states (N, L, D), mask (N, L) 1 on the positions to pool -> memory (N, M, D)."""
        mask = mask.to(states.dtype)
        pooled = (states * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)  # (N, D)
        pooled = pooled.unsqueeze(1).expand(-1, self.n_memory_cells, -1) + self.init_memory_bias  # (N, M, D)
        return self.init_memory_fc(pooled)


@dataclass
class MemoryUpdate:
    """memory: (N, M, D) updated memory; gate: (N, M, D) update gate z in [0, 1] (1 keeps the old memory)."""

    memory: torch.Tensor
    gate: torch.Tensor


class MemoryUpdater(nn.Module):
    """Gated update: S = MHA(m, H, H); C = tanh(W_mc m + W_sc S); Z = sigmoid(W_mz m + W_sz S);
    m' = (1 - Z) * C + Z * m."""

    def __init__(self, cfg: MartConfig):
        super().__init__()
        d = cfg.hidden_size
        self.memory_update_attention = BertSelfAttention(cfg)
        self.mc = nn.Linear(d, d, bias=False)
        self.sc = nn.Linear(d, d, bias=True)
        self.mz = nn.Linear(d, d, bias=False)
        self.sz = nn.Linear(d, d, bias=True)

    def forward(self, prev_m: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> MemoryUpdate:
        """prev_m (N, M, D), states (N, L, D) all of this step's positions, mask (N, L) 1 = valid."""
        update_mask = mask.unsqueeze(1).expand(-1, prev_m.shape[1], -1)  # (N, M, L)
        s_t = self.memory_update_attention(prev_m, states, states, update_mask)  # (N, M, D)
        c_t = torch.tanh(self.mc(prev_m) + self.sc(s_t))
        z_t = torch.sigmoid(self.mz(prev_m) + self.sz(s_t))
        return MemoryUpdate(memory=(1 - z_t) * c_t + z_t * prev_m, gate=z_t)


@dataclass
class LayerOutput:
    """hidden: (N, L, D); memory: (N, M, D) updated memory or None; gate: (N, M, D) or None."""

    hidden: torch.Tensor
    memory: torch.Tensor | None
    gate: torch.Tensor | None


class BertLayerWithMemory(nn.Module):
    """Masked self-attention, then memory-augmented attention over [previous memory ; states]."""

    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.max_v_len, self.max_t_len = cfg.max_v_len, cfg.max_t_len
        self.attention = BertAttention(cfg)
        self.memory_initilizer = MemoryInitializer(cfg)
        self.memory_updater = MemoryUpdater(cfg)
        self.memory_augmented_attention = BertSelfAttention(cfg)
        self.hidden_intermediate = BertIntermediate(cfg)
        self.memory_projection = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.output = BertOutput(cfg)

    def init_memory(self, intermediate: torch.Tensor, input_mask: torch.Tensor) -> torch.Tensor:
        """First step: memory from the video part only, as the text is what will be generated."""
        video_only = input_mask.clone()
        video_only[:, self.max_v_len :] = 0
        return self.memory_initilizer(intermediate, video_only)

    def forward(
        self, prev_m: torch.Tensor | None, hidden: torch.Tensor, input_mask: torch.Tensor
    ) -> LayerOutput:
        """prev_m (N, M, D) or None at the first step, hidden (N, L, D), input_mask (N, L) 1 = valid."""
        self_mask = make_pad_shifted_mask(input_mask, self.max_v_len, self.max_t_len)  # (N, L, L)
        attention_output = self.attention(hidden, self_mask)
        intermediate = self.hidden_intermediate(attention_output)
        if prev_m is None:
            prev_m = self.init_memory(intermediate, input_mask)
        update = self.memory_updater(prev_m, intermediate, input_mask)  # sees the whole step, text included
        concat_mh = torch.cat([prev_m, intermediate], dim=1)  # (N, M + L, D)
        n, m = prev_m.shape[:2]
        raw_mask = torch.cat([input_mask.new_ones(n, m), input_mask], dim=-1)  # (N, M + L)
        mem_mask = make_pad_shifted_mask(
            raw_mask, self.max_v_len, self.max_t_len, memory_len=m
        )  # (N, L, M+L)
        mem_out = self.memory_augmented_attention(intermediate, concat_mh, concat_mh, mem_mask)
        layer_output = self.output(self.memory_projection(mem_out), attention_output)
        return LayerOutput(hidden=layer_output, memory=update.memory, gate=update.gate)


class BertLayerNoMemory(nn.Module):
    """Non-recurrent layer (ablation). ``memory_intermediate`` is unused, kept for official state dicts."""

    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.max_v_len, self.max_t_len = cfg.max_v_len, cfg.max_t_len
        self.attention = BertAttention(cfg)
        self.hidden_intermediate = BertIntermediate(cfg)
        self.memory_intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, prev_m: None, hidden: torch.Tensor, input_mask: torch.Tensor) -> LayerOutput:
        self_mask = make_pad_shifted_mask(input_mask, self.max_v_len, self.max_t_len)
        attention_output = self.attention(hidden, self_mask)
        intermediate = self.hidden_intermediate(attention_output)
        return LayerOutput(hidden=self.output(intermediate, attention_output), memory=None, gate=None)


class BertEncoder(nn.Module):
    """``layer.N``, with or without memory."""

    def __init__(self, cfg: MartConfig):
        super().__init__()
        layer_cls = BertLayerWithMemory if cfg.recurrent else BertLayerNoMemory
        self.layer = nn.ModuleList(layer_cls(cfg) for _ in range(cfg.num_hidden_layers))


def _embedding_mlp(in_dim: int, cfg: MartConfig) -> nn.Sequential:
    """LayerNorm, Dropout, Linear, ReLU, LayerNorm (weights at indices 0, 2, 4)."""
    return nn.Sequential(
        nn.LayerNorm(in_dim, eps=cfg.layer_norm_eps),
        nn.Dropout(cfg.hidden_dropout_prob),
        nn.Linear(in_dim, cfg.hidden_size),
        nn.ReLU(True),
        nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps),
    )


class BertEmbeddingsWithVideo(nn.Module):
    """word_fc(word) + video_embeddings(video feature) + token type, then sinusoid positions and LayerNorm.

    Video positions carry [VID] words and real features; text positions carry words and zero features.
    """

    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.word_vec_size, padding_idx=0)
        self.word_fc = _embedding_mlp(cfg.word_vec_size, cfg)
        self.video_embeddings = _embedding_mlp(cfg.video_feature_size, cfg)
        self.position_embeddings = PositionEncoding(cfg.hidden_size, cfg.max_position_embeddings)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor,
        video_features: torch.Tensor,
        token_type_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (N, L), video_features (N, L, Dv), token_type_ids (N, L), positions (L,) -> (N, L, D)."""
        x = self.word_fc(self.word_embeddings(input_ids))
        x = x + self.video_embeddings(video_features) + self.token_type_embeddings(token_type_ids)
        x = self.position_embeddings(x, positions)
        return self.dropout(self.LayerNorm(x))


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, cfg: MartConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    """transform (dense, GELU, LayerNorm) -> ``decoder`` (no bias) + ``bias`` -> vocabulary logits."""

    def __init__(self, cfg: MartConfig, tied_weight: nn.Parameter | None = None):
        super().__init__()
        self.transform = BertPredictionHeadTransform(cfg)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if tied_weight is not None:
            self.decoder.weight = tied_weight
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x)) + self.bias


class LabelSmoothingLoss(nn.Module):
    """KL(smoothed target || model), summed over the non-ignored tokens (official reduction: sum).

    The target puts 1 - eps on the true word and eps / (V - 1) on every word (the true one included,
    as official). ``one_hot`` (1, V) is a buffer so that official state dicts load.
    """

    def __init__(self, label_smoothing: float, vocab_size: int, ignore_index: int = -1):
        super().__init__()
        if not 0.0 < label_smoothing <= 1.0:
            raise ValueError("label_smoothing must be in (0, 1]")
        self.ignore_index = ignore_index
        self.confidence = 1.0 - label_smoothing
        self.register_buffer("one_hot", torch.full((1, vocab_size), label_smoothing / (vocab_size - 1)))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (T, V), target (T,) with ``ignore_index`` on ignored positions -> scalar sum."""
        valid = target != self.ignore_index
        target = target[valid]
        log_probs = F.log_softmax(logits[valid], dim=-1)
        smoothed = self.one_hot.repeat(target.shape[0], 1).scatter(1, target.unsqueeze(1), self.confidence)
        return F.kl_div(log_probs, smoothed, reduction="sum")


# ---------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------


@dataclass
class MartStepOutput:
    """One recurrence step. memory: per layer (N, M, D) after this step (None when not recurrent);
    gates: per layer (N, M, D) update gates; hidden: (N, L, D) last layer; prediction_scores: (N, L, V)."""

    memory: list[torch.Tensor] | None
    gates: list[torch.Tensor] | None
    hidden: torch.Tensor
    prediction_scores: torch.Tensor


@dataclass
class MartOutput:
    """loss: scalar caption loss summed over steps (None without labels); prediction_scores: per step
    (N, L, V); memory: per layer (N, M, D) after the last step; memories: per step, per layer."""

    loss: torch.Tensor | None
    prediction_scores: list[torch.Tensor]
    memory: list[torch.Tensor] | None
    memories: list[list[torch.Tensor] | None]


class Mart(nn.Module):
    """Recurrent (``RecursiveTransformer``) or non-recurrent (``NonRecurTransformer``) captioning transformer.

    Each step is one video segment: the joint sequence [CLS] [VID]... [SEP] [BOS] words [EOS] (padded to
    max_v_len + max_t_len) with the segment's features at the [VID] positions. The memory (one per layer)
    is carried from step to step; the prediction at text position i scores the word at i + 1.
    """

    def __init__(self, config: MartConfig):
        super().__init__()
        if config.vocab_size <= 7:
            raise ValueError("MartConfig.vocab_size must be set from the vocabulary")
        if config.intermediate_size != config.hidden_size:
            raise ValueError("MART requires intermediate_size == hidden_size")
        if config.vocab is not None and len(config.vocab["words"]) != config.vocab_size:
            raise ValueError("MartConfig.vocab and vocab_size disagree")
        self.config = config
        self.embeddings = BertEmbeddingsWithVideo(config)
        self.encoder = BertEncoder(config)
        tied = self.embeddings.word_embeddings.weight if config.share_wd_cls_weight else None
        self.decoder = BertLMPredictionHead(config, tied)
        if config.label_smoothing > 0:
            self.loss_func = LabelSmoothingLoss(config.label_smoothing, config.vocab_size, ignore_index=-1)
        else:
            self.loss_func = nn.CrossEntropyLoss(ignore_index=-1)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """Official BERT init: N(0, initializer_range) for Linear/Embedding, zero biases, unit LayerNorms."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward_step(
        self,
        prev_ms: Sequence[torch.Tensor | None] | None,
        input_ids: torch.Tensor,
        video_features: torch.Tensor,
        input_masks: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> MartStepOutput:
        """
        Args:
            prev_ms: per layer (N, M, D) memory from the previous step, or None at the first step.
            input_ids: (N, L) token ids, L = max_v_len + max_t_len.
            video_features: (N, L, Dv) features at video positions, zeros elsewhere.
            input_masks: (N, L) 1.0 on valid positions.
            token_type_ids: (N, L) 0 on the video part, 1 on the text part.
        Returns:
            MartStepOutput (the inputs are not modified).
        """
        hidden = self.embeddings(input_ids, video_features, token_type_ids)  # (N, L, D)
        n_layers = len(self.encoder.layer)
        prev_ms = list(prev_ms) if prev_ms is not None else [None] * n_layers
        memory, gates = [], []
        input_masks = input_masks.to(hidden.dtype)
        for i, layer in enumerate(self.encoder.layer):
            out = layer(prev_ms[i] if self.config.recurrent else None, hidden, input_masks)
            hidden = out.hidden
            memory.append(out.memory)
            gates.append(out.gate)
        recurrent = self.config.recurrent
        return MartStepOutput(
            memory=memory if recurrent else None,
            gates=gates if recurrent else None,
            hidden=hidden,
            prediction_scores=self.decoder(hidden),
        )

    def caption_loss(self, prediction_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """prediction_scores (N, L, V), labels (N, L) with -1 on ignored positions -> scalar."""
        return self.loss_func(prediction_scores.reshape(-1, self.config.vocab_size), labels.reshape(-1))

    def forward(
        self,
        input_ids_list: Sequence[torch.Tensor],
        video_features_list: Sequence[torch.Tensor],
        input_masks_list: Sequence[torch.Tensor],
        token_type_ids_list: Sequence[torch.Tensor],
        input_labels_list: Sequence[torch.Tensor] | None = None,
    ) -> MartOutput:
        """Teacher-forced pass over all steps (segments) of a batch of videos.

        Args: per step s, tensors as in ``forward_step``; labels (N, L) with -1 where ignored (video part,
            padding, and whole padded steps of videos with fewer segments).
        Returns:
            MartOutput; loss = sum over steps of the step's (label-smoothed) loss, as official.
        """
        prev_ms = None
        scores, memories = [], []
        for s in range(len(input_ids_list)):
            out = self.forward_step(
                prev_ms,
                input_ids_list[s],
                video_features_list[s],
                input_masks_list[s],
                token_type_ids_list[s],
            )
            prev_ms = out.memory
            scores.append(out.prediction_scores)
            memories.append(out.memory)
        loss = None
        if input_labels_list is not None:
            loss = sum(self.caption_loss(sc, lab) for sc, lab in zip(scores, input_labels_list))
        return MartOutput(loss=loss, prediction_scores=scores, memory=prev_ms, memories=memories)


def build_mart(config: MartConfig) -> Mart:
    """Random-initialised MART (official BERT init); load weights with models/io.py."""
    return Mart(config)


# ---------------------------------------------------------------------------------------------------------
# Vocabulary (word level, pure Python; saved inside config.json through to_dict / from_dict)
# ---------------------------------------------------------------------------------------------------------

# Official special tokens, in the official id order (RecursiveCaptionDataset): ids 0..6.
SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[VID]", "[BOS]", "[EOS]", "[UNK]")
PAD, CLS, SEP, VID, BOS, EOS, UNK = range(7)
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


class Vocab:
    """Word vocabulary: ids 0..6 are [PAD] (padding), [CLS] (sequence start), [SEP] (video/text separator),
    [VID] (video feature placeholder), [BOS] / [EOS] (sentence bounds), [UNK] (out-of-vocabulary word);
    then words sorted alphabetically. Text is lower-cased and split into words and punctuation marks."""

    def __init__(self, words: Sequence[str]):
        if tuple(words[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary starts with {SPECIAL_TOKENS}")
        self.words = list(words)
        self.word2idx = {w: i for i, w in enumerate(self.words)}

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return _TOKEN_RE.findall(text.lower())

    @classmethod
    def build(cls, captions: Sequence[str], min_count: int = 1, max_size: int | None = None) -> Vocab:
        """Words seen at least ``min_count`` times (the most frequent ``max_size`` if given)."""
        counts = Counter(w for c in captions for w in cls.tokenize(c))
        kept = [w for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS]
        if max_size is not None:
            kept = sorted(kept, key=lambda w: (-counts[w], w))[:max_size]
        return cls(list(SPECIAL_TOKENS) + sorted(kept))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Word ids of a caption, without [BOS] / [EOS]."""
        return [self.word2idx.get(w, UNK) for w in self.tokenize(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Words up to the first [EOS], special tokens dropped, joined by spaces (as the official metrics)."""
        words = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIAL_TOKENS) and i < len(self.words):
                words.append(self.words[i])
        return " ".join(words)

    def to_dict(self) -> dict:
        return {"words": list(self.words)}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(d["words"])


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------


@dataclass
class MartStepInputs:
    """One step (segment) for a batch of N videos; L = max_v_len + max_t_len.

    input_ids (N, L) long; video_features (N, L, Dv); input_masks (N, L) float 1 = valid;
    token_type_ids (N, L) long; labels (N, L) long, -1 where ignored (the word at i + 1 otherwise).
    """

    input_ids: torch.Tensor
    video_features: torch.Tensor
    input_masks: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor

    def index_select(self, index: torch.Tensor) -> MartStepInputs:
        """Rows picked (or repeated) along the batch dimension."""
        return MartStepInputs(**{f.name: getattr(self, f.name).index_select(0, index) for f in fields(self)})


def make_step_inputs(
    cfg: MartConfig,
    video_feats: torch.Tensor,
    video_mask: torch.Tensor | None = None,
    sentences: Sequence[Sequence[int] | None] | None = None,
) -> MartStepInputs:
    """Build one step's joint sequence [CLS] [VID]*k [SEP] [PAD].. [BOS] words [EOS] [PAD]..

    Args:
        video_feats: (N, K, Dv) the segment's features, K <= max_v_len - 2 (COOT+MART: K = 1, the
            [video ; clip] embedding).
        video_mask: (N, K) bool True on real features, left-aligned (None: all real).
        sentences: per video the caption's word ids (``Vocab.encode``; truncated to max_t_len - 2), or
            None for a video without this step (labels all -1). None: text left empty, for decoding.
    """
    n, k, dv = video_feats.shape
    lv, lt = cfg.max_v_len, cfg.max_t_len
    if k > lv - 2:
        raise ValueError(f"{k} video features do not fit max_v_len {lv} ([CLS] and [SEP] included)")
    dev = video_feats.device
    if video_mask is None:
        video_mask = torch.ones(n, k, dtype=torch.bool, device=dev)
    n_valid = video_mask.sum(dim=1)  # (N,)
    pos = torch.arange(lv + lt, device=dev)  # (L,)
    ids = torch.full((n, lv + lt), PAD, dtype=torch.long, device=dev)
    ids[:, 0] = CLS
    is_vid = (pos[None, :] >= 1) & (pos[None, :] <= n_valid[:, None])  # (N, L)
    ids[is_vid] = VID
    ids[torch.arange(n, device=dev), n_valid + 1] = SEP
    masks = (pos[None, :] <= n_valid[:, None] + 1).float()  # (N, L): CLS, VIDs, SEP
    feats = video_feats.new_zeros(n, lv + lt, dv)
    feats[:, 1 : k + 1] = video_feats * video_mask.unsqueeze(-1)
    token_type = (pos >= lv).long().expand(n, -1).clone()
    labels = torch.full((n, lv + lt), -1, dtype=torch.long, device=dev)
    if sentences is not None:
        for i, words in enumerate(sentences):
            if words is None:
                continue
            text = [BOS, *list(words)[: lt - 2], EOS]
            ids[i, lv : lv + len(text)] = torch.tensor(text, device=dev)
            masks[i, lv : lv + len(text)] = 1.0
            labels[i, lv : lv + len(text) - 1] = torch.tensor(text[1:], device=dev)
    return MartStepInputs(ids, feats, masks, token_type, labels)
