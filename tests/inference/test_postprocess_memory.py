"""Instance post-processing by bands of foreground groups: same objects as one whole-plane
watershed, and at most 20 bytes per pixel on top of the probabilities and the labels."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_deepseg.inference.maxima import dynamic_maxima
from napari_deepseg.inference.postprocess import _STRUCT, _remove_small, instances_from_probabilities
from napari_deepseg.samples import synthetic_nuclei


def _whole_plane(prob, min_size, seed_threshold=0.5, seed_method="threshold", seed_sigma=2.0, seed_h=0.01):
    """The former whole-plane implementation (one watershed over the plane), as the reference."""
    interior, boundary = prob[1].astype(np.float32), prob[2].astype(np.float32)
    mask = interior + boundary > 0.5
    if seed_method == "threshold":
        relief = interior
        seeds, n_seeds = ndi.label((interior > seed_threshold) & mask, structure=_STRUCT)
    else:
        relief = ndi.gaussian_filter(interior - boundary, seed_sigma)
        seeds, n_seeds = dynamic_maxima(relief, mask, seed_h)
    comps, n_comps = ndi.label(mask, structure=_STRUCT)
    seeded = np.zeros(n_comps + 1, bool)
    seeded[np.unique(comps[seeds > 0])] = True
    orphan = ~seeded[comps] & mask
    orphans, _ = ndi.label(orphan, structure=_STRUCT)
    seeds = np.where(orphan, orphans + n_seeds, seeds)
    return _remove_small(watershed(-relief, markers=seeds, mask=mask), min_size)


def _probs(shape=(512, 512), seed=5) -> np.ndarray:
    """Noisy (3, H, W) float16 probabilities of touching synthetic nuclei (some merge, some split)."""
    _, truth = synthetic_nuclei(shape, n_nuclei=shape[0] * shape[1] // 300, seed=seed)
    dist = ndi.distance_transform_edt(truth > 0)
    rng = np.random.default_rng(seed)
    interior = np.clip(dist / 6, 0, 1) * (truth > 0) + rng.normal(0, 0.05, shape) * (truth > 0)
    interior = np.clip(interior, 0, 0.98)
    boundary = (1 - interior) * 0.9 * (truth > 0)
    return np.stack([1 - interior - boundary, interior, boundary]).astype(np.float16)


def _tie_free(prob: np.ndarray) -> np.ndarray:
    """float32 ``prob`` with its foreground classes nudged by distinct amounts under 1e-4, so
    that no two pixels share a height (float16 probabilities hold many equal values)."""
    rng = np.random.default_rng(0)
    out = prob.astype(np.float32)
    out[1:] += rng.uniform(0, 1e-4, out[1:].shape).astype(np.float32)
    return out


def _identical(ours: np.ndarray, ref: np.ndarray) -> float:
    """The share of ``ref``'s objects that are exactly one object of ``ours`` (same pixels)."""
    fg = (ours > 0) | (ref > 0)
    pairs, counts = np.unique(np.stack([ref[fg], ours[fg]]), axis=1, return_counts=True)
    area_ref, area_ours = np.bincount(ref.ravel()), np.bincount(ours.ravel())
    same = (pairs[0] > 0) & (counts == area_ref[pairs[0]]) & (counts == area_ours[pairs[1]])
    return same.sum() / ref.max()


SETTINGS = [
    {"min_size": 16},
    {"min_size": 0, "seed_threshold": 0.8},
    {"min_size": 32, "seed_method": "maxima", "seed_sigma": 2.5, "seed_h": 0.01},
    {"min_size": 0, "seed_method": "maxima", "seed_sigma": 1.0, "seed_h": 0.05},
]


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_same_objects_as_one_whole_plane_watershed(kwargs):
    prob = _tie_free(_probs())
    ours = instances_from_probabilities(prob, **kwargs)
    ref = _whole_plane(prob, **kwargs)
    assert ours.dtype == np.uint32
    np.testing.assert_array_equal(ours > 0, ref > 0)
    fg = ref > 0
    pairs = np.unique(np.stack([ours[fg], ref[fg]]), axis=1)
    assert pairs.shape[1] == ours.max() == ref.max() > 100  # one-to-one: the same objects
    np.testing.assert_array_equal(np.unique(ours), np.arange(ours.max() + 1))


@pytest.mark.parametrize("seed", [5, 6, 9])
@pytest.mark.parametrize("kwargs", SETTINGS)
def test_equal_heights_change_a_few_pixels_at_most(kwargs, seed):
    """With float16 probabilities seed pixels of equal height are popped from scikit-image's
    heap in an order that depends on everything else on it, so a pixel two seeds reach may go
    either way: one whole-plane watershed and the band-by-band ones differ there (the banded
    implementation before the sheets did too, on seeds 6 and 9 with ``seed_threshold=0.8``)."""
    prob = _probs(seed=seed)
    ours = instances_from_probabilities(prob, **kwargs)
    ref = _whole_plane(prob, **kwargs)
    np.testing.assert_array_equal(ours > 0, ref > 0)
    assert ours.max() == ref.max()
    assert _identical(ours, ref) >= 0.99


@pytest.mark.parametrize("method", ["threshold", "maxima"])
def test_at_most_20_bytes_per_pixel(method):
    prob = _probs((1024, 1024), seed=6)
    instances_from_probabilities(prob[:, :64, :64], seed_method=method)  # imports, caches
    tracemalloc.start()
    labels = instances_from_probabilities(prob, seed_method=method)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    extra = (peak - labels.nbytes) / labels.size
    assert labels.max() > 500
    assert extra <= 20, f"{extra:.1f} bytes per pixel"
    tracemalloc.start()
    _whole_plane(prob, 16, seed_method=method)
    assert tracemalloc.get_traced_memory()[1] / labels.size > 30  # the check can fail
    tracemalloc.stop()
