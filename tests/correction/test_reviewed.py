"""Reviewed regions: rectangles -> mask, the .reviewed.npz sidecar, and training on reviewed pixels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_deepseg.correction.reviewed import (
    load_reviewed,
    rectangles_to_mask,
    reviewed_path,
    save_labels_and_reviewed,
    save_reviewed,
)
from napari_deepseg.errors import DeepsegError
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import finetune_iter


def _rect(y0, x0, y1, x1, lead=()):
    return np.array([[*lead, y, x] for y, x in ((y0, x0), (y0, x1), (y1, x1), (y1, x0))], float)


def test_rectangle_covers_the_pixels_whose_centres_it_contains():
    mask = rectangles_to_mask([_rect(-0.5, -0.5, 2.5, 3.5)], (6, 6))
    expected = np.zeros((6, 6), bool)
    expected[:3, :4] = True
    np.testing.assert_array_equal(mask, expected)
    # borders through pixel centres include them; parts outside the array are clipped
    mask = rectangles_to_mask([_rect(1, 1, 2, 2), _rect(4.2, 4.2, 9, 9)], (6, 6))
    expected = np.zeros((6, 6), bool)
    expected[1:3, 1:3] = True
    expected[5, 5] = True
    np.testing.assert_array_equal(mask, expected)
    assert not rectangles_to_mask([_rect(10, 10, 12, 12)], (6, 6)).any()


def test_polygon_and_rotated_rectangle():
    diamond = np.array([[0, 2], [2, 4], [4, 2], [2, 0]], float)
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(rectangles_to_mask([diamond], (5, 5)), expected)


def test_rectangles_on_a_plane_of_a_stack():
    shape = (3, 2, 6, 6)  # (t, z, y, x)
    on_plane = rectangles_to_mask([_rect(0, 0, 1, 1, lead=(2, 1))], shape)
    assert on_plane.sum() == 4
    assert on_plane[2, 1, :2, :2].all()
    everywhere = rectangles_to_mask([_rect(0, 0, 1, 1)], shape)  # (y, x) only: every plane
    assert everywhere.sum() == 4 * 6
    chosen = rectangles_to_mask([_rect(0, 0, 1, 1)], shape, plane=(0, 1))
    assert chosen[0, 1, :2, :2].all()
    assert chosen.sum() == 4
    outside = rectangles_to_mask([_rect(0, 0, 1, 1, lead=(5, 0))], shape)
    assert not outside.any()


def test_bad_regions_are_refused():
    with pytest.raises(DeepsegError, match="polygon vertices"):
        rectangles_to_mask([np.array([[0, 0], [1, 1]])], (4, 4))
    with pytest.raises(DeepsegError, match="2 or more axes"):
        rectangles_to_mask([], (4,))


def test_sidecar_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.random((3, 17, 23)) > 0.5
    rects = [_rect(0, 0, 4, 4, lead=(1,)), np.array([[2, 0, 0], [2, 3, 3], [2, 0, 5]], float)]
    labels_file = tmp_path / "sub" / "cells.tif"
    out = save_reviewed(labels_file, mask, rects)
    assert out == reviewed_path(labels_file) == tmp_path / "sub" / "cells.tif.reviewed.npz"
    for path in (labels_file, out):
        loaded, loaded_rects = load_reviewed(path)
        np.testing.assert_array_equal(loaded, mask)
        assert len(loaded_rects) == 2
        for a, b in zip(loaded_rects, rects):
            np.testing.assert_array_equal(a, b)
    assert load_reviewed(tmp_path / "other.tif") is None
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == [out.name]  # no temporary left
    with pytest.raises(DeepsegError, match="boolean"):
        save_reviewed(labels_file, mask.astype(np.uint8))


def test_corrupt_sidecar_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.tif.reviewed.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(DeepsegError, match="not a reviewed-mask file"):
        load_reviewed(bad)


def test_save_labels_and_reviewed(tmp_path):
    labels = np.zeros((2, 8, 8), np.uint16)
    labels[:, 2:5, 2:5] = 7
    mask = rectangles_to_mask([_rect(0, 0, 3, 3, lead=(1,))], labels.shape)
    path = tmp_path / "labels.tif"
    written = save_labels_and_reviewed(path, labels, mask, [_rect(0, 0, 3, 3, lead=(1,))])
    assert written == [path, reviewed_path(path)]
    np.testing.assert_array_equal(tifffile.imread(path), labels)
    np.testing.assert_array_equal(load_reviewed(path)[0], mask)
    with pytest.raises(DeepsegError, match="exists; give another file name or pass overwrite=True"):
        save_labels_and_reviewed(path, labels, None)  # the saved labels are not replaced unasked
    assert reviewed_path(path).exists()
    save_labels_and_reviewed(path, labels, None, overwrite=True)  # no mask now: a stale sidecar goes
    assert not reviewed_path(path).exists()
    with pytest.raises(DeepsegError, match="differs from labels shape"):
        save_labels_and_reviewed(path, labels, mask[0], overwrite=True)
    with pytest.raises(DeepsegError, match=r"ends in \.png, not \.tif or \.tiff"):
        save_labels_and_reviewed(tmp_path / "labels.png", labels, None)


def test_finetuning_loss_ignores_unreviewed_pixels():
    """Same seed, same reviewed pixels: the training losses do not depend on unreviewed labels."""
    image, labels = synthetic_nuclei((64, 64), seed=5)
    reviewed = np.zeros(labels.shape, bool)
    reviewed[:, :32] = True
    other = labels.copy()
    rng = np.random.default_rng(1)
    other[:, 40:] = rng.integers(0, 50, size=other[:, 40:].shape)  # garbage far from the border
    runs = []
    for lab in (labels, other):
        gen = finetune_iter(
            [(image, lab, reviewed)],
            epochs=1,
            steps_per_epoch=3,
            batch_size=2,
            patch_size=32,
            arch_options={"base": 4, "depth": 2},
            val_fraction=0.25,
            device="cpu",
            precision="fp32",
            seed=3,
        )
        runs.append([e.info["loss"] for e in gen if e.stage == "step"])
    assert len(runs[0]) == 3
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6)
