"""The Correct dock widget end to end in a real viewer: each edit is one undo step."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import mouse_press_callbacks
from napari.utils.key_bindings import coerce_keybinding
from vispy.util.event import Event

from napari_deepseg._napari import correct_widget as cw
from napari_deepseg._napari.correct_widget import SHORTCUTS, CorrectWidget
from napari_deepseg._napari.reviewed import reviewed_mask_for
from napari_deepseg.correction.reviewed import load_reviewed, reviewed_path


def _objects() -> np.ndarray:
    """(20, 24) uint16: 1 and 2 touch; 3 is a bar to cut; 4 has a hole; 5 is tiny; 6 a dumbbell."""
    labels = np.zeros((20, 24), np.uint16)
    labels[1:5, 1:5] = 1
    labels[1:5, 5:9] = 2
    labels[7:9, 1:11] = 3
    labels[11:16, 1:6] = 4
    labels[13, 3] = 0  # the hole
    labels[18, 22] = 5
    labels[11:16, 12:16] = 6  # dumbbell: two squares and a neck
    labels[11:16, 19:23] = 6
    labels[13, 16:19] = 6
    return labels


@pytest.fixture
def shown(monkeypatch):
    """Messages the widget shows with napari's show_error / show_info."""
    messages: dict[str, list[str]] = {"error": [], "info": []}
    monkeypatch.setattr(cw, "show_error", lambda msg: messages["error"].append(msg))
    monkeypatch.setattr(cw, "show_info", lambda msg: messages["info"].append(msg))
    return messages


@pytest.fixture
def setup(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_labels(_objects(), name="cells")
    widget = CorrectWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Correct")
    assert widget.labels.value is layer
    return viewer, widget, layer


def _shift_click(viewer, yx) -> None:
    """A shift-press through the viewer's mouse callbacks (real Qt clicks: test_correct_keys.py)."""
    event = Event(
        type="mouse_press",
        is_dragging=False,
        modifiers=["Shift"],
        position=tuple(float(c) for c in yx),
        view_direction=None,
        dims_displayed=[0, 1],
        dims_point=[0, 0],
    )
    mouse_press_callbacks(viewer, ReadOnlyWrapper(event, exceptions=("handled",)))


def _undo_restores(layer: Labels, before: np.ndarray) -> None:
    changed = layer.data.copy()
    assert not np.array_equal(changed, before)
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    layer.redo()
    np.testing.assert_array_equal(layer.data, changed)
    layer.undo()


def test_merge_by_shift_click_selection(setup, shown):
    _viewer, widget, layer = setup
    before = layer.data.copy()
    _shift_click(widget.viewer, (2, 2))
    _shift_click(widget.viewer, (2, 6))
    _shift_click(widget.viewer, (10, 10))  # background: ignored
    assert widget.selection == [1, 2]
    assert "1, 2" in widget.selected.value
    _shift_click(widget.viewer, (2, 6))  # toggles off
    _shift_click(widget.viewer, (2, 6))
    assert widget.merge()
    expected = before.copy()
    expected[before == 2] = 1
    np.testing.assert_array_equal(layer.data, expected)
    assert widget.selection == []
    assert len(layer._undo_history) == 1
    _undo_restores(layer, before)
    assert shown["error"] == []


def test_split_by_seed_points(setup, shown):
    _viewer, widget, layer = setup
    before = layer.data.copy()
    assert widget.points.value is None
    assert widget.split_by_seeds()  # no seeds layer yet: one is created, nothing edited
    seeds = widget.points.value
    assert seeds.name == "cells seeds"
    assert seeds.mode == "add"
    np.testing.assert_array_equal(layer.data, before)
    seeds.data = np.array([[13, 13], [13, 21]])
    assert widget.split_by_seeds()
    assert set(np.unique(layer.data[11:16, 12:16])) == {6}
    assert set(np.unique(layer.data[11:16, 19:23])) == {7}
    assert len(seeds.data) == 0  # the seeds were used
    assert len(layer._undo_history) == 1
    _undo_restores(layer, before)
    assert shown["error"] == []


def test_cut_along_line(setup, shown):
    _viewer, widget, layer = setup
    before = layer.data.copy()
    assert widget.cut_by_line()  # creates the cut-lines layer
    lines = widget.shapes.value
    assert lines.name == "cells cut lines"
    lines.add_lines(np.array([[5, 4], [10, 4]]))
    assert widget.cut_by_line()
    assert set(np.unique(layer.data[7:9, 1:4])) | set(np.unique(layer.data[7:9, 5:11])) == {3, 7}
    assert (layer.data > 0).sum() == (before > 0).sum()  # the cut loses no pixel
    assert len(lines.data) == 0
    _undo_restores(layer, before)
    assert shown["error"] == []


def test_delete_selected_and_under_cursor(setup, shown):
    viewer, widget, layer = setup
    before = layer.data.copy()
    _shift_click(widget.viewer, (8, 5))
    assert widget.delete_selected()
    assert not (layer.data == 3).any()
    _undo_restores(layer, before)
    viewer.cursor.position = (2.2, 6.7)
    viewer.keymap[coerce_keybinding("Shift-D")](viewer)  # the shortcut
    assert not (layer.data == 2).any()
    assert len(layer._undo_history) == 1
    _undo_restores(layer, before)
    viewer.cursor.position = (10, 10)  # background
    assert not widget.delete_under_cursor()
    assert "no object under the cursor" in shown["error"][-1]


def test_remove_small_and_fill_holes(setup, shown):
    _viewer, widget, layer = setup
    before = layer.data.copy()
    widget.min_size.value = 2
    assert widget.remove_small_objects()
    assert not (layer.data == 5).any()
    assert (layer.data[before != 5] == before[before != 5]).all()
    _undo_restores(layer, before)
    assert widget.fill()
    assert layer.data[13, 3] == 4
    assert (layer.data != before).sum() == 1
    _undo_restores(layer, before)
    layer.data[0, 0] = 40  # a gap in the ids
    before = layer.data.copy()
    assert widget.relabel()
    assert layer.data.max() == 7
    _undo_restores(layer, before)
    assert shown["error"] == []


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda w: w.merge(), "no labels given"),
        (lambda w: (w._set_selection([1, 99]), w.merge())[1], "not found"),
        (lambda w: (w._set_selection([3]), w.fill())[1], None),  # 3 has no hole: nothing to do
    ],
)
def test_bad_selections_leave_the_layer_unchanged(setup, shown, action, message):
    _viewer, widget, layer = setup
    before = layer.data.copy()
    action(widget)
    np.testing.assert_array_equal(layer.data, before)
    assert len(layer._undo_history) == 0
    if message is None:
        assert shown["error"] == []
    else:
        assert len(shown["error"]) == 1
        assert message in shown["error"][0]
        assert "\n" not in shown["error"][0]


def test_seeds_and_lines_errors_leave_the_layer_unchanged(setup, shown):
    viewer, widget, layer = setup
    before = layer.data.copy()
    seeds = viewer.add_points(np.array([[2, 2], [2, 6]]), name="seeds")  # on two objects
    widget.points.value = seeds
    assert not widget.split_by_seeds()
    assert "outside object 1" in shown["error"][-1]
    seeds.data = np.array([[10, 10], [2, 2]])
    assert not widget.split_by_seeds()
    assert "background" in shown["error"][-1]
    lines = viewer.add_shapes(np.array([[0, 20], [5, 20]]), shape_type="line", name="lines")
    widget.shapes.value = lines
    assert not widget.cut_by_line()
    assert "does not cross any object" in shown["error"][-1]
    lines.data = []
    lines.add_lines(np.array([[6, 5], [7, 5]]))  # into object 3 but not across it
    assert not widget.cut_by_line()
    assert "does not cut object 3" in shown["error"][-1]
    np.testing.assert_array_equal(layer.data, before)
    assert len(layer._undo_history) == 0
    assert len(seeds.data) == 2  # failed edits keep the user's points


def test_no_labels_layer_is_an_error(make_napari_viewer, shown):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)), name="image")
    widget = CorrectWidget(viewer)
    assert widget.labels.value is None
    assert not widget.merge()
    assert "no Labels layer" in shown["error"][0]


def test_plane_of_a_stack_is_edited_alone(make_napari_viewer, shown):
    viewer = make_napari_viewer()
    stack = np.stack([_objects()] * 3)
    layer = viewer.add_labels(stack.copy(), name="stack")
    widget = CorrectWidget(viewer)
    viewer.dims.set_current_step(0, 1)
    widget._set_selection([1, 2])
    assert widget.merge()
    assert not (layer.data[1] == 2).any()
    np.testing.assert_array_equal(layer.data[[0, 2]], stack[[0, 2]])
    layer.undo()
    np.testing.assert_array_equal(layer.data, stack)


def test_shortcuts_are_bound_and_documented(setup):
    viewer, widget, _layer = setup
    for key, (method, _text) in SHORTCUTS.items():
        assert coerce_keybinding(key) in viewer.keymap
        assert callable(getattr(widget, method))
    assert "Shift-M" in widget.toolTip()


def test_reviewed_regions_mark_view_save_and_load(setup, shown, tmp_path):
    viewer, widget, layer = setup
    assert reviewed_mask_for(layer) is None
    assert widget.draw_reviewed()
    shapes = viewer.layers["cells reviewed"]
    shapes.add_rectangles(np.array([[-0.5, -0.5], [-0.5, 9.5], [4.5, 9.5], [4.5, -0.5]]))
    mask = reviewed_mask_for(layer)
    assert mask.sum() == 50
    assert mask[:5, :10].all()
    assert "cells reviewed" not in [n for n, _ in widget._line_choices()]
    assert widget.shapes.value is None  # not offered as a cut-lines layer
    viewer.reset_view()
    assert widget.mark_view()
    assert reviewed_mask_for(layer).all()  # the whole layer is in view
    assert len(shapes.data) == 2
    out = tmp_path / "cells.tif"
    assert widget.save_to(out)
    assert reviewed_path(out).is_file()
    mask, rects = load_reviewed(out)
    assert mask.all()
    assert len(rects) == 2
    assert widget.clear_reviewed()
    assert reviewed_mask_for(layer) is None
    assert "cells reviewed" not in viewer.layers
    assert widget.load_from(reviewed_path(out))
    assert reviewed_mask_for(layer).all()
    assert len(viewer.layers["cells reviewed"].data) == 2
    assert shown["error"] == []


def test_split_uses_the_source_image_and_boundary_probability(make_napari_viewer, shown):
    viewer = make_napari_viewer()
    labels = np.zeros((12, 32), np.uint16)
    labels[1:11, 1:31] = 5
    rgb = np.zeros((12, 32, 3), np.uint8)
    viewer.add_image(rgb, name="other")
    source = viewer.add_image(rgb.copy(), name="cells", rgb=True)
    boundary = np.zeros((12, 32), np.float16)
    boundary[:, 9] = 1
    prob = viewer.add_image(boundary, name="cells nuclei probability boundary")
    prob.metadata["deepseg_probability"] = True
    layer = viewer.add_labels(labels, name="cells nuclei instances")
    layer.metadata["deepseg"] = {"source": "cells", "output": "instances"}
    guides = cw.tools.split_guides(viewer, layer)
    assert guides["image"] is source.data
    assert guides["boundary"] is prob.data
    widget = CorrectWidget(viewer)
    widget.points.value = viewer.add_points(np.array([[5, 3], [5, 28]]), name="seeds")
    viewer.layers.selection.active = layer
    assert widget.split_by_seeds()
    assert 7 <= (layer.data[5] == 5).sum() <= 10  # cut at the model's boundary, not the middle
    assert shown["error"] == []
