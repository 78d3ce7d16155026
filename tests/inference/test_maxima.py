"""Fast h-maxima on the basin graph against scikit-image's reconstruction-based h_maxima."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import h_maxima

from napari_deepseg.inference.maxima import dynamic_maxima


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("h", [0.005, 0.05, 0.3])
def test_same_seeds_as_skimage_h_maxima(seed, h):
    rng = np.random.default_rng(seed)
    relief = ndi.gaussian_filter(rng.random((96, 120)), 2.0).astype(np.float32)
    relief = (relief - relief.min()) / np.ptp(relief)
    mask = ndi.gaussian_filter(rng.random((96, 120)), 4.0) > 0.47  # several separate parts
    markers, n = dynamic_maxima(relief, mask, h)
    floor = np.where(mask, relief, -1.0).astype(np.float32)
    expected = h_maxima(floor, h).astype(bool) & mask
    assert n == markers.max() == ndi.label(expected, structure=np.ones((3, 3)))[1]
    np.testing.assert_array_equal(markers > 0, expected)
    # Every connected part of the mask keeps at least its highest maximum.
    parts, n_parts = ndi.label(mask, structure=np.ones((3, 3)))
    assert set(np.unique(parts[markers > 0])) == set(range(1, n_parts + 1))


def test_single_and_empty():
    relief = np.zeros((10, 10), np.float32)
    relief[5, 5] = 1
    markers, n = dynamic_maxima(relief, np.ones((10, 10), bool), 0.5)
    assert n == 1
    assert markers[5, 5] == 1
    assert markers.sum() == 1
    markers, n = dynamic_maxima(relief, np.zeros((10, 10), bool), 0.5)
    assert n == 0
    assert not markers.any()
