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
    x, y = sampler.sample(16, rng, augment=True, elastic=True)
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
