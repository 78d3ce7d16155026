"""Normalization: exact percentiles for every dtype, constant planes, NaN/inf, meanstd, stack scope."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference.inputs import (
    check_normalization,
    fixed_normalizer,
    percentile_normalizer,
)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_percentiles_match_numpy(dtype):
    rng = np.random.default_rng(0)
    hi = 250 if dtype == np.uint8 else 60000
    plane = rng.integers(0, hi, (1, 64, 80)).astype(dtype)
    norm = percentile_normalizer([plane], 1.0, 99.8)
    lo, top = np.percentile(plane[0].astype(np.float64), [1.0, 99.8])
    assert norm.offset[0] == pytest.approx(lo)
    assert norm.scale[0] == pytest.approx(1 / (top - lo))
    out = norm(plane)
    assert out.dtype == np.float32
    assert out.min() == pytest.approx((plane.min() - lo) / (top - lo), abs=1e-4)


def test_constant_plane_is_zeros_and_sparse_spots_use_range():
    const = np.full((1, 20, 20), 7, np.uint16)
    assert (percentile_normalizer([const], 1, 99.8)(const) == 0).all()
    spots = np.zeros((1, 100, 100), np.uint16)
    spots[0, 5, 5] = 1000  # p99.8 == p1 == 0: the full range is used instead
    out = percentile_normalizer([spots], 1, 99.8)(spots)
    assert out.max() == pytest.approx(1.0)
    assert out.min() == 0


def test_nan_and_inf():
    plane = np.random.default_rng(1).random((1, 30, 30)).astype(np.float32)
    plane[0, 0, :3] = [np.nan, np.inf, -np.inf]
    norm = percentile_normalizer([plane], 1, 99.8)
    finite = plane[np.isfinite(plane)]
    assert norm.offset[0] == pytest.approx(np.percentile(finite, 1), rel=1e-5)
    out = norm(plane)
    assert np.isfinite(out).all()
    assert out[0, 0, :3].tolist() == [0.0, 1.0, 0.0]
    all_nan = np.full((1, 5, 5), np.nan, np.float32)
    assert (percentile_normalizer([all_nan], 1, 99.8)(all_nan) == 0).all()


def test_stack_scope_pools_planes():
    a = np.zeros((1, 10, 10), np.uint8)
    b = np.full((1, 10, 10), 200, np.uint8)
    norm = percentile_normalizer([a, b], 0, 100)
    assert norm(b).max() == pytest.approx(1.0)
    assert norm(a).max() == 0


def test_meanstd_and_validation():
    spec = check_normalization({"method": "meanstd", "mean": [0.5] * 3, "std": [0.25] * 3, "scale": 255}, 3)
    norm = fixed_normalizer(spec, 3)
    rgb = np.full((3, 4, 4), 255, np.uint8)
    np.testing.assert_allclose(norm(rgb), 2.0)
    with pytest.raises(DeepsegError, match="std"):
        check_normalization({"method": "meanstd", "std": 0}, 1)
    with pytest.raises(DeepsegError, match="unknown"):
        check_normalization({"method": "zscore"}, 1)
    with pytest.raises(DeepsegError, match="low < high"):
        check_normalization({"method": "percentile", "low": 50, "high": 10}, 1)
