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
# the new parameters that embed frames for the cross-modal and the temporal transformer
FRAME_PREFIXES = (
    "v_encoder.frame_transform.",
    "v_encoder.f_encoder.img_embeddings.",
    "v_encoder.mask_embedding.",
)
# the temporal transformer's position table starts at unit scale (PyTorch's nn.Embedding default)
# instead of the official N(0, 0.02): it is added to fused frames of norm ~15 (per-dimension RMS
# ~0.75), so at 0.02 position is ~3 % of the input and FOM, which must read positions, sits at
# chance for hundreds of steps (training/RESULTS.md "Sessions 10-11")
TEMPORAL_POS_STD = 1.0


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def app_config(smoke: bool = False, concept_tokens: int = 0) -> HeroConfig:
    cfg = hero_mini_config(head="app")
    cfg.minilm_word_embeddings = True
    cfg.qa_text_encoder = True  # QA at chance without it (training/RESULTS.md, "QA memorisation")
    cfg.concept_tokens = concept_tokens
    cfg.max_clip_len = 100
    cfg.asr_hold_s = 3.0  # the app holds Whisper's lines as SynthTV's run on (RESULTS "Session 12")
    cfg.min_pred_l = 1  # SynthTV's moments are 2-4 frames; official 2 caps R1@0.7 (RESULTS "Session 13")
    if smoke:
        cfg.f_config.num_hidden_layers = 2
        cfg.c_config.num_hidden_layers = 1
    return cfg


@torch.no_grad()
def build_app_model(
    config: HeroConfig, init_minilm: bool = True, temporal_pos_std: float = TEMPORAL_POS_STD
) -> HeroForApp:
    """HeroForApp with its cross-modal layers (the first ``num_hidden_layers`` of MiniLM), text
    position/type embeddings and embedding LayerNorm from the bundled MiniLM; the temporal position
    table drawn from N(0, ``temporal_pos_std``)."""
    model = build_hero(config)
    model.v_encoder.c_encoder.embeddings.position_embeddings.weight.normal_(0.0, temporal_pos_std)
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
    frame_lr_mul: float | None = None,
):
    """AdamW (official betas 0.9/0.98, wd 0.01; no decay on biases/LayerNorm); QA heads x head_lr_mul;
    parameters not initialised from MiniLM (temporal transformer, query encoder, other heads) x
    new_lr_mul (pre-training from the MiniLM init); the frame embedders x frame_lr_mul (None: as
    new_lr_mul; at 10x FOM stays at chance: training/RESULTS.md "FOM and VSM on the CPU")."""
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = 0.0 if (p.ndim < 2 or "LayerNorm" in name) else weight_decay
        if name.startswith(QA_HEAD_PREFIXES):
            mul = head_lr_mul
        elif name.startswith(MINILM_PREFIXES):
            mul = 1.0
        elif name.startswith(FRAME_PREFIXES) and frame_lr_mul is not None:
            mul = frame_lr_mul
        else:
            mul = new_lr_mul
        groups.setdefault((decay, mul), []).append(p)
    params = [{"params": ps, "weight_decay": d, "lr": lr * m, "lr_mul": m} for (d, m), ps in groups.items()]
    # fused: one kernel over all parameters (CPU and CUDA); the per-parameter loop took 119 ms a step
    # for hero-mini on 2 cores, the fused update 29 ms (training/RESULTS.md "Session 9")
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), fused=True)


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


@contextlib.contextmanager
def held_fixed(params):
    """Inside the block ``params`` take no gradient (those that were trainable); after it they are
    trainable again, also when the block raises (an interrupted run leaves the model as it found it)."""
    held = [p for p in params if p.requires_grad]
    for p in held:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in held:
            p.requires_grad_(True)


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
        keys = sorted({k for r in self.rows for k in r if k.startswith("loss")})
        if not keys:
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # no matplotlib (not a requirement): a plain SVG
            (self.out / f"{self.name}_loss.svg").write_text(loss_svg(self.rows, keys, self.name))
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


def loss_svg(rows: list[dict], keys: list[str], title: str, w: int = 640, h: int = 360) -> str:
    """Loss curves (moving average of 5, log scale, one polyline per key) as a standalone SVG."""
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
    series = {}
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float)) and r[k] > 0]
        if pts:
            xs, ys = zip(*pts)
            n = min(5, len(ys))
            ys = np.convolve(np.log10(ys), np.ones(n) / n, mode="valid")
            series[k] = (xs[len(xs) - len(ys) :], ys)
    if not series:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"/>'
    x0, x1 = min(min(x) for x, _ in series.values()), max(max(x) for x, _ in series.values())
    y0, y1 = min(min(y) for _, y in series.values()), max(max(y) for _, y in series.values())
    px = lambda x: 50 + (w - 60) * (x - x0) / max(x1 - x0, 1e-9)  # noqa: E731
    py = lambda y: h - 30 - (h - 60) * (y - y0) / max(y1 - y0, 1e-9)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">',
           f'<text x="{w / 2}" y="15" text-anchor="middle">{title}: loss (moving avg 5, log10)</text>',
           f'<text x="5" y="{py(y1) + 4:.0f}">{10**y1:.3g}</text><text x="5" y="{py(y0):.0f}">{10**y0:.3g}</text>',
           f'<text x="50" y="{h - 10}">step {x0}</text><text x="{w - 80}" y="{h - 10}">step {x1}</text>']  # fmt: skip
    for i, (k, (xs, ys)) in enumerate(series.items()):
        c = colours[i % len(colours)]
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{pts}"/>')
        out.append(f'<text x="{w - 150}" y="{30 + 14 * i}" fill="{c}">{k}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


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


class _StepInputs(torch.utils.data.Dataset):
    def __init__(self, make, seed: int, n: int):
        self.make, self.seed, self.n = make, seed, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, step: int):
        return self.make(step, np.random.default_rng([self.seed, step]))


def step_inputs(make, seed: int, max_steps: int, workers: int = 0):
    """``make(step, rng)`` for step = 0, 1, ... in order, each with its own generator seeded by
    (seed, step), so a run draws the same batches with or without workers. With ``workers`` > 0
    the inputs are built ahead in forked worker processes while the GPU runs the previous steps."""
    ds = _StepInputs(make, seed, max_steps)
    if workers <= 0:
        return (ds[i] for i in range(max_steps))
    return iter(
        torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=workers, prefetch_factor=4, multiprocessing_context="fork"
        )
    )


def training_steps(make, seed: int, steps: int, opt, lr: float, log: Log, desc: str, show_progress: bool = True,
                   workers: int = 0, budget_s: float | None = None, deadline: float | None = None):  # fmt: skip
    """The training loop's bookkeeping: yields (step, total steps, ``make``'s inputs, lr) with the
    schedule's lr set on ``opt`` and a progress bar; ``budget_s`` fits the total to a time budget
    (``StepBudget``); past ``deadline`` (time.time()) it logs the stop and ends."""
    sched = StepBudget(steps, budget_s)
    bar = progress(None, steps, desc, show_progress)
    for step, inp in zip(sched, step_inputs(make, seed, steps, workers)):
        bar.total = sched.total
        bar.update(1)
        if deadline is not None and time.time() > deadline:
            log.add(step, stopped="deadline")
            return
        yield step, sched.total, inp, set_lr(opt, lr, step, sched.total)


def progress(iterable, total: int, desc: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, mininterval=2.0)
