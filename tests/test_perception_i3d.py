"""I3D motion stream: the PyTorch port on the bundled Kinetics-400 checkpoint, converted offline.

Regenerate the logits fixture (only after a deliberate change of the port):
    python -m tests.test_perception_i3d
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.i3d import I3DConfig, build_i3d

FIXTURE = Path(__file__).parent / "data" / "perception" / "i3d_fixed_input.json"


def fixed_input() -> torch.Tensor:
    """A deterministic (1, 3, 8, 64, 64) clip in [-1, 1]: moving sinusoidal gratings, no RNG."""
    t, y, x = torch.meshgrid(torch.arange(8.0), torch.arange(64.0), torch.arange(64.0), indexing="ij")
    r = torch.sin(0.3 * x + 0.5 * t)
    g = torch.cos(0.2 * y - 0.4 * t)
    b = torch.sin(0.1 * (x + y) + 0.25 * t)
    return torch.stack([r, g, b])[None]  # (1, 3, T, H, W)


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    from demo.perception.actions import ActionRecognizer

    torch.set_num_threads(2)
    return ActionRecognizer(cache_dir=tmp_path_factory.mktemp("models")).load()


def test_tiny_shapes_short_clips_and_batching():
    torch.manual_seed(0)
    model = build_i3d(I3DConfig(num_classes=5))
    for p in model.parameters():  # random biases so batching errors would show
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 3, 3, 40, 56)  # T=3 -> a single time step after striding; non-square frames
    with torch.no_grad():
        out = model(x)
        one = model(x[1:])
    assert out.logits.shape == (2, 5) and out.features.shape == (2, 1024)
    torch.testing.assert_close(out.logits[1:], one.logits, rtol=1e-4, atol=1e-5)


def test_converted_checkpoint_matches_fixture(recognizer):
    """Logits of a fixed input, stored when the port was checked against the checkpoint's behaviour."""
    expected = json.loads(FIXTURE.read_text())
    with torch.no_grad():
        out = recognizer._model(fixed_input())
    torch.testing.assert_close(out.logits[0], torch.tensor(expected["logits"]), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(
        out.features[0, :16], torch.tensor(expected["features_0_16"]), rtol=1e-3, atol=1e-3
    )
    assert recognizer.labels[0] == "abseiling" and len(recognizer.labels) == 400
    assert "riding a bike" in recognizer.labels and "passing American football (in game)" in recognizer.labels


def test_head_is_linear_in_pooled_features(recognizer):
    """logits = Logits conv(features): the 1024-d features are what the classifier sees."""
    model = recognizer._model
    with torch.no_grad():
        out = model(fixed_input())
        head = model.Logits["Conv3d_0c_1x1"].Conv_0
        again = out.features @ head.weight.flatten(1).T + head.bias
    torch.testing.assert_close(out.logits, again)


def _still(image: np.ndarray, frames: int = 16) -> np.ndarray:
    return np.repeat(image[None], frames, axis=0)  # (T, H, W, 3)


def _pan(image: np.ndarray, frames: int = 16, pixels: int = 24) -> np.ndarray:
    """A slow horizontal camera pan across the photo."""
    h, w = image.shape[:2]
    xs = np.linspace(0, pixels, frames).astype(int)
    return np.stack([image[:, x : w - pixels + x] for x in xs])


@pytest.mark.slow
def test_real_photo_clips_give_plausible_consistent_actions(recognizer):
    """Kinetics actions for real photos (skimage): a coffee cup -> "making tea"; the cat -> a
    pet-grooming action, the same whether the shot is still or slowly panning."""
    from skimage import data

    coffee, cat = data.coffee(), data.chelsea()
    result = recognizer.run([_still(coffee), _still(cat), _pan(cat)], times=[0.75, 2.25, 3.75])
    top = [recognizer.labels[int(np.argmax(p))] for p in result.probs]
    assert top[0] == "making tea", top
    assert top[1] in {"grooming dog", "petting cat", "grooming horse"}, top
    assert top[2] == top[1], top  # consistent under a small camera motion
    assert result.features.shape == (3, 1024) and np.isfinite(result.features).all()
    assert any(e.label == "making tea" and e.start == 0.0 and e.end == 1.5 for e in result.events)


def test_clip_indices_centre_and_clamp():
    from demo.perception.actions import clip_indices

    idx = clip_indices([0.1, 2.0], fps=50, n_video_frames=110, clip_frames=8)
    assert idx.shape == (2, 8)
    assert idx[0].min() == 0  # clamped at the start
    assert list(idx[1]) == [92, 94, 96, 98, 100, 102, 104, 106]  # step 2 at 50 fps, centred on frame 100
    assert clip_indices([9.9], fps=25, n_video_frames=250).max() == 249


def _write_fixture():  # pragma: no cover - run by hand
    import tempfile

    from demo.perception.actions import ActionRecognizer

    rec = ActionRecognizer(cache_dir=tempfile.mkdtemp()).load()
    with torch.no_grad():
        out = rec._model(fixed_input())
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "input": "tests/test_perception_i3d.py::fixed_input (1, 3, 8, 64, 64)",
        "logits": [round(float(v), 5) for v in out.logits[0]],
        "features_0_16": [round(float(v), 6) for v in out.features[0, :16]],
    }
    FIXTURE.write_text(json.dumps(data) + "\n")
    print(FIXTURE)


if __name__ == "__main__":  # pragma: no cover
    _write_fixture()
