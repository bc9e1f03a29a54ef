"""Frame features: shape, determinism, batching, and concept names that say what is on screen."""

import numpy as np
import pytest

from demo.errors import InputError
from demo.features import OfficialHeroFeatureEncoder, load_frame_encoder


@pytest.fixture(scope="module")
def photos():
    import cv2
    import skimage.data

    imgs = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    return np.stack([cv2.resize(i, (320, 240)) for i in imgs])


def test_shape_determinism_and_batch_invariance(photos):
    enc = load_frame_encoder(device="cpu")
    a = enc.encode(photos)
    assert a.features.shape == (3, 1280) and a.features.dtype == np.float32
    b = enc.encode(photos)
    np.testing.assert_array_equal(a.features, b.features)
    one = enc.encode(photos[1:2])
    np.testing.assert_allclose(one.features[0], a.features[1], atol=1e-4)
    assert enc.encode(photos[:0]).features.shape == (0, 1280)


def test_concepts_name_what_is_shown(photos):
    c = load_frame_encoder(device="cpu").encode(photos).concepts
    assert any("cat" in n for n in c[0])
    assert any(n in ("espresso", "cup", "coffee mug") for n in c[1])
    assert all(len(row) == 3 for row in c)


def test_bad_frames_and_unavailable_official_features():
    enc = load_frame_encoder(device="cpu")
    with pytest.raises(ValueError):
        enc.encode(np.zeros((2, 10, 10), np.uint8))
    with pytest.raises(InputError, match="not available offline"):
        OfficialHeroFeatureEncoder()
    with pytest.raises(InputError, match="unknown frame encoder"):
        load_frame_encoder("resnet-9000")
