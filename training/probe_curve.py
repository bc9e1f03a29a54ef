"""Held-out probe curve: pre-train the smoke model on chosen tasks at a constant lr and print the
held-out FOM / VSM probe (``training.pretrain.probe``) every N steps. This is the CPU experiment
behind training/RESULTS.md "FOM and VSM on the CPU" (which settings let FOM and VSM learn at all).

    python -m training.probe_curve --tasks fom --batch-size 16 --lr 1e-4 --new-lr-mul 10 \
        --frame-lr-mul 1 --crop-min 0.5 --steps 300 --every 100      # FOM 0.148 / 0.331 / 0.377
    ... --tasks vsm --steps 100 --every 50                           # VSM video 0.112 / 0.104
    ... --temporal-from-minilm 2 --steps 400 --every 50              # FOM 0.241 at 400 (session 8)

With ``--temporal-pos-std 0.02`` (the official init) FOM needed ~800 steps for 0.253 (session 7;
training/RESULTS.md "Sessions 10-11").
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from training import common
from training.data import draw_episodes, load_fixture
from training.pretrain import probe, task_inputs, train_step


@torch.no_grad()
def temporal_from_minilm(model, first_layer: int) -> None:
    """Copy MiniLM's layers first_layer, first_layer + 1, ... into the temporal transformer's layers,
    and MiniLM's position table and embedding LayerNorm into its embeddings (an experiment)."""
    from safetensors.torch import load_file

    from models.io import WEIGHTS_NAME, minilm_dir

    bert = load_file(str(minilm_dir() / WEIGHTS_NAME))
    own = dict(model.named_parameters())
    c = "v_encoder.c_encoder."
    for k, v in bert.items():
        if k.startswith("encoder.layer."):
            i, rest = k[len("encoder.layer.") :].split(".", 1)
            j = int(i) - first_layer  # the temporal layer it initialises
            if j >= 0 and f"{c}encoder.layer.{j}.{rest}" in own:
                own[f"{c}encoder.layer.{j}.{rest}"].copy_(v)
        elif k in (
            "embeddings.position_embeddings.weight",
            "embeddings.LayerNorm.weight",
            "embeddings.LayerNorm.bias",
        ):
            own[c + k].copy_(v)


def main(argv=None) -> int:
    from training.recipe import SMOKE_FIXTURE

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", default=str(SMOKE_FIXTURE))
    p.add_argument("--tasks", default="fom", help="comma-separated; steps cycle through them")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--new-lr-mul", type=float, default=10.0)
    p.add_argument("--frame-lr-mul", type=float, default=None)
    p.add_argument("--crop-min", type=float, default=None)
    p.add_argument("--vsm-per-video", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temporal-pos-std", type=float, default=common.TEMPORAL_POS_STD,
                   help="std of the temporal position table's init (official HERO: 0.02)")  # fmt: skip
    p.add_argument("--temporal-from-minilm", type=int, default=None, metavar="LAYER",
                   help="initialise the temporal transformer from MiniLM layers LAYER.. and its position "
                   "table (the official HERO leaves it random)")  # fmt: skip
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    d = load_fixture(a.fixture)
    train, val = d["train"], d["val"]
    common.set_seed(a.seed)
    model = common.build_app_model(common.app_config(smoke=True), temporal_pos_std=a.temporal_pos_std)
    if a.temporal_from_minilm is not None:
        temporal_from_minilm(model, a.temporal_from_minilm)
    opt = common.make_optimizer(model, a.lr, new_lr_mul=a.new_lr_mul, frame_lr_mul=a.frame_lr_mul)
    tasks = a.tasks.split(",")
    rng = np.random.default_rng(a.seed)
    model.train()
    t0, rows = time.time(), {}
    for step in range(a.steps):
        task = tasks[step % len(tasks)]
        eps = draw_episodes(train, rng, a.batch_size, a.crop_min)
        inp = task_inputs(task, eps, rng, model.config, "full", False, a.vsm_per_video)
        if inp is None:
            continue
        out = train_step(model, opt, task, inp, torch.device("cpu"))
        rows.setdefault(task, []).append((float(out["loss"].detach()), float(out["acc"])))
        if (step + 1) % a.every == 0:
            pr = probe(model, val, "cpu")
            recent = {k: np.mean(v[-a.every // len(tasks) :], 0).round(3).tolist() for k, v in rows.items()}
            print(json.dumps({"step": step + 1, "s": round(time.time() - t0), "train_loss_acc": recent,
                              **{k: round(v, 3) for k, v in pr.items()}}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
