"""Instances mapped from a rescaled run's grid to the image's: ids by nearest neighbour, outlines
from the bilinearly resampled foreground probability."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.inference import segment
from napari_deepseg.inference.blocks import Block
from napari_deepseg.inference.gridmap import GridMap
from napari_deepseg.inference.postprocess import consecutive, instances_from_probabilities
from napari_deepseg.inference.scale import resize_labels, resize_plane
from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei


def _disks(shape: tuple[int, int], centres, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    labels = np.zeros(shape, np.uint32)
    for k, (cy, cx) in enumerate(centres, 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return labels


def _smooth_probabilities(truth: np.ndarray, small: tuple[int, int]) -> np.ndarray:
    """(3, h, w) probabilities a model would give for ``truth`` seen at ``small``: interior and
    background as the area fractions of each run-grid pixel (no boundary class)."""
    fg = resize_plane((truth > 0).astype(np.float32)[None], small)[0]
    return np.stack([1 - fg, fg, np.zeros_like(fg)]).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("factor", [3, 4.5])
def test_outlines_follow_the_probability_not_the_run_grid_blocks(factor):
    full = (270, 270)
    truth = _disks(full, [(60, 60), (60, 180), (190, 120)], radius=31)
    small = (round(full[0] / factor), round(full[1] / factor))
    prob = _smooth_probabilities(truth, small)
    labels = instances_from_probabilities(prob, min_size=4)
    grid = GridMap.between(small, full)
    nearest = grid.labels(labels)
    np.testing.assert_array_equal(nearest, resize_labels(labels, full))  # no probabilities: nearest
    mapped = grid.labels(labels, prob, threshold=0.5)
    assert set(np.unique(mapped)) == set(np.unique(labels))  # the same ids, none made or lost
    for k in (1, 2, 3):
        obj = truth == k
        ids = np.unique(mapped[obj])
        assert _iou(mapped == ids[ids > 0][0], obj) > _iou(nearest == ids[ids > 0][0], obj) + 0.01
    fg = resize_plane(prob[1:2], full)[0] > 0.5
    assert not (mapped[~fg] > 0).any()  # nothing outside the resampled foreground


def test_a_block_maps_as_the_whole_plane_does_inside_its_core():
    full, small = (300, 300), (100, 100)
    truth = _disks(full, [(70, 70), (70, 200), (200, 80), (210, 220)], radius=40)
    prob = _smooth_probabilities(truth, small)
    labels = instances_from_probabilities(prob, min_size=4)
    grid = GridMap.between(small, full)
    whole = grid.labels(labels, prob, 0.5)
    region = (slice(40, 90), slice(30, 100))  # run-grid region read by a block, core inside it
    block = Block(0, slice(50, 80), slice(40, 90), *region)
    mapped_block, part = grid.block_labels(block, labels[region], prob[:, region[0], region[1]], 0.5)
    cy = slice(
        mapped_block.y.start - mapped_block.read_y.start, mapped_block.y.stop - mapped_block.read_y.start
    )
    cx = slice(
        mapped_block.x.start - mapped_block.read_x.start, mapped_block.x.stop - mapped_block.read_x.start
    )
    np.testing.assert_array_equal(part[cy, cx], whole[mapped_block.y, mapped_block.x])


def test_consecutive_fills_gaps_only_when_there_are_some():
    labels = np.array([[0, 1, 1], [3, 3, 0]], np.uint32)
    out = consecutive(labels)
    np.testing.assert_array_equal(out, [[0, 1, 1], [2, 2, 0]])
    same = np.array([[0, 1], [2, 2]], np.uint32)
    assert consecutive(same) is same


def test_a_rescaled_run_has_smooth_outlines_and_matches_its_blocks():
    """segment() on nuclei shown 3x enlarged: the outlines are not 3-pixel steps, and a run in
    small blocks gives the same objects as the whole plane."""
    model = load_model("nuclei")
    image, truth = synthetic_nuclei((320, 320), radius=(7, 9), seed=3)[:2]
    big = resize_plane(image[None].astype(np.float32), (960, 960))[0]
    big_truth = resize_labels(truth, (960, 960))
    whole = segment(big, model, outputs=("instances",), object_diameter=48.0)
    assert whole.meta["object_diameter"]["scale"] == pytest.approx(1 / 3)
    # a pure nearest map repeats every run-grid row 3 times; the outlines here follow the probability
    rows_equal_to_next = (whole.instances[1:] == whole.instances[:-1]).all(axis=1).mean()
    assert rows_equal_to_next < 0.6
    blocks = segment(big, model, outputs=("instances",), object_diameter=48.0, block=128)
    assert blocks.meta["block"] == 128
    assert whole.meta["block"] is None
    agree = ((blocks.instances > 0) == (whole.instances > 0)).mean()
    assert agree > 0.995
    fg_iou = _iou(whole.instances > 0, big_truth > 0)
    assert fg_iou > 0.8


def test_a_window_of_the_map_draws_what_the_whole_map_draws_there():
    """A region run (CLI chunk) maps its instances with a window of the plane's map."""
    full, small = (310, 290), (124, 116)  # factor 2.5
    truth = _disks(full, [(70, 70), (70, 200), (200, 80), (230, 210)], radius=38)
    prob = _smooth_probabilities(truth, small)
    labels = instances_from_probabilities(prob, min_size=4)
    grid = GridMap.between(small, full)
    whole = grid.labels(labels, prob, 0.5)
    region = (slice(47, 251), slice(101, 260))
    source = (slice(12, 108), slice(34, 110))  # holds every source pixel and tap of the region
    sub = grid.window(source, region)
    assert sub.full == (204, 159)
    assert sub.reach == grid.reach
    part = sub.labels(labels[source], prob[:, source[0], source[1]], 0.5)
    np.testing.assert_array_equal(part, whole[region])


def test_fill_maps_classes_by_nearest_neighbour_in_bands():
    src = np.random.default_rng(0).integers(0, 3, (2, 40, 30)).astype(np.uint8)
    grid = GridMap.between((40, 30), (700, 95))  # more rows than one band
    out = grid.fill(np.zeros((2, 700, 95), np.uint8), src)
    np.testing.assert_array_equal(out, resize_labels(src, (700, 95)))
