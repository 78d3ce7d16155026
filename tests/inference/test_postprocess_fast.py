"""The fast post-processing (issue 36) against the code it replaced (benchmarks/_postprocess_before.py):
the same objects, class maps, probabilities, float16 bits and image-grid outlines."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_deepseg.inference.gridmap import GridMap
from napari_deepseg.inference.postprocess import class_map, instances_from_probabilities
from napari_deepseg.inference.probability import as_float32, softmax, to_float16, write_float16
from napari_deepseg.inference.sheets import Sheet, boxes_of, sheet_of, shelves

_BEFORE = Path(__file__).resolve().parents[2] / "benchmarks" / "_postprocess_before.py"


@pytest.fixture(scope="module")
def before():
    """The post-processing of commit 4c0dca3, kept verbatim beside the benchmark."""
    if not _BEFORE.exists():
        pytest.skip("benchmarks/_postprocess_before.py is not in this checkout")
    spec = importlib.util.spec_from_file_location("_postprocess_before", _BEFORE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_objects(ours: np.ndarray, ref: np.ndarray) -> None:
    """The same foreground, split into the same objects (ids may differ); ours numbered 1..N."""
    np.testing.assert_array_equal(ours > 0, ref > 0)
    fg = ref > 0
    pairs = np.unique(np.stack([ours[fg], ref[fg]]), axis=1)
    assert pairs.shape[1] == ours.max() == ref.max()
    np.testing.assert_array_equal(np.unique(ours), np.arange(ours.max() + 1))


def _scene(seed: int = 0) -> np.ndarray:
    """(3, 96, 128) float32 probabilities without ties: touching discs (interiors merged through
    a neck), a ring of boundary without interior (an orphan beside a seeded disc), tiny specks
    (small objects) and noise."""
    yy, xx = np.mgrid[:96, :128].astype(np.float32)
    rng = np.random.default_rng(seed)
    interior = np.zeros((96, 128), np.float32)
    for cy, cx in [(24, 24), (24, 42), (70, 30), (60, 90), (62, 104)]:  # two touching pairs
        interior = np.maximum(interior, np.clip(1.1 - np.hypot(yy - cy, xx - cx) / 11, 0, 0.97))
    boundary = np.where((interior > 0) & (interior < 0.35), 0.9 - interior, 0).astype(np.float32)
    ring = np.abs(np.hypot(yy - 30, xx - 95) - 9) < 3  # foreground with no interior: seedless
    boundary[ring & (interior == 0)] = 0.8
    for cy, cx in [(85, 70), (88, 120), (5, 70)]:  # specks of 4 pixels
        interior[cy : cy + 2, cx : cx + 2] = 0.9
    interior += rng.uniform(0, 1e-3, interior.shape).astype(np.float32)
    boundary += rng.uniform(0, 1e-3, boundary.shape).astype(np.float32)
    return np.stack([np.clip(1 - interior - boundary, 0, 1), interior, boundary]).astype(np.float32)


SETTINGS = [
    {"min_size": 0},
    {"min_size": 16, "seed_threshold": 0.7},
    {"min_size": 0, "seed_method": "maxima", "seed_sigma": 1.0, "seed_h": 0.01},
    {"min_size": 16, "seed_method": "maxima", "seed_sigma": 2.0, "seed_h": 0.03, "foreground_threshold": 0.6},
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kwargs", SETTINGS)
def test_same_objects_as_before(before, kwargs, seed):
    prob = _scene(seed)
    ours = instances_from_probabilities(prob, **kwargs)
    ref = before.instances_from_probabilities(prob, **kwargs)
    _same_objects(ours, ref)
    assert ours.max() >= 5


def test_touching_orphans_and_small_objects_are_kept_apart():
    prob = _scene()
    kwargs = {"seed_method": "maxima", "seed_sigma": 1.0, "seed_h": 0.05}
    labels = instances_from_probabilities(prob, min_size=0, **kwargs)
    assert labels[24, 24] != labels[24, 42] > 0  # touching discs split
    assert labels[60, 90] != labels[62, 104] > 0
    assert labels[30, 95 + 9] > 0  # the seedless ring is an object of its own
    assert labels[30, 95 + 9] not in labels[:, :80]
    assert labels[85, 70] > 0  # a 4-pixel speck is kept with min_size 0 ...
    cleaned = instances_from_probabilities(prob, min_size=16, **kwargs)
    assert cleaned[85, 70] == cleaned[88, 120] == cleaned[5, 70] == 0  # ... and dropped with 16
    assert cleaned.max() == (np.bincount(labels.ravel())[1:] >= 16).sum()


def test_objects_are_numbered_in_raster_order_of_their_first_pixel():
    labels = instances_from_probabilities(_scene(), min_size=0, seed_method="maxima", seed_sigma=1.0)
    flat = labels.ravel()
    _, first = np.unique(flat, return_index=True)
    assert (np.diff(first[1:]) > 0).all()  # one band here: ids follow the first pixels


def test_empty_and_two_class_input(before):
    prob = np.zeros((3, 40, 50), np.float32)
    prob[0] = 1
    assert instances_from_probabilities(prob).max() == 0
    assert instances_from_probabilities(prob[:, :0]).shape == (0, 50)
    two = _scene()[:2].copy()
    two[0] = 1 - two[1]
    for kwargs in ({"min_size": 4}, {"min_size": 4, "seed_method": "maxima", "seed_sigma": 1.0}):
        _same_objects(
            instances_from_probabilities(two, **kwargs), before.instances_from_probabilities(two, **kwargs)
        )


def test_float16_probabilities_give_the_same_foreground(before):
    prob = _scene().astype(np.float16)
    kwargs = {"min_size": 16, "seed_method": "maxima", "seed_sigma": 2.0, "seed_h": 0.03}
    ours = instances_from_probabilities(prob, **kwargs)
    ref = before.instances_from_probabilities(prob, **kwargs)
    _same_objects(ours, ref)


def test_shelves_keep_a_gap_between_boxes():
    heights, widths = np.array([3, 5, 2, 4, 6]), np.array([4, 3, 6, 2, 5])
    tops, lefts, height = shelves(heights, widths, 12)
    canvas = np.zeros((height + 1, 13), int)
    for i, (t, left, h, w) in enumerate(zip(tops, lefts, heights, widths), 1):
        grown = canvas[max(0, t - 1) : t + h + 1, max(0, left - 1) : left + w + 1]
        assert not grown[grown != i].any()  # no other box within one pixel, even diagonally
        canvas[t : t + h, left : left + w] = i
    assert (lefts + widths < 12).all()


def test_sheet_round_trip_and_union_box_fallback():
    mask = np.zeros((40, 60), bool)
    mask[2:6, 3:9] = mask[10:14, 40:44] = mask[20:24, 5:50] = True  # three groups
    mask[30:39, 0:60] = True  # a group as wide as the plane
    groups, n = ndi.label(mask, structure=np.ones((3, 3)))
    boxes = boxes_of(ndi.find_objects(groups))
    values = np.arange(mask.size, dtype=np.float32).reshape(mask.shape)
    for ids in (np.array([1, 2]), np.array([1, 3]), np.arange(1, n + 1)):
        sheet = sheet_of(groups, boxes, ids)
        assert isinstance(sheet, Sheet)
        chosen = np.isin(groups, ids)
        assert sheet.mask().sum() == chosen.sum()
        np.testing.assert_array_equal(sheet.take(sheet.place(values)), values[sheet.rows][chosen[sheet.rows]])
    assert sheet_of(groups, boxes, np.array([], int)) is None
    packed = sheet_of(groups, boxes, np.array([1, 2]))
    assert packed.shape[0] * packed.shape[1] < 40 * 60 // 4  # two small boxes: a small sheet


def test_class_map_is_argmax_with_first_class_on_ties():
    rng = np.random.default_rng(3)
    logits = rng.integers(0, 3, (3, 20, 30)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(class_map(logits), np.argmax(logits, axis=0))
    logits[1, 0, 0] = np.nan
    np.testing.assert_array_equal(class_map(logits), np.argmax(logits, axis=0))
    assert class_map(logits).dtype == np.uint8


def test_softmax_and_float16_bits_as_before(before):
    rng = np.random.default_rng(4)
    sums = rng.normal(0, 8, (3, 17, 23)).astype(np.float32)
    wsum = rng.uniform(0.2, 2, (17, 23)).astype(np.float32)
    ref = before.finalize_softmax(sums, wsum)
    ours = softmax(sums.copy(), wsum)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(to_float16(ours).view(np.uint16), ref.astype(np.float16).view(np.uint16))
    edges = np.array(
        [
            0,
            -0.0,
            2.0**-25,
            2.0**-24,
            1.5 * 2.0**-24,
            2.0**-14 * (1 - 2.0**-12),
            2.0**-14,
            1,
            -(2.0**-20),
            np.nan,
            7e4,
        ],
        np.float32,
    )
    for values in (edges, rng.uniform(0, 1, 10_000).astype(np.float32) ** 12):
        with np.errstate(over="ignore"):  # 7e4 is past float16's range: inf, both ways
            expected = values.astype(np.float16).view(np.uint16)
            np.testing.assert_array_equal(to_float16(values).view(np.uint16), expected)
    half = (rng.uniform(0, 1, 1000) ** 12).astype(np.float16)
    np.testing.assert_array_equal(as_float32(half), half.astype(np.float32))
    out = np.zeros((4, 3), np.float16).T  # a transposed view, as an output plane may be
    write_float16(out, ours[0, :3, :4])
    np.testing.assert_array_equal(out, ref[0, :3, :4].astype(np.float16))


@pytest.mark.parametrize("full", [(192, 256), (40, 53), (120, 160), (97, 127)])
def test_grid_outlines_as_before(before, full):
    prob = _scene().astype(np.float16)
    small = prob.shape[1:]
    labels = instances_from_probabilities(prob, min_size=4, seed_method="maxima", seed_sigma=1.0, seed_h=0.05)
    assert labels.max() > 5
    grid = GridMap.between(small, full)
    np.testing.assert_array_equal(grid.labels(labels, prob, 0.6), before.grid_labels(grid, labels, prob, 0.6))
    np.testing.assert_array_equal(grid.labels(labels), before.grid_labels(grid, labels))
    ref = before.consecutive(before.grid_labels(grid, labels, prob, 0.6))
    np.testing.assert_array_equal(grid.instances(labels, prob, 0.6), ref)


def test_grid_instances_renumber_when_an_object_vanishes(before):
    small, full = (20, 20), (40, 40)
    prob = np.zeros((3, *small), np.float32)
    prob[0] = 1
    prob[:, 2:8, 2:8] = np.array([0, 1, 0], np.float32)[:, None, None]  # object 1
    prob[:, 12:14, 12:14] = np.array([0.3, 0.7, 0], np.float32)[:, None, None]  # object 2: fades away
    labels = np.zeros(small, np.uint32)
    labels[2:8, 2:8], labels[12:14, 12:14], labels[16:18, 2:4] = 1, 2, 3
    prob[:, 16:18, 2:4] = np.array([0, 1, 0], np.float32)[:, None, None]
    grid = GridMap.between(small, full)
    out = grid.instances(labels, prob, threshold=0.75)
    ref = before.consecutive(before.grid_labels(grid, labels, prob, 0.75))
    np.testing.assert_array_equal(out, ref)
    assert out.max() == 2  # object 2 lost all its pixels; 3 became 2
