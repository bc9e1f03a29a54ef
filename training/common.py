"""Shared training plumbing: the app model's builder, seeds, optimiser + schedule, autocast, logs.

``build_app_model`` is hero-mini with both head sets (models.hero.HeroForApp): cross-modal
transformer from the bundled MiniLM, word embeddings frozen at MiniLM's (not stored in checkpoints).
``smoke_config`` is a reduced hero-mini (2 cross-modal layers = MiniLM's first two, 1 temporal layer)
that trains on 2 CPU cores in minutes.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from models.hero import HeroConfig, HeroForApp, build_hero, hero_mini_config
from models.io import WEIGHTS_NAME, minilm_dir, minilm_to_hero_state

# new parameters (not from MiniLM / pre-training) learn faster in fine-tuning (official TVQA lr_mul)
QA_HEAD_PREFIXES = ("qa_pool", "qa_pred_head", "st_ed_pool", "st_ed_pred_head")
# initialised from the bundled MiniLM by build_app_model (the rest starts random)
MINILM_PREFIXES = (
    "v_encoder.f_encoder.encoder.",
    "v_encoder.f_encoder.embeddings.",
    "v_encoder.f_encoder.pooler.",
)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def app_config(smoke: bool = False, concept_tokens: int = 0) -> HeroConfig:
    cfg = hero_mini_config(head="app")
    cfg.minilm_word_embeddings = True
    cfg.concept_tokens = concept_tokens
    cfg.max_clip_len = 100
    if smoke:
        cfg.f_config.num_hidden_layers = 2
        cfg.c_config.num_hidden_layers = 1
    return cfg


@torch.no_grad()
def build_app_model(config: HeroConfig, init_minilm: bool = True) -> HeroForApp:
    """HeroForApp with its cross-modal layers (the first ``num_hidden_layers`` of MiniLM), text
    position/type embeddings and embedding LayerNorm from the bundled MiniLM."""
    model = build_hero(config)
    if not init_minilm:
        return model
    own = dict(model.named_parameters())
    n = config.f_config.num_hidden_layers
    for k, v in minilm_to_hero_state(load_file(str(minilm_dir() / WEIGHTS_NAME))).items():
        if ".encoder.layer." in k and int(k.split(".encoder.layer.")[1].split(".")[0]) >= n:
            continue
        if k not in own:
            continue  # the frozen word table is filled by HeroForApp itself
        if own[k].shape != v.shape and not k.endswith("token_type_embeddings.weight"):
            raise ValueError(f"{k}: MiniLM {tuple(v.shape)} != model {tuple(own[k].shape)}")
        own[k].copy_(v.expand_as(own[k]).to(own[k].dtype))
    return model


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float = 0.01,
    head_lr_mul: float = 1.0,
    new_lr_mul: float = 1.0,
):
    """AdamW (official betas 0.9/0.98, wd 0.01; no decay on biases/LayerNorm); QA heads x head_lr_mul;
    parameters not initialised from MiniLM (frame embedder, temporal transformer, other heads) x
    new_lr_mul (pre-training from the MiniLM init)."""
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = 0.0 if (p.ndim < 2 or "LayerNorm" in name) else weight_decay
        if name.startswith(QA_HEAD_PREFIXES):
            mul = head_lr_mul
        else:
            mul = 1.0 if name.startswith(MINILM_PREFIXES) else new_lr_mul
        groups.setdefault((decay, mul), []).append(p)
    params = [{"params": ps, "weight_decay": d, "lr": lr * m, "lr_mul": m} for (d, m), ps in groups.items()]
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98))


def set_lr(opt: torch.optim.Optimizer, base_lr: float, step: int, total: int, warmup: float = 0.1) -> float:
    """Linear warm-up then linear decay to 0 (official HERO schedule)."""
    w = max(1, int(total * warmup))
    f = step / w if step < w else max(0.0, (total - step) / max(1, total - w))
    for g in opt.param_groups:
        g["lr"] = base_lr * g.get("lr_mul", 1.0) * f
    return base_lr * f


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Log:
    """Step log (JSON lines in memory, dumped to DIR/log.json) + optional loss-curve PNG."""

    def __init__(self, out_dir: str | Path | None, name: str):
        self.out = Path(out_dir) if out_dir else None
        self.name = name
        self.rows: list[dict] = []
        self.t0 = time.perf_counter()

    def add(self, step: int, **values) -> None:
        row = {"step": step, "time": round(time.perf_counter() - self.t0, 2)}
        row.update(
            {
                k: (round(float(v), 5) if isinstance(v, (float, int, np.floating)) else v)
                for k, v in values.items()
            }
        )
        self.rows.append(row)

    def save(self, extra: dict | None = None) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"{self.name}_log.json").write_text(json.dumps({"rows": self.rows, **(extra or {})}))
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        keys = sorted({k for r in self.rows for k in r if k.startswith("loss")})
        if not keys:
            return
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in keys:
            pts = [
                (r["step"], r[k]) for r in self.rows if k in r and r[k] is not None and math.isfinite(r[k])
            ]
            if pts:
                xs, ys = zip(*pts)
                ys = np.convolve(ys, np.ones(min(20, len(ys))) / min(20, len(ys)), mode="valid")
                ax.plot(xs[len(xs) - len(ys) :], ys, label=k)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (moving avg 20)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.set_title(self.name)
        fig.tight_layout()
        fig.savefig(self.out / f"{self.name}_loss.png", dpi=80)
        plt.close(fig)


class StepBudget:
    """Step counter whose total is fixed after a calibration when a time budget is given: the
    first ``calib`` steps are timed (first 3 skipped) and the total becomes what fits in
    ``budget_s`` (capped at ``max_steps``), so the learning-rate schedule still ends at 0."""

    def __init__(self, max_steps: int, budget_s: float | None = None, calib: int = 15):
        self.total, self.budget, self.calib = max_steps, budget_s, calib

    def __iter__(self):
        step, t0 = 0, time.perf_counter()
        while step < self.total:
            if step == 3:
                t0 = time.perf_counter()
            if self.budget and step == self.calib:
                per = (time.perf_counter() - t0) / (self.calib - 3)
                self.total = min(self.total, max(self.calib + 1, int(self.budget / per)))
            yield step
            step += 1


def progress(iterable, total: int, desc: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, mininterval=2.0)
