"""Where a training step's time goes: each pre-training task's step and the fine-tuning step, timed at
several batch sizes, with torch.profiler's busiest operators, the device's busy time (CUDA) and the
host-device syncs the step makes. A step whose device is busy for a small part of its wall time is
bound by launching its work, not by the work: a larger batch then costs little extra time per step.

    python -m training.profile_step [--batch-sizes 16,64,240] [--steps 4] [--smoke] [--data DIR]
        [--device auto] [--json OUT.json]

Data: the smoke fixture's 240 training episodes (tests/data, travels with the repository), or a SynthTV
directory. Inputs are built before the timing (in a training run they are built ahead in workers);
their CPU time is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from training import common
from training.data import draw_episodes
from training.finetune import multitask_inputs
from training.finetune import train_step as finetune_step
from training.pretrain import TASKS, task_inputs
from training.pretrain import train_step as pretrain_step

KINDS = (*TASKS, "finetune")
# operators that make the host wait for the device on CUDA (a tensor read as a Python number; an
# output whose size depends on the values); on the CPU they are only counted
SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero")


def _inputs(kind: str, train, rng, config, batch_size: int, crop_min: float | None):
    if kind == "finetune":
        return multitask_inputs(draw_episodes(train, rng, batch_size), rng, config)
    return task_inputs(kind, draw_episodes(train, rng, batch_size, crop_min), rng, config, "full", False)


def _step(kind: str, model, opt, inp, device):
    if kind == "finetune":
        return finetune_step(model, opt, inp, device)
    return pretrain_step(model, opt, kind, inp, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _syncs(events) -> dict[str, int]:
    """SYNC_OPS calls outside the optimiser step (on the CPU, AdamW reads each parameter's step count
    with .item(); on CUDA its multi-tensor path does not wait)."""
    out: dict[str, int] = {}
    for e in events:
        if e.name not in SYNC_OPS:
            continue
        p = e.cpu_parent
        while p is not None and not p.name.startswith("Optimizer.step"):
            p = p.cpu_parent
        if p is None:
            out[e.name] = out.get(e.name, 0) + 1
    return out


def profile_kind(kind: str, model, opt, train, batch_size: int, steps: int, device, seed: int = 0,
                 crop_min: float | None = None, top: int = 8) -> dict:  # fmt: skip
    """Median wall time of ``steps`` steps of ``kind`` (after one warm-up step), then one profiled step.
    ``crop_min``: pre-training windows as ``training.data.draw_episodes``."""
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    inps = [_inputs(kind, train, rng, model.config, batch_size, crop_min) for _ in range(steps + 2)]
    build_ms = 1000 * (time.perf_counter() - t) / len(inps)
    _step(kind, model, opt, inps[0], device)
    walls = []
    for inp in inps[1:-1]:
        _sync(device)
        t = time.perf_counter()
        _step(kind, model, opt, inp, device)
        _sync(device)
        walls.append(1000 * (time.perf_counter() - t))
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        _step(kind, model, opt, inps[-1], device)
        _sync(device)
    ev = prof.key_averages()
    row = {
        "kind": kind,
        "batch": batch_size,
        "step_ms": round(float(np.median(walls)), 1),
        "build_ms": round(build_ms, 1),
        "aten_ops": sum(e.count for e in ev if e.key.startswith("aten::")),
        "syncs": _syncs(prof.events()),
        "top_cpu": [
            (e.key, round(e.self_cpu_time_total / 1000, 1), e.count)
            for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:top]
        ],
    }
    if device.type == "cuda":
        dev_us = [getattr(e, "self_device_time_total", 0) for e in ev]
        row["device_busy_ms"] = round(sum(dev_us) / 1000, 1)
        row["kernels"] = sum(e.count for e, us in zip(ev, dev_us) if us > 0)
    return row


def main(argv=None) -> int:
    from training.recipe import PRETRAIN_SPEC, SMOKE_FIXTURE

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", default="16,64,240")
    p.add_argument("--steps", type=int, default=4, help="timed steps per kind and batch size")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--smoke", action="store_true", help="the smoke recipe's reduced model")
    p.add_argument("--data", default=None, help="a SynthTV directory (default: the smoke fixture)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = common.resolve_device(a.device)
    kinds = [k for k in a.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        print(f"training.profile_step: unknown kind {bad[0]!r}; one of {', '.join(KINDS)}", file=sys.stderr)
        return 2
    if a.data:
        from training.data import load_split

        train = load_split(a.data)
    else:
        from training.data import load_fixture

        train = load_fixture(SMOKE_FIXTURE)["train"]
    common.set_seed(0)
    model = common.build_app_model(common.app_config(smoke=a.smoke)).to(device).train()
    opt = common.make_optimizer(model, 1e-5, new_lr_mul=10, frame_lr_mul=1)
    rows = []
    for bs in (int(x) for x in a.batch_sizes.split(",")):
        for kind in kinds:
            try:
                r = profile_kind(
                    kind, model, opt, train, bs, a.steps, device, crop_min=PRETRAIN_SPEC["crop_min"]
                )
            except torch.OutOfMemoryError:
                r = {"kind": kind, "batch": bs, "error": "out of memory"}
                torch.cuda.empty_cache()
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "top_cpu"}), file=sys.stderr, flush=True)
            if a.json:  # after every row: a run cut short by its time limit keeps what it measured
                out = Path(a.json)
                tmp = out.with_name(out.name + ".tmp")
                info = {"device": str(device), "torch": torch.__version__, "smoke": a.smoke}
                tmp.write_text(json.dumps({**info, "rows": rows}, indent=1))
                tmp.replace(out)
    busy = device.type == "cuda"
    print(
        "| kind | batch | step ms | device busy ms | inputs ms (CPU) | aten ops | syncs |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        if "error" in r:
            print(f"| {r['kind']} | {r['batch']} | {r['error']} | | | | |")
            continue
        dev = r["device_busy_ms"] if busy else "-"
        print(f"| {r['kind']} | {r['batch']} | {r['step_ms']} | {dev} | {r['build_ms']} | {r['aten_ops']} | "
              f"{sum(r['syncs'].values())} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
