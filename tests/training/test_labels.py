"""Labels -> targets: dense/sparse, instance/semantic, reviewed masks and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.errors import DeepsegError
from napari_deepseg.training import IGNORE, make_target
from napari_deepseg.training.labels import check_annotations, class_counts


def _two_squares() -> np.ndarray:
    labels = np.zeros((12, 12), np.uint16)
    labels[2:6, 2:6] = 1
    labels[2:6, 6:10] = 2  # touches object 1
    return labels


def test_dense_instance_target_has_inner_boundary():
    target = make_target(_two_squares(), task="instance-boundary")
    assert target.dtype == np.int16
    assert set(np.unique(target)) == {0, 1, 2}
    assert (target[_two_squares() == 0] == 0).all()
    # the rim inside each object is boundary, including where the two objects touch
    assert target[2, 3] == 2
    assert target[3, 5] == 2
    assert target[3, 6] == 2
    assert target[3, 3] == 1
    assert target[3, 8] == 1


def test_sparse_instance_target_ignores_unpainted_and_maps_background_label():
    labels = np.zeros((12, 12), np.uint16)
    labels[0:2, :] = 1  # painted background (background_label=1)
    labels[4:9, 4:9] = 5  # one object
    target = make_target(labels, task="instance-boundary", sparse=True)
    assert (target[labels == 0] == IGNORE).all()
    assert (target[0:2] == 0).all()
    assert target[6, 6] == 1
    assert target[4, 6] == 2
    other = make_target(
        np.where(labels == 1, 7, labels), task="instance-boundary", sparse=True, background_label=7
    )
    np.testing.assert_array_equal(target, other)


def test_semantic_dense_and_sparse():
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    np.testing.assert_array_equal(make_target(labels, task="semantic"), labels)
    sparse = make_target(labels, task="semantic", sparse=True)
    np.testing.assert_array_equal(sparse, [[IGNORE, 0, 1], [1, 0, IGNORE]])
    with pytest.raises(DeepsegError, match="background_label"):
        make_target(labels, task="semantic", sparse=True, background_label=2)


def test_reviewed_mask_ignores_unreviewed_pixels():
    labels = _two_squares()
    reviewed = np.zeros(labels.shape, bool)
    reviewed[:, :6] = True
    target = make_target(labels, task="instance-boundary", reviewed=reviewed)
    assert (target[:, 6:] == IGNORE).all()
    assert (target[:, :6] >= 0).all()
    with pytest.raises(DeepsegError, match="reviewed mask"):
        make_target(labels, task="instance-boundary", reviewed=reviewed[:5])


def test_float_and_negative_labels_are_rejected():
    with pytest.raises(DeepsegError, match="floating point"):
        make_target(np.zeros((4, 4), np.float32), task="instance-boundary")
    with pytest.raises(DeepsegError, match="negative"):
        make_target(-np.ones((4, 4), np.int32), task="semantic")


def test_annotation_checks():
    names = ["background", "interior", "boundary"]
    with pytest.raises(DeepsegError, match="no annotated pixels"):
        check_annotations(np.zeros(3, np.int64), names)
    only_bg = class_counts([np.zeros((4, 4), np.int16)], 3)
    with pytest.raises(DeepsegError, match="only one class \\('background'\\)"):
        check_annotations(only_bg, names)


def test_wider_boundary_peels_rims_but_leaves_every_object_interior():
    labels = np.zeros((20, 30), np.uint16)
    labels[2:12, 2:12] = 1
    labels[2:12, 12:22] = 2  # touches object 1
    labels[15:18, 25:28] = 3  # 3x3: a 2-pixel rim would leave it nothing
    one = make_target(labels, task="instance-boundary")
    two = make_target(labels, task="instance-boundary", boundary_width=2)
    np.testing.assert_array_equal(two == 0, labels == 0)
    assert (two[one == 2] == 2).all()  # the 1-pixel rim is part of the 2-pixel one
    assert two[4, 3] == 2  # the second pixel in from the edge is rim now
    assert two[4, 4] == 1
    assert (two[2:12, 10:14] == 2).all()  # 4 boundary pixels between the touching objects
    for obj, interior in ((1, 36), (2, 36), (3, 1)):
        assert ((labels == obj) & (two == 1)).sum() == interior
    painted = np.where(labels == 0, 9, labels)  # every pixel painted, background as label 9
    sparse = make_target(painted, task="instance-boundary", sparse=True, background_label=9, boundary_width=2)
    np.testing.assert_array_equal(sparse, two)  # painted background, same objects: same target
