"""Recipes: one training run (pre-train -> fine-tune -> evaluate), the CPU smoke recipe, the GPU recipe.

    # one run (any machine); time budgets in seconds fix the step counts after a short calibration
    python -m training.recipe run --name main --train DIR --eval test=DIR,comp=DIR --out OUT \
        [--pretrain-s 120] [--finetune-s 180] [--tasks mlm,mnce,fom,vsm] [--no-pretrain] \
        [--variant full|sub_only|video_only|flat] [--concepts 3] [--save] [--init CHECKPOINT_DIR] \
        [--finetune-tasks vcmr,qa] [--qa-per-video 3] [--qa-videos N] [--freeze-cross [--cross-top K]] \
        [--qa-in-subtitles]
    # the nine ablations at the smoke scale (CPU), resumable, a table over seeds
    python -m training.recipe ablate [--runs full_short,no_pretrain,...] [--seeds 0,1] [--finetune-steps N] [--same-mix] \
        [--train DIR --val DIR [--val-count N] [--also comp=DIR,novel=DIR]] [--concepts 3]   # default: the fixture
    # smoke: reduced model, CPU, minutes (tests/test_training.py runs the same functions)
    python -m training.recipe smoke [--out OUT] [--seed S] [--train DIR --val DIR]   # default: tests/data fixture
    # the GPU recipe (a lent H100, one command): generate SynthTV, train main + concept variant,
    # baselines, pick the app checkpoint; or the ablations; or fine-tune main + concepts further
    python -m training.recipe gpu --stage main|ablations|continue --work DIR --out OUT --limit-s 540
    # join the GPU call's returned parts into the app checkpoint (+ model card)
    python -m training.recipe assemble --parts /work/.device/N --out assets/hero-mini
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from training import common

ROOT = Path(__file__).resolve().parent.parent
SMOKE_FIXTURE = ROOT / "tests" / "data" / "synthtv_smoke.npz"  # the CPU smoke data (write_smoke_fixture)
# the CPU smoke recipe (reduced model, tests/data fixture): what was measured is in training/RESULTS.md
SMOKE = {
    "pretrain_steps": 60,
    # then FOM and VSM over the cached cross-modal outputs (pretrain(freeze_cross=True))
    "cached_steps": 500,
    "cached_batch_size": 16,
    "cached_ratio": {"fom": 1, "vsm": 1},
    "finetune_steps": 20,
    "batch_size": 6,
    "lr": 1e-4,
    "spec": {"new_lr_mul": 10, "frame_lr_mul": 1, "crop_min": 0.5},  # as the GPU runs (PRETRAIN_SPEC)
    "ratio": {"mlm": 1, "mnce": 1, "vsm": 3},  # MLM and MNCE fall within ~10 steps each
    "vsm_per_video": 5,  # subtitle queries per video, as the official VsmDataset (was 8 until session 18)
    "finetune_lr": 3e-4,
    "finetune_tasks": ("vcmr", "qa"),
    "hard_from": None,  # 5 in-batch negatives < the hard pool (20): "hard" would only weigh them x10
    "qa_per_video": 1,  # a QA question costs 5 passes over its video's frames (the step's main cost)
}


def _wait_for(path: Path, deadline: float) -> bool:
    while not (path / "episodes.jsonl").is_file():
        if time.time() > deadline:
            return False
        time.sleep(2)
    return True


def run(a) -> dict:
    """One training run; writes OUT/results.json (+ the checkpoint with --save)."""
    from models.io import save_pretrained
    from training.data import load_split
    from training.evaluate import evaluate
    from training.finetune import finetune
    from training.pretrain import OFFICIAL_RATIO, pretrain, probe

    t_start = time.time()
    deadline = t_start + a.limit_s if a.limit_s else None
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    common.set_seed(a.seed)
    dev = common.resolve_device(a.device)
    if dev.type == "cuda":
        # the CPU side is small glue (batch building, copies): many OpenMP threads per process
        # spin against each other and the generator's workers (seen: 0.6 s/step on an H100)
        torch.set_num_threads(a.threads)
    workers = a.workers if a.workers is not None else (4 if dev.type == "cuda" else 0)
    res: dict = {"name": a.name, "args": vars(a), "device": str(dev)}

    def save_res():
        (out / "results.json").write_text(json.dumps(res, indent=1))

    if a.init:  # go on from a checkpoint (its config, concept tokens included; fresh optimiser)
        from models.io import load_pretrained

        model = load_pretrained(a.init).float().to(dev)
        if a.concepts:  # switch concept tokens on for a checkpoint trained without (same weights)
            model.config.concept_tokens = a.concepts
        k = model.config.concept_tokens
    else:
        k = a.concepts
        model = common.build_app_model(common.app_config(smoke=a.smoke, concept_tokens=k)).to(dev)
    if a.qa_in_subtitles:  # the official TVQA input from now on (also for an --init checkpoint)
        model.config.qa_in_subtitles = True
    layers = len(model.v_encoder.f_encoder.encoder.layer)
    if a.cross_top > layers:  # refused before the data loads (minutes for a large split)
        raise SystemExit(
            f"recipe run: --cross-top {a.cross_top} exceeds the model's {layers} cross-modal layers"
        )
    t = time.time()
    train = load_split(a.train, concepts=k)
    res["load_train_s"] = round(time.time() - t, 1)
    res["n_train"] = len(train)
    tasks = [x for x in a.tasks.split(",") if x]
    ratio = {x: OFFICIAL_RATIO[x] for x in tasks}
    log_pt = common.Log(out, "pretrain")
    if not a.no_pretrain and ratio:
        pretrain(model, train, a.pretrain_steps, a.batch_size, a.lr_pretrain, ratio, a.variant, k > 0, dev,
                 a.seed, deadline, log_pt, show_progress=a.progress, budget_s=a.pretrain_s,
                 workers=workers, crop_min=a.crop_min, new_lr_mul=a.new_lr_mul,
                 frame_lr_mul=a.frame_lr_mul)  # fmt: skip
        log_pt.save()
        res["pretrain_steps"] = len(log_pt.rows)
    log_ft = common.Log(out, "finetune")
    finetune(model, train, a.finetune_steps, a.batch_size, a.lr, a.variant, k > 0, dev, a.seed + 1, deadline,
             log_ft, show_progress=a.progress, budget_s=a.finetune_s, workers=workers,
             tasks=a.finetune_tasks, qa_per_video=a.qa_per_video, freeze_cross=a.freeze_cross,
             qa_videos=a.qa_videos, cross_top=a.cross_top)  # fmt: skip
    log_ft.save()
    res["finetune_steps"] = len(log_ft.rows)
    res["train_s"] = round(time.time() - t_start, 1)
    if a.save:
        save_pretrained(model, out / "model", dtype=torch.float16)
    save_res()
    for item in [x for x in a.eval.split(",") if x]:
        name, _, path = item.partition("=")
        if deadline and not _wait_for(Path(path), deadline - 20):
            res.setdefault("skipped", []).append(name)
            continue
        try:
            eps = load_split(path, concepts=k)
            res[name] = evaluate(model, eps, a.variant, k > 0, dev)
            if name in ("val", "test") and "probe" not in res:
                res["probe"] = probe(model, eps, dev, batch_size=32, variant=a.variant, concepts=k > 0)
        except Exception:  # keep the other splits' numbers
            res[name] = {"error": traceback.format_exc()[-2000:]}
        save_res()
    res["total_s"] = round(time.time() - t_start, 1)
    save_res()
    return res


# ------------------------------------------------------------------------------------------------
# GPU recipe


GEN = {"train": 3000, "val": 200, "test": 500, "comp": 500, "novel": 500}
# every GPU run's pre-training (session 7, CPU evidence in training/RESULTS.md "FOM and VSM on the
# CPU"): temporal transformer, query encoder and heads at 10x the MiniLM lr, frame embedders at 1x
# (at 10x FOM stays at chance), random windows of >= half of each video (on whole videos FOM
# memorises the training frames' positions). Not yet run on a GPU.
PRETRAIN_SPEC = {"new_lr_mul": 10, "frame_lr_mul": 1, "crop_min": 0.5}
MAIN_RUNS = {"main": {}, "concepts": {"concepts": 3}}
ABLATIONS = {
    "full_short": {},
    "no_pretrain": {"no_pretrain": True},
    "no_mlm": {"tasks": "mnce,fom,vsm"},
    "no_mnce": {"tasks": "mlm,fom,vsm"},
    "no_fom": {"tasks": "mlm,mnce,vsm"},
    "no_vsm": {"tasks": "mlm,mnce,fom"},
    "flat": {"variant": "flat"},
    "sub_only": {"variant": "sub_only"},
    "video_only": {"variant": "video_only"},
}
ABLATION_BATCH = 32


def _generate(split: str, count: int, work: Path, log) -> subprocess.Popen:
    if (work / split / "episodes.jsonl").is_file():  # already there (a re-run): keep it
        return subprocess.Popen(["true"])
    cmd = [sys.executable, "-m", "synthtv", "generate", "--split", split, "--seed-start", "0", "--count",
           str(count), "--out", str(work / split), "--device", "cuda", "--quiet", "--batch-frames", "2048", "--workers", "12"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def _run_cmd(name: str, spec: dict, work: Path, out: Path, pretrain_s: float, finetune_s: float,
             limit_s: float, save: bool, splits=("test", "novel", "comp", "val")) -> list[str]:  # fmt: skip
    cmd = [sys.executable, "-m", "training.recipe", "run", "--name", name, "--train", str(work / "train"),
           "--eval", ",".join(f"{s}={work / s}" for s in splits), "--out", str(out / name),
           "--pretrain-s", str(pretrain_s), "--finetune-s", str(finetune_s), "--limit-s", str(limit_s),
           "--no-progress"]  # fmt: skip
    if save:
        cmd.append("--save")
    for k, v in spec.items():
        if v is True:
            cmd.append(f"--{k.replace('_', '-')}")
        else:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    return cmd


def _score(r: dict, split: str) -> float | None:
    s = r.get(split, {})
    try:
        return (s["svmr"]["R1@0.5"] + s["vcmr"]["R1@0.5"] + s["qa"]["accuracy"]) / 3
    except (KeyError, TypeError):
        return None


def gpu(a) -> int:
    """The whole GPU call: generation, parallel runs, baselines, packing into OUT (<= 8 files)."""
    t0 = time.time()
    work, out = Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = work / ("runs_continue" if a.stage == "continue" else "runs")
    summary: dict = {"stage": a.stage, "gen": {}, "torch": torch.__version__,
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}  # fmt: skip
    glog = open(out / "log.txt", "a")

    def note(msg):
        line = f"[{time.time() - t0:6.1f}s] {msg}"
        print(line, flush=True)
        glog.write(line + "\n")
        glog.flush()

    def dump():
        (out / "summary.json").write_text(json.dumps(summary, indent=1))

    # one process per run: a single run is bound by its own step latency, not by the GPU, so runs
    # side by side come almost free. Ablations run at a smaller batch so that nine fit in the GPU's
    # memory (at 64, four of nine ran out; beside the generator, which holds ~15 GB, so did main)
    ships = a.stage in ("main", "continue")
    if a.stage == "continue":  # main's checkpoints (WORK/runs/NAME/model), fine-tuned for the whole budget
        init = {k: work / "runs" / k / "model" for k in MAIN_RUNS}
        runs = {k: {**v, "init": str(init[k]), "no_pretrain": True} for k, v in MAIN_RUNS.items()
                if (init[k] / "model.safetensors").is_file()}  # fmt: skip
        if not runs:
            note(f"no checkpoint under {work / 'runs'}/*/model: run --stage main first")
            return 2
    elif ships:
        runs = MAIN_RUNS
    else:
        runs = {k: {**v, "batch_size": ABLATION_BATCH} for k, v in ABLATIONS.items()}
    runs = {k: {**PRETRAIN_SPEC, **v} for k, v in runs.items()}
    counts = dict(GEN)
    if a.train_count:
        counts["train"] = a.train_count
    # train first (everything waits on it), then the evaluation splits while training runs
    t = time.time()
    p = _generate("train", counts["train"], work, glog)
    p.wait()
    note(f"generated train {counts['train']} in {time.time() - t:.1f}s rc={p.returncode}")
    summary["gen"]["train"] = json.loads((work / "train" / "meta.json").read_text())
    left = a.limit_s - (time.time() - t0)
    eval_s = 75 if ships else 60
    train_s = left - eval_s - 25
    pt_s, ft_s = (0.0, train_s) if a.stage == "continue" else (0.4 * train_s, 0.6 * train_s)
    procs = {}
    for name, spec in runs.items():
        cmd = _run_cmd(name, spec, work, runs_dir, pt_s, ft_s, left - 10, save=ships)
        if a.dry:  # plumbing check on a CPU: reduced model, 2 steps each
            cmd += [
                "--smoke",
                "--pretrain-steps",
                "2",
                "--finetune-steps",
                "2",
                "--batch-size",
                "2",
                "--device",
                "cpu",
            ]
            cmd = [c for c in cmd if c not in ("--pretrain-s", "--finetune-s", str(pt_s), str(ft_s))]
        env = {**os.environ, "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
        procs[name] = subprocess.Popen(
            cmd, stdout=open(work / f"{name}.log", "w"), stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
        note(f"started {name}: pretrain {pt_s:.0f}s finetune {ft_s:.0f}s")
    gens = []
    for split in ("val", "test", "comp", "novel"):
        t = time.time()
        g = _generate(split, counts[split], work, glog)
        g.wait()
        note(f"generated {split} {counts[split]} in {time.time() - t:.1f}s")
        summary["gen"][split] = json.loads((work / split / "meta.json").read_text())
        gens.append(split)
    dump()
    if a.stage == "main" and a.baselines:
        bl = {}
        for split in ("test", "comp", "novel"):
            try:
                r = subprocess.run([sys.executable, "-m", "training.baselines", "--train", str(work / "val"),
                                    "--test", str(work / split), "--json", "--device", "cpu" if a.dry else "cuda"],
                                   capture_output=True, text=True, cwd=ROOT,
                                   timeout=max(10, a.limit_s - (time.time() - t0) - 120))  # fmt: skip
                bl[split] = json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-1500:]}
                note(f"baselines {split} rc={r.returncode}")
            except subprocess.TimeoutExpired:
                bl[split] = {"error": "timeout"}
                note(f"baselines {split} timed out")
        summary["baselines"] = bl
        dump()
    for name, pr in procs.items():
        try:
            pr.wait(timeout=max(1, a.limit_s - (time.time() - t0) - 5))
        except subprocess.TimeoutExpired:
            pr.kill()
        res_path = runs_dir / name / "results.json"
        summary.setdefault("runs", {})[name] = (
            json.loads(res_path.read_text()) if res_path.is_file() else None
        )
        for log_name in ("pretrain", "finetune"):
            lp = runs_dir / name / f"{log_name}_log.json"
            if lp.is_file():
                summary.setdefault("logs", {}).setdefault(name, {})[log_name] = json.loads(lp.read_text())[
                    "rows"
                ]
        tail = (work / f"{name}.log").read_text()[-3000:] if (work / f"{name}.log").is_file() else ""
        summary.setdefault("run_tail", {})[name] = tail
        note(f"{name} done rc={pr.returncode}")
    dump()
    if ships:
        # ship the concept variant only if it is better on novel without losing on test (issue item 6)
        r = summary.get("runs", {})
        m, c = r.get("main") or {}, r.get("concepts") or {}
        choice = "main"
        sn_m, sn_c, st_m, st_c = _score(m, "novel"), _score(c, "novel"), _score(m, "test"), _score(c, "test")
        if None not in (sn_m, sn_c, st_m, st_c) and sn_c > sn_m and st_c >= st_m - 0.005:
            choice = "concepts"
        if not (runs_dir / choice / "model" / "model.safetensors").is_file():
            choice = "main" if (runs_dir / "main" / "model" / "model.safetensors").is_file() else None
        summary["shipped"] = choice
        if choice:
            import shutil

            src = runs_dir / choice / "model"
            shutil.copy(src / "config.json", out / "config.json")
            data = (src / "model.safetensors").read_bytes()
            part = 15 * 2**20
            for i in range(0, len(data), part):
                (out / f"model.safetensors.part{i // part}").write_bytes(data[i : i + part])
            summary["model_bytes"] = len(data)
        for name in ("main", "concepts"):
            png = runs_dir / name / "finetune_loss.png"
            if png.is_file() and name == (choice or "main"):
                (out / "finetune_loss.png").write_bytes(png.read_bytes())
    if a.stage == "main":
        try:
            write_smoke_fixture(work, out / "synthtv_smoke.npz")
        except Exception:
            summary["smoke_fixture_error"] = traceback.format_exc()[-1500:]
    summary["total_s"] = round(time.time() - t0, 1)
    dump()
    note("done")
    return 0


def write_smoke_fixture(work: Path, path: Path, n_train: int = 240, n_val: int = 128) -> None:
    """The smoke test's data: the first episodes of WORK/train and WORK/val, records + features as
    int8 with per-row scales, lzma-compressed (read by ``training.data.fixture_splits``). 240 + 128
    episodes are about 7 MB; fewer (48) training episodes are memorised, not generalised from, and 32
    held-out episodes (251 VSM queries) put the VSM probe's bar (chance + 2 s.e.) at 0.093, which even
    the shipped checkpoint barely clears, against 0.078 with 128 (training/RESULTS.md "Session 18")."""
    import lzma

    import numpy as np

    from synthtv.generate import load_features, read_episodes
    from training.data import quantise_features

    arrays = {}
    for split, n in (("train", n_train), ("val", n_val)):
        recs = read_episodes(work / split)[:n]
        q, scale = quantise_features(np.concatenate([load_features(work / split, r) for r in recs]))
        arrays[f"{split}_records"] = np.frombuffer(json.dumps(recs).encode(), dtype=np.uint8)
        arrays[f"{split}_features_xz"] = np.frombuffer(lzma.compress(q.tobytes(), preset=9), np.uint8)
        arrays[f"{split}_features_scale"] = scale
        arrays[f"{split}_features_shape"] = np.array(q.shape, np.int64)
    np.savez_compressed(path, **arrays)


def smoke_train(train, val, seed: int = 0, out=None, show_progress: bool = True, variant: str = "full",
                tasks=("mlm", "mnce", "fom", "vsm"), finetune_steps: int | None = None,
                finetune_batch: int | None = None, freeze_cross: bool = False, finetune_tasks=None,
                cached_vsm: bool = True, concepts: int = 0):  # fmt: skip
    """The smoke recipe (SMOKE) on the reduced model: pre-train (MLM, MNCE, VSM on the whole model,
    then FOM and VSM over the cached cross-modal outputs), the held-out probe of the pre-training tasks on
    ``val``, then fine-tune. Returns (pretrain Log, finetune Log, probe dict); with ``out`` the logs
    and loss curves are saved there. tests/test_training.py runs exactly this. ``variant``, ``tasks``
    (pre-training tasks kept; none = no pre-training) and the fine-tuning's steps, batch, tasks and
    ``freeze_cross`` serve the ablations (``ablate``); the cached phase needs the full input for VSM,
    so other variants keep FOM there (``cached_vsm=False``: every variant does). ``concepts`` K > 0: the
    concept variant from the start, K concept names per frame beside its subtitle (episodes loaded
    with ``concepts=K``)."""
    from training.finetune import finetune
    from training.pretrain import pretrain, probe

    common.set_seed(seed)
    model = common.build_app_model(common.app_config(smoke=True, concept_tokens=concepts))
    bs, lr, n1 = SMOKE["batch_size"], SMOKE["lr"], SMOKE["pretrain_steps"]
    ck = concepts > 0
    lp = common.Log(out, "pretrain")
    ratio = {k: v for k, v in SMOKE["ratio"].items() if k in tasks}
    if ratio:
        lp = pretrain(model, train, n1, bs, lr, ratio, variant, ck, seed=seed, vsm_per_video=SMOKE["vsm_per_video"],
                      show_progress=show_progress, log=lp, **SMOKE["spec"])  # fmt: skip
    # FOM needs ~10,000 video passes to leave chance and VSM batches of 16 videos (training/RESULTS.md
    # "FOM and VSM on the CPU"): with the cross-modal transformer fixed a pass costs about a fifth
    # (training/RESULTS.md "Sessions 17-18")
    cached = {
        k: v
        for k, v in SMOKE["cached_ratio"].items()
        if k in tasks and (k != "vsm" or (variant == "full" and cached_vsm))
    }
    if cached:
        lc = pretrain(model, train, SMOKE["cached_steps"], SMOKE["cached_batch_size"], lr, cached, variant, ck,
                      seed=seed + 2, vsm_per_video=SMOKE["vsm_per_video"], show_progress=show_progress,
                      freeze_cross=True, **SMOKE["spec"])  # fmt: skip
        lp.rows += [{**r, "step": n1 + r["step"], "phase": "cached"} for r in lc.rows]
    pr = probe(model, val, "cpu", variant=variant, concepts=ck)
    steps = SMOKE["finetune_steps"] if finetune_steps is None else finetune_steps
    lf = finetune(model, train, steps, finetune_batch or bs, SMOKE["finetune_lr"], variant, ck, seed=seed + 1,
                  tasks=finetune_tasks or SMOKE["finetune_tasks"], hard_from=SMOKE["hard_from"],
                  qa_per_video=SMOKE["qa_per_video"], show_progress=show_progress, log=common.Log(out, "finetune"),
                  freeze_cross=freeze_cross)  # fmt: skip
    lp.save(
        {
            "probe": pr,
            "seed": seed,
            "smoke": SMOKE,
            "variant": variant,
            "tasks": list(tasks),
            "concepts": concepts,
        }
    )
    lf.save()
    return lp, lf, pr, model


def _smoke_data(a, val_count: int | None = None, concepts: int = 0) -> dict:
    """{"train", "val"} episodes for ``smoke`` and ``ablate``: SynthTV dirs --train / --val (val cut to
    its first ``val_count``) where given, else the fixture; with ``concepts`` names per frame."""
    from training.data import load_fixture, load_split

    if a.train:
        return {
            "train": load_split(a.train, concepts=concepts),
            "val": load_split(a.val, val_count, concepts=concepts),
        }
    return load_fixture(a.fixture, concepts=concepts)


def smoke(a) -> int:
    """CPU smoke: reduced model, few steps; prints the held-out probe (logs + loss curves in --out)."""
    torch.set_num_threads(a.threads)
    t = time.time()
    d = _smoke_data(a)
    train, val = d["train"], d["val"]
    t_load = time.time() - t
    lp, lf, pr, _ = smoke_train(train, val, a.seed, a.out)
    print(json.dumps({"seconds": round(time.time() - t, 1), "load_s": round(t_load, 1), "seed": a.seed,
                      "n_train": len(train), "n_val": len(val), "probe": pr, "out": a.out}))  # fmt: skip
    return 0


ABLATION_COLUMNS = (
    ("svmr", "R1@0.5"),
    ("svmr", "R1@0.7"),
    ("svmr", "R5@0.5"),
    ("vcmr", "R1@0.5"),
    ("vcmr", "R5@0.5"),
    ("qa", "accuracy"),
    ("probe", "vsm_video_acc"),
    ("probe", "fom_acc"),
)


def ablation_table(out: Path, names=tuple(ABLATIONS)) -> str:
    """Markdown table of OUT/NAME-sSEED.json (``ablate``): per run the mean over its seeds, +- one
    standard error across seeds where there are two or more."""
    head = [
        "run",
        "seeds",
        *(f"{t} {k}".replace("_acc", "").replace("accuracy", "acc") for t, k in ABLATION_COLUMNS),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        rs = [json.loads(f.read_text()) for f in sorted(out.glob(f"{name}-s*.json"))]
        if not rs:
            continue
        cells = [name, ",".join(str(r["seed"]) for r in rs)]
        for t, k in ABLATION_COLUMNS:
            v = np.array([r[t][k] for r in rs if k in r.get(t, {})], float)
            se = f" ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}" if len(v) > 1 else ""
            cells.append(f"{v.mean():.3f}{se}" if len(v) else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablate(a) -> int:
    """The GPU recipe's nine ablations (ABLATIONS) at the smoke scale, where FOM and VSM learn on the
    CPU: reduced model, fixture data, ``smoke_train``'s pre-training, the held-out probe of FOM and VSM,
    then ``--finetune-steps`` of moment retrieval (default none: the retrieval numbers are then
    zero-shot, from VSM's heads), over the fixed cross-modal transformer's cached outputs unless
    ``--full-finetune``, and ``evaluate`` on the fixture's val episodes. On the fixture's 240 training
    episodes fine-tuning does not rank the ablations: the whole model leaves two seeds far apart after
    150 steps, the cached outputs are memorised in 1,000 (training/RESULTS.md "Session 23"); ``--train``
    and ``--val`` (SynthTV dirs, e.g. 3,000 train episodes) replace the fixture so they can ("Session 24"). One JSON
    per run and seed, written atomically and skipped when present (a stopped sweep resumes); prints the
    table over every seed found."""
    from demo.library import atomic_write
    from training.evaluate import evaluate

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [x for x in a.runs.split(",") if x]
    if bad := [x for x in names if x not in ABLATIONS]:
        raise SystemExit(f"recipe ablate: unknown run {bad[0]!r}; one of {', '.join(ABLATIONS)}")
    settings = {"finetune_steps": a.finetune_steps, "finetune_batch": a.finetune_batch,
                "finetune_tasks": list(a.finetune_tasks), "full_finetune": a.full_finetune, "same_mix": a.same_mix}  # fmt: skip
    if a.train:  # SynthTV dirs instead of the fixture (a fixture table keeps its settings as they were)
        settings["data"] = {
            "train": str(Path(a.train).resolve()),
            "val": str(Path(a.val).resolve()),
            "val_count": a.val_count,
        }
    also = a.also
    if also:  # more splits to evaluate on (the first --val-count episodes of each)
        settings["also"] = {k: str(Path(v).resolve()) for k, v in also.items()}
    if a.concepts:  # the concept variant from the start, for every run listed
        settings["concepts"] = a.concepts
    todo = []
    for name, seed in itertools.product(names, a.seeds):
        path = out / f"{name}-s{seed}.json"
        if not path.is_file():
            todo.append((name, seed, path))
        elif json.loads(path.read_text()).get("settings", settings) != settings:  # one table, one setting
            raise SystemExit(f"recipe ablate: {path} was made with other settings; use another --out")
    d = _smoke_data(a, a.val_count, a.concepts) if todo else None
    if todo and also:
        from training.data import load_split

        extra = {k: load_split(v, a.val_count, concepts=a.concepts) for k, v in also.items()}
    for name, seed, path in todo:
        spec, t = ABLATIONS[name], time.time()
        variant = spec.get("variant", "full")
        tasks = () if spec.get("no_pretrain") else tuple(spec.get("tasks", "mlm,mnce,fom,vsm").split(","))
        print(f"[ablate] {name} seed {seed}", file=sys.stderr, flush=True)
        lp, lf, pr, model = smoke_train(d["train"], d["val"], seed, out / f"{name}-s{seed}", a.progress,
                                        variant, tasks, a.finetune_steps, a.finetune_batch,
                                        a.finetune_steps > 0 and not a.full_finetune, a.finetune_tasks,
                                        not a.same_mix, a.concepts)  # fmt: skip
        evals = ("svmr", "vcmr", *(("qa",) if "qa" in a.finetune_tasks else ()))
        res = {"name": name, "seed": seed, "variant": variant, "tasks": list(tasks), "probe": pr,
               "pretrain_steps": len(lp.rows), "finetune_steps": len(lf.rows),
               "settings": settings, "same_mix": a.same_mix,
               **evaluate(model, d["val"], variant, device="cpu", tasks=evals)}  # fmt: skip
        if also:
            res["also"] = {
                k: evaluate(model, eps, variant, device="cpu", tasks=evals) for k, eps in extra.items()
            }
        res["seconds"] = round(time.time() - t, 1)
        atomic_write(path, lambda f, b=json.dumps(res, indent=1).encode(): f.write(b))
    print(ablation_table(out))
    return 0


def assemble(a) -> int:
    """GPU call files (config.json + model.safetensors.partN) -> a checkpoint dir with the model card."""
    import shutil

    src, out = Path(a.parts), Path(a.out)
    parts = sorted(src.glob("model.safetensors.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    if not parts or not (src / "config.json").is_file():
        print(f"training.recipe: {src}: no config.json / model.safetensors.part*", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.safetensors", "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    shutil.copy(src / "config.json", out / "config.json")
    shutil.copy(ROOT / "training" / "MODEL_CARD.md", out / "README.md")
    from models.io import load_pretrained

    model = load_pretrained(out)  # checks every tensor name and shape
    print(
        json.dumps(
            {
                "out": str(out),
                "class": type(model).__name__,
                "bytes": (out / "model.safetensors").stat().st_size,
            }
        )
    )
    return 0


def _finetune_tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(t for t in text.split(",") if t)
    if not tasks or set(tasks) - {"vcmr", "qa"}:
        raise argparse.ArgumentTypeError(f"fine-tuning tasks are vcmr and/or qa, not {text!r}")
    return tasks


def _named_dirs(text: str) -> dict[str, str]:
    out = {}
    for item in (x for x in text.split(",") if x):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(f"expected NAME=DIR[,NAME=DIR...], not {text!r}")
        out[name] = path
    return out


def _seeds(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds are whole numbers separated by commas, not {text!r}"
        ) from None


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.recipe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--name", default="run")
    r.add_argument("--train", required=True)
    r.add_argument("--eval", default="", help="name=DIR,name=DIR")
    r.add_argument("--out", required=True)
    r.add_argument("--smoke", action="store_true")
    r.add_argument("--tasks", default="mlm,mnce,fom,vsm")
    r.add_argument("--no-pretrain", action="store_true")
    r.add_argument("--finetune-tasks", type=_finetune_tasks, default="vcmr,qa", help="vcmr, qa or both")
    r.add_argument(
        "--qa-per-video", type=_count, default=3, help="QA questions per video and step (each: 5 passes)"
    )
    r.add_argument(
        "--qa-videos", type=_count, default=None, help="QA from only the first N videos of a batch"
    )
    r.add_argument(
        "--freeze-cross", action="store_true",
        help="fine-tune with the cross-modal transformer fixed (its outputs cached once; CPU speed)",
    )  # fmt: skip
    r.add_argument(
        "--cross-top", type=_count, default=0,
        help="with --freeze-cross: the top K cross-modal layers learn too (nothing cached)",
    )  # fmt: skip
    r.add_argument("--variant", default="full")
    r.add_argument(
        "--concepts", type=int, default=0, help="concept tokens per frame (also on an --init checkpoint)"
    )
    r.add_argument(
        "--qa-in-subtitles",
        action="store_true",
        help="QA reads the official TVQA input: question + answer appended to every subtitle",
    )
    r.add_argument("--pretrain-steps", type=int, default=100_000)
    r.add_argument("--finetune-steps", type=int, default=100_000)
    r.add_argument("--pretrain-s", type=float, default=None)
    r.add_argument("--finetune-s", type=float, default=None)
    r.add_argument("--limit-s", type=float, default=None, help="hard wall-clock limit of the run")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--lr-pretrain", type=float, default=1e-4)
    r.add_argument(
        "--new-lr-mul",
        type=float,
        default=1.0,
        help="pre-training lr multiplier of the parameters not from MiniLM",
    )
    r.add_argument(
        "--frame-lr-mul",
        type=float,
        default=None,
        help="... of the frame embedders among them (default: --new-lr-mul)",
    )
    r.add_argument(
        "--crop-min",
        type=float,
        default=None,
        help="pre-train on random windows of >= this fraction of each video (FOM generalises)",
    )
    r.add_argument("--device", default="auto")
    r.add_argument("--seed", type=int, default=77)
    r.add_argument("--save", action="store_true")
    r.add_argument("--init", default=None, help="start from this checkpoint dir (e.g. with --no-pretrain)")
    r.add_argument("--threads", type=int, default=1, help="torch CPU threads when training on CUDA")
    r.add_argument(
        "--workers", type=int, default=None, help="batch-building processes (default: 4 on CUDA, 0 on CPU)"
    )
    r.add_argument("--no-progress", dest="progress", action="store_false")
    g = sub.add_parser("gpu")
    g.add_argument("--stage", choices=("main", "ablations", "continue"), default="main",
                   help="continue: fine-tune WORK's main and concepts checkpoints further (after main)")  # fmt: skip
    g.add_argument("--work", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--limit-s", type=float, default=540)
    g.add_argument("--train-count", type=int, default=None)
    g.add_argument("--baselines", action="store_true", help="also run training.baselines (GPU)")
    g.add_argument("--dry", action="store_true", help="plumbing check on CPU with existing WORK data")
    s = sub.add_parser("smoke")
    s.add_argument("--fixture", default=str(SMOKE_FIXTURE))
    s.add_argument("--train", default=None, help="SynthTV dir (instead of --fixture)")
    s.add_argument("--val", default=None)
    s.add_argument("--out", default=str(ROOT / "runs" / "smoke"), help="logs + loss curves")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("ablate", help="the nine ablations at the smoke scale (CPU), a table over seeds")
    b.add_argument("--runs", default=",".join(ABLATIONS), help="comma-separated names (none: the table only)")
    b.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated, e.g. 0,1")
    b.add_argument(
        "--finetune-steps", type=int, default=0, help="fine-tuning steps after the probe (0: zero-shot)"
    )
    b.add_argument("--finetune-batch", type=int, default=16)
    b.add_argument("--finetune-tasks", type=_finetune_tasks, default="vcmr", help="vcmr, qa or both")
    b.add_argument(
        "--full-finetune", action="store_true",
        help="fine-tune the whole model (default: the cross-modal transformer fixed, its outputs cached)",
    )  # fmt: skip
    b.add_argument(
        "--same-mix", action="store_true",
        help="no VSM in the cached phase for any run, as the flat and single-modality inputs must",
    )  # fmt: skip
    b.add_argument("--fixture", default=str(SMOKE_FIXTURE))
    b.add_argument(
        "--train", default=None, help="SynthTV dir to pre-train and fine-tune on (instead of --fixture)"
    )
    b.add_argument("--val", default=None, help="with --train: SynthTV dir to probe and evaluate on")
    b.add_argument("--val-count", type=int, default=None, help="its first N episodes (default: all)")
    b.add_argument("--also", type=_named_dirs, default={}, metavar="NAME=DIR,...",
                   help="with --train: evaluate every run on these SynthTV dirs too (first --val-count episodes)")  # fmt: skip
    b.add_argument("--concepts", type=_count, default=0, metavar="K",
                   help="every run as the concept variant from the start: K concept names per frame")  # fmt: skip
    b.add_argument("--out", default=str(ROOT / "runs" / "ablate"))
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--no-progress", dest="progress", action="store_false")
    m = sub.add_parser("assemble", help="join a GPU call's checkpoint parts into a checkpoint dir")
    m.add_argument("--parts", required=True)
    m.add_argument("--out", default=str(ROOT / "assets" / "hero-mini"))
    a = p.parse_args(argv)
    if a.cmd == "assemble":
        return assemble(a)
    if a.cmd == "run":
        if a.cross_top and not a.freeze_cross:
            p.error("--cross-top needs --freeze-cross")
        # without a time budget, a step count left at its cap means the default (one given is kept)
        if a.pretrain_s is None and a.pretrain_steps == 100_000:
            a.pretrain_steps = 2000
        if a.finetune_s is None and a.finetune_steps == 100_000:
            a.finetune_steps = 3000
        print(json.dumps(run(a))[:2000])
        return 0
    if a.cmd == "gpu":
        return gpu(a)
    if bool(a.train) != bool(a.val):
        p.error(f"{a.cmd}: --train and --val go together")
    if a.cmd == "ablate" and a.also and not a.train:
        p.error("ablate: --also needs --train and --val")
    return ablate(a) if a.cmd == "ablate" else smoke(a)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
