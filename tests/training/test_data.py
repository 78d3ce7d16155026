"""Training pairs, stacks, patch sampling and augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.errors import DeepsegError
from napari_deepseg.training.data import PatchSampler, as_pairs, augment_patch, pad_region
from napari_deepseg.training.labels import IGNORE


def test_pairs_accept_tuples_rgb_and_stacks():
    img, lab = np.zeros((3, 20, 30), np.uint8), np.zeros((3, 20, 30), np.uint16)
    rgb = np.zeros((20, 30, 3), np.uint8)
    pairs = as_pairs([(img, lab), (rgb, lab[0], np.ones((20, 30), bool))])
    assert len(pairs) == 4
    assert pairs[0].image.shape == (20, 30)
    assert pairs[3].image.shape == (20, 30, 3)
    assert pairs[3].reviewed is not None


def test_shape_mismatch_is_one_line_error():
    with pytest.raises(DeepsegError, match=r"image shape \(20, 30\) does not match labels shape \(20, 31\)"):
        as_pairs([(np.zeros((20, 30)), np.zeros((20, 31), np.uint8))])
    with pytest.raises(DeepsegError, match="no training pairs"):
        as_pairs([])


def test_sampler_prefers_annotated_pixels_and_aligns_augmented_targets():
    image = np.zeros((1, 200, 200), np.float32)
    target = np.full((200, 200), IGNORE, np.int16)
    target[150:160, 20:30] = 1
    image[0, 150:160, 20:30] = 5.0
    region = pad_region(image, target, "a", margin=0, min_size=32)
    sampler = PatchSampler([region], 32, 32, fg_fraction=1.0)
    rng = np.random.default_rng(0)
    x, y, _ = sampler.sample(16, rng, augment=True, elastic=True)
    assert x.shape == (16, 1, 32, 32)
    assert y.shape == (16, 32, 32)
    assert (y >= 0).any(axis=(1, 2)).all()  # every patch sees the annotation
    # augmentation keeps image and target aligned: bright pixels are the labelled ones
    for xi, yi in zip(x, y):
        assert xi[0][yi == 1].mean() > xi[0][yi == IGNORE].mean()


def test_augment_without_elastic_is_a_pure_geometric_and_intensity_map():
    rng = np.random.default_rng(1)
    x = rng.random((1, 16, 16)).astype(np.float32)
    y = (x[0] > 0.5).astype(np.int16)
    xa, ya = augment_patch(x, y, rng)
    order = np.argsort(xa[0].ravel())
    assert np.array_equal(np.sort(ya.ravel()), np.sort(y.ravel()))
    # intensity transforms are monotonic: thresholding still separates the classes
    assert ya.ravel()[order][: (ya == 0).sum()].max() == 0


def test_training_takes_axes_like_segment():
    """A CYX image with YX labels trains exactly like the same data given channels-last."""
    from napari_deepseg.training.data import as_pairs

    rng = np.random.default_rng(0)
    cyx = rng.random((2, 2, 12, 10)).astype(np.float32)  # Z, C, Y, X
    labels = rng.integers(0, 3, (2, 12, 10))
    planes = as_pairs([(cyx, labels)], axes="ZCYX")
    assert len(planes) == 2
    assert planes[1].image.shape == (12, 10, 2)
    assert np.array_equal(planes[1].image, np.moveaxis(cyx[1], 0, -1))
    assert np.array_equal(planes[1].labels, labels[1])
    transposed = as_pairs([(np.moveaxis(cyx[0], 0, -1).T.copy(), labels[0].T.copy())], axes="CXY")
    assert np.array_equal(transposed[0].image, planes[0].image)


def test_one_channel_rule_for_training_and_inference(tiny_unet):
    """2 channels to a gray model: refused by both (pick one); RGB averaged by both."""
    from napari_deepseg.inference import segment
    from napari_deepseg.inference.inputs import to_model_input

    two = np.random.default_rng(1).random((16, 16, 2)).astype(np.float32)
    with pytest.raises(DeepsegError, match=r"takes 1 channel\(s\) but 2 are given"):
        to_model_input(two, 1, "gray")
    with pytest.raises(DeepsegError, match=r"takes 1 channel\(s\) but 2 are given"):
        segment(two, tiny_unet, axes="YXC", device="cpu")
    assert np.array_equal(to_model_input(two, 1, "gray", channels=[1])[0], two[..., 1])
    rgb = np.random.default_rng(2).random((16, 16, 3)).astype(np.float32)
    assert np.allclose(to_model_input(rgb, 1, "gray")[0], rgb.mean(-1))
