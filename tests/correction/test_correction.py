"""Correction core on small hand-made label arrays with exact expected outputs."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.correction import (
    Edit,
    delete_labels,
    fill_holes,
    merge_labels,
    rasterize_polyline,
    relabel_sequential,
    remove_small,
    split_label,
    split_label_by_line,
)


def arr(text: str) -> np.ndarray:
    """A uint16 label array from rows of digits ('.' = 0)."""
    return np.array([[0 if c == "." else int(c) for c in row] for row in text.split()], np.uint16)


BASE = arr(
    """
    11..22..
    11..22..
    ........
    33....4.
    """
)


def test_merge_labels_in_place_with_edit():
    labels = BASE.copy()
    edit = merge_labels(labels, [2, 1])
    expect = arr(
        """
        22..22..
        22..22..
        ........
        33....4.
        """
    )
    np.testing.assert_array_equal(labels, expect)
    assert edit.kind == "merge"
    assert edit.new_ids == (2,)
    assert edit.region == (slice(0, 2), slice(0, 2))
    np.testing.assert_array_equal(edit.old, [[1, 1], [1, 1]])
    np.testing.assert_array_equal(edit.new, [[2, 2], [2, 2]])
    edit.revert(labels)
    np.testing.assert_array_equal(labels, BASE)


def test_apply_false_leaves_array_and_indices_reproduce_it():
    labels = BASE.copy()
    edit = delete_labels(labels, [3, 4], apply=False)
    np.testing.assert_array_equal(labels, BASE)
    assert edit.region == (slice(3, 4), slice(0, 7))
    other = labels.copy()
    other[edit.indices] = edit.values
    expect = BASE.copy()
    expect[3] = 0
    np.testing.assert_array_equal(other, expect)
    np.testing.assert_array_equal(edit.old_values, [3, 3, 4])
    edit.apply(labels)
    np.testing.assert_array_equal(labels, expect)


def test_remove_small_and_relabel():
    labels = BASE.copy()
    edit = remove_small(labels, 3)
    assert edit.ids == (3, 4)
    assert (labels[3] == 0).all()
    edit = relabel_sequential(labels)
    np.testing.assert_array_equal(labels, np.where(BASE == 2, 2, np.where(BASE == 1, 1, 0)))
    assert not edit.changed  # ids 1, 2 were already sequential
    labels = np.array([[0, 5, 5, 9], [7, 0, 9, 9]], np.uint8)
    edit = relabel_sequential(labels)
    np.testing.assert_array_equal(labels, [[0, 1, 1, 3], [2, 0, 3, 3]])
    assert edit.info["mapping"] == {5: 1, 7: 2, 9: 3}
    assert not remove_small(labels, 1).changed


def test_fill_holes_single_owner_only():
    labels = arr(
        """
        111.222.
        1.1.2.22
        111.2222
        ..33....
        .3.44...
        ..34....
        """
    )
    edit = fill_holes(labels)
    # the hole of 1 and of 2 are filled; the pixel between 3 and 4 stays 0 (two owners);
    # the open notch at row 0 col 7 touches the edge
    assert labels[1, 1] == 1
    assert labels[1, 5] == 2
    assert labels[4, 2] == 0
    assert labels[0, 7] == 0
    assert edit.ids == (1, 2)
    assert int(edit.mask.sum()) == 2
    labels2 = arr("111 1.1 111 ... 222 2.2 222")
    fill_holes(labels2, ids=[2])
    assert labels2[1, 1] == 0
    assert labels2[5, 1] == 2


def test_split_label_by_seeds_exact():
    labels = arr(
        """
        ..........
        .33333333.
        .33333333.
        .33333333.
        .33333333.
        .......5..
        """
    )
    edit = split_label(labels, 3, [(2, 2), (2, 7)])
    expect = arr(
        """
        ..........
        .33336666.
        .33336666.
        .33336666.
        .33336666.
        .......5..
        """
    )
    np.testing.assert_array_equal(labels, expect)
    assert edit.new_ids == (3, 6)
    assert edit.region == (slice(1, 5), slice(5, 9))


def test_split_by_line_keeps_every_pixel():
    before = arr(
        """
        .........
        .3333333.
        .3333333.
        .3333333.
        .........
        """
    )
    labels = before.copy()
    edit = split_label_by_line(labels, 3, [(-1, 5), (6, 5)])  # vertical line, extends past the array
    assert edit.new_ids == (3, 4)  # the larger (left) piece keeps 3
    np.testing.assert_array_equal(labels[1:4, 1:5], 3)
    np.testing.assert_array_equal(labels[1:4, 6:8], 4)
    assert set(np.unique(labels[1:4, 5])) <= {3, 4}  # the cut column goes to a neighbour
    np.testing.assert_array_equal(labels > 0, before > 0)


def test_split_by_line_on_a_plane_and_3d_refused():
    stack = np.stack([BASE, BASE])
    edit = split_label_by_line(stack, 2, [(0, 0, 5), (0, 1, 4)], plane=(1,))  # diagonal cut
    assert edit.new_ids == (2, 5)
    np.testing.assert_array_equal(stack[0], BASE)
    assert set(np.unique(stack[1][:2, 4:6])) == {2, 5}
    with pytest.raises(ValueError, match="2D planes"):
        split_label_by_line(stack, 2, [(0, 0), (1, 1)])


def test_plane_of_a_stack():
    stack = np.stack([BASE, BASE, BASE])
    edit = delete_labels(stack, [2], plane=(1,))
    assert edit.region == (slice(1, 2), slice(0, 2), slice(4, 6))
    assert edit.old.shape == (1, 2, 2)
    np.testing.assert_array_equal(stack[0], BASE)
    np.testing.assert_array_equal(stack[2], BASE)
    assert not (stack[1] == 2).any()
    # napari-style full coordinates for seeds: only the last two are used; new id above the stack max
    edit = split_label(stack, 1, [(2, 0, 0), (2, 1, 1)], plane=(2,))
    assert edit.new_ids == (1, 5)
    assert set(np.unique(stack[2][:2, :2])) == {1, 5}
    edit.revert(stack)
    np.testing.assert_array_equal(stack[2], BASE)


def test_rasterize_polyline():
    mask = rasterize_polyline(np.array([[0, 0], [2, 2], [2, 4]]), (3, 4))
    np.testing.assert_array_equal(mask, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a: merge_labels(a, [1, 9]), r"\[9\] not found"),
        (lambda a: merge_labels(a, [1]), "at least two"),
        (lambda a: merge_labels(a, [0, 1]), "positive"),
        (lambda a: delete_labels(a, []), "no labels"),
        (lambda a: split_label(a, 3, [(3, 0)]), "at least two seed"),
        (lambda a: split_label(a, 3, [(3, 0), (0, 0)]), r"seed \(0, 0\) is outside object 3"),
        (lambda a: split_label(a, 3, [(3, 0), (3, 0)]), "same pixel"),
        (lambda a: split_label(a, 3, [(3, 0), (30, 0)]), "outside"),
        (lambda a: split_label(a, 8, [(3, 0), (3, 1)]), "not found"),
        (lambda a: split_label_by_line(a, 2, [(0, 0), (3, 0)]), "does not cut object 2"),
        (lambda a: split_label_by_line(a, 2, [(0, 0)]), "two points"),
        (lambda a: remove_small(a, 0), "min_size"),
        (lambda a: fill_holes(a, ids=[7]), "not found"),
        (lambda a: delete_labels(a, [1], plane=(0,)), "at most ndim - 2"),
        (lambda a: delete_labels(a.astype(float), [1]), "integer label array"),
    ],
)
def test_bad_input_leaves_array_unchanged(call, match):
    labels = BASE.copy()
    with pytest.raises(ValueError, match=match):
        call(labels)
    np.testing.assert_array_equal(labels, BASE)


def test_new_ids_must_fit_the_dtype():
    labels = np.zeros((3, 4), np.uint8)
    labels[:, :] = 255
    with pytest.raises(ValueError, match="uint32"):
        split_label(labels, 255, [(0, 0), (2, 3)])
    assert (labels == 255).all()


def test_empty_edit():
    labels = BASE.copy()
    edit = fill_holes(labels)
    assert isinstance(edit, Edit)
    assert not edit.changed
    assert edit.indices == ()
    edit.revert(labels)
    np.testing.assert_array_equal(labels, BASE)


def test_undo_through_napari_data_setitem():
    napari_labels = pytest.importorskip("napari.layers").Labels
    layer = napari_labels(BASE.copy())
    edit = merge_labels(layer.data, [1, 2], apply=False)
    layer.data_setitem(edit.indices, edit.values)
    assert (layer.data[:2, 4:6] == 1).all()
    layer.undo()
    np.testing.assert_array_equal(layer.data, BASE)
    layer.redo()
    assert (layer.data[:2, 4:6] == 1).all()
