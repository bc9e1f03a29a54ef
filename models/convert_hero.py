"""Convert an official HERO checkpoint (.pt state dict) into model.safetensors + config.json.

    python -m models.convert_hero OFFICIAL.pt OUT_DIR [--config OFFICIAL_CONFIG.json]
        [--head vcmr|videoqa|pretraining] [--real-vocab-size N] [--fp16]

The checkpoint is read with ``torch.load(weights_only=True)`` (no code runs). The official loader's
renames are applied here once: LayerNorm ``gamma``/``beta`` -> ``weight``/``bias``, a leading
``roberta.`` stripped; the non-tensor ``vocab_padded`` flag is dropped (it only says the RoBERTa
vocabulary 50265 was padded to a multiple of 8). Sizes come from the tensor shapes; attention head
counts (invisible in shapes) from the official-format model config JSON, by default the released
config/hero_finetune.json (12 heads everywhere). Anything not understood stops the conversion with
the list of offending keys.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

from models.hero import HeroConfig, TransformerConfig, build_hero
from models.io import load_weights, save_pretrained

ROBERTA_VOCAB = 50265
RELEASED_HEADS = {"f_config": 12, "c_config": 12, "q_config": 12}
_KNOWN_NON_TENSORS = {"vocab_padded"}


class ConversionError(ValueError):
    """The checkpoint holds something this converter does not understand."""


def rename_official_keys(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Apply the official loader's renames. Returns (tensors, extras) where extras holds the known
    non-tensor entries; raises ConversionError on unknown non-tensor entries."""
    tensors, extras, bad = {}, {}, []
    for k, v in sd.items():
        if k in _KNOWN_NON_TENSORS:
            extras[k] = v
            continue
        if not isinstance(v, torch.Tensor):
            bad.append(f"{k} ({type(v).__name__})")
            continue
        parts = k.split(".")
        parts = ["weight" if p == "gamma" else "bias" if p == "beta" else p for p in parts]
        if parts[0] == "roberta":
            parts = parts[1:]
        tensors[".".join(parts)] = v
    if bad:
        raise ConversionError(f"non-tensor entries not understood: {bad}")
    return tensors, extras


def _n_layers(sd: dict, prefix: str) -> int:
    idx = {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if idx and idx != set(range(len(idx))):
        raise ConversionError(f"{prefix}*: layer indices {sorted(idx)} are not 0..n-1")
    return len(idx)


def _need(sd: dict, key: str) -> torch.Tensor:
    if key not in sd:
        raise ConversionError(f"required tensor {key!r} missing: not a HERO checkpoint?")
    return sd[key]


def infer_config(
    sd: dict[str, torch.Tensor],
    official_config: dict | None = None,
    head: str | None = None,
    vocab_padded: bool | None = None,
    real_vocab_size: int | None = None,
) -> HeroConfig:
    """HeroConfig from renamed official tensors + (optional) official-format config JSON dict."""
    oc = official_config or {}
    f = "v_encoder.f_encoder."
    c = "v_encoder.c_encoder."
    word = _need(sd, f + "embeddings.word_embeddings.weight")
    vocab, hid = word.shape
    if head is None:
        head = (
            "videoqa"
            if "qa_pool.weight" in sd
            else "vcmr"
            if "q_feat_attn.modular_vector_mapping.weight" in sd
            else None
        )
        if head is None:
            raise ConversionError("neither VCMR/VSM nor QA heads found; pass --head")

    def tcfg(name: str, prefix: str, n_layers: int, max_pos: int, type_vocab: int, hidden: int, inter: int):
        o = dict(oc.get(name, {}))
        heads = o.get("num_attention_heads", RELEASED_HEADS[name])
        for key, val in (("hidden_size", hidden), ("num_hidden_layers", n_layers)):
            if key in o and o[key] != val:
                raise ConversionError(f"{name}.{key}={o[key]} in the config but {val} in the checkpoint")
        if hidden % heads:
            raise ConversionError(f"{name}: hidden {hidden} not divisible by {heads} heads")
        return TransformerConfig(
            hidden_size=hidden,
            num_hidden_layers=n_layers,
            num_attention_heads=heads,
            intermediate_size=inter,
            hidden_act=o.get("hidden_act", "gelu"),
            hidden_dropout_prob=o.get("hidden_dropout_prob", 0.1),
            attention_probs_dropout_prob=o.get("attention_probs_dropout_prob", 0.1),
            max_position_embeddings=max_pos,
            type_vocab_size=type_vocab,
            vocab_size=vocab,
            initializer_range=o.get("initializer_range", 0.02),
            layer_norm_eps=o.get("layer_norm_eps", 1e-12),
        )

    nf = _n_layers(sd, f + "encoder.layer.")
    f_inter = _need(sd, f + "encoder.layer.0.intermediate.dense.weight").shape[0] if nf else 4 * hid
    fc = tcfg(
        "f_config",
        f,
        nf,
        _need(sd, f + "embeddings.position_embeddings.weight").shape[0],
        _need(sd, f + "embeddings.token_type_embeddings.weight").shape[0],
        hid,
        f_inter,
    )
    nc = _n_layers(sd, c + "encoder.layer.")
    c_hid = _need(sd, c + "embeddings.position_embeddings.weight").shape[1]
    c_inter = sd[c + "encoder.layer.0.intermediate.dense.weight"].shape[0] if nc else 4 * c_hid
    cc = tcfg("c_config", c, nc, sd[c + "embeddings.position_embeddings.weight"].shape[0], 2, c_hid, c_inter)
    q_pos = sd.get("q_feat_attn.query_pos_embed.position_embeddings.weight")
    q_hid = q_pos.shape[1] if q_pos is not None else c_hid
    q_inter = oc.get("q_config", {}).get("intermediate_size", 4 * q_hid)
    qc = tcfg("q_config", "q_feat_attn.", 0, q_pos.shape[0] if q_pos is not None else 514, 1, q_hid, q_inter)

    if real_vocab_size is None:
        real_vocab_size = ROBERTA_VOCAB if (vocab_padded or vocab_padded is None) and vocab == 50272 else None
    conv = sd.get("video_st_predictor.weight")
    return HeroConfig(
        head=head,
        f_config=fc,
        c_config=cc,
        q_config=qc,
        vfeat_dim=_need(sd, f + "img_embeddings.img_linear.weight").shape[1],
        max_frm_seq_len=_need(sd, f + "img_embeddings.position_embeddings.weight").shape[0],
        max_clip_len=_need(sd, "v_encoder.fom_output.linear_2.weight").shape[0],
        real_vocab_size=real_vocab_size,
        conv_kernel_size=conv.shape[-1] if conv is not None else 5,
    )


def convert_state_dict(
    sd: dict, official_config: dict | None = None, head: str | None = None, real_vocab_size: int | None = None
):
    """Official state dict -> (model with the weights loaded, HeroConfig). Raises ConversionError."""
    tensors, extras = rename_official_keys(sd)
    config = infer_config(tensors, official_config, head, extras.get("vocab_padded"), real_vocab_size)
    model = build_hero(config)
    try:
        load_weights(model, tensors, strict=True)
    except ValueError as e:
        raise ConversionError(str(e)) from e
    return model, config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="official .pt state dict")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--config", type=Path, help="official-format model config JSON (f/c/q_config)")
    ap.add_argument("--head", choices=["vcmr", "videoqa", "pretraining"])
    ap.add_argument("--real-vocab-size", type=int)
    ap.add_argument("--fp16", action="store_true", help="store weights in float16")
    a = ap.parse_args(argv)
    try:
        sd = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unreadable file in one line
        print(f"{a.checkpoint}: cannot read as a weights-only torch checkpoint: {e}", file=sys.stderr)
        return 2
    for nest in ("model_state_dict", "state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(nest), dict):
            sd = sd[nest]
    if not isinstance(sd, dict):
        print(f"{a.checkpoint}: not a state dict", file=sys.stderr)
        return 2
    oc = json.loads(a.config.read_text()) if a.config else None
    try:
        model, config = convert_state_dict(sd, oc, a.head, a.real_vocab_size)
    except ConversionError as e:
        print(f"{a.checkpoint}: {e}", file=sys.stderr)
        return 2
    save_pretrained(model, a.out_dir, config, dtype=torch.float16 if a.fp16 else None)
    print(f"wrote {a.out_dir}/model.safetensors and config.json ({config.head})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
