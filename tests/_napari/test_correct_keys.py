"""The Correct widget's shortcuts and shift-click through real Qt events on napari's canvas.

Key presses and mouse clicks are sent with pytest-qt to the canvas's native Qt widget, the way
a user's keyboard and mouse reach napari: napari's own keys (Ctrl-Z, the paint-mode keys) and
every documented shortcut must work before, while and after the Correct dock is open, without
an error notification.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels
from napari.utils.key_bindings import coerce_keybinding
from napari.utils.notifications import NotificationSeverity, notification_manager
from qtpy.QtCore import QPoint, Qt

from napari_deepseg._napari.correct_widget import SHORTCUTS, CorrectWidget
from napari_deepseg._napari.layers import mark_result
from napari_deepseg._napari.reviewed import reviewed_mask_for
from napari_deepseg._napari.selection import is_helper_layer


def _objects() -> np.ndarray:
    """(40, 48) uint16: 1 and 2 touch, 3 a bar, 6 a dumbbell (two squares and a neck)."""
    labels = np.zeros((40, 48), np.uint16)
    labels[2:10, 2:10] = 1
    labels[2:10, 10:18] = 2
    labels[14:18, 2:22] = 3
    labels[22:32, 24:32] = 6
    labels[22:32, 38:46] = 6
    labels[26:28, 32:38] = 6
    return labels


def _canvas(viewer):
    return viewer.window._qt_viewer.canvas.native


def _pixel(viewer, yx) -> QPoint:
    """The canvas pixel showing world point ``yx`` (2D view)."""
    native = _canvas(viewer)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    center = np.asarray(camera.center[-2:], float)
    offset = (np.asarray(yx, float) - center) * camera.zoom
    return QPoint(round(native.width() / 2 + offset[1]), round(native.height() / 2 + offset[0]))


def _key(qtbot, viewer, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(_canvas(viewer), key, modifier)


def _click(qtbot, viewer, yx, modifier=Qt.KeyboardModifier.ShiftModifier) -> None:
    qtbot.mouseClick(_canvas(viewer), Qt.MouseButton.LeftButton, modifier, _pixel(viewer, yx))


def _errors() -> list[str]:
    return [str(n.message) for n in notification_manager.records if n.severity >= NotificationSeverity.ERROR]


@pytest.fixture
def viewer(make_napari_viewer, qtbot):
    return shown_viewer(make_napari_viewer, qtbot)


def shown_viewer(make_napari_viewer, qtbot):
    """A shown viewer with an image, a hidden ground truth and a result (active: the image)."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((40, 48), np.float32), name="image")
    truth = viewer.add_labels(_objects(), name="ground truth", visible=False)
    assert isinstance(truth, Labels)
    result = viewer.add_labels(_objects(), name="result")
    mark_result(result, output="instances")
    viewer.layers.selection.active = viewer.layers["image"]
    qtbot.waitUntil(lambda: _canvas(viewer).width() > 100, timeout=5000)
    notification_manager.records.clear()
    return viewer


def _napari_keys_work(qtbot, viewer, layer: Labels) -> None:
    """Paint-mode keys switch modes, Ctrl-Z undoes the last edit; no error notification."""
    viewer.layers.selection.active = layer
    _key(qtbot, viewer, Qt.Key.Key_P)
    assert layer.mode == "paint"
    _key(qtbot, viewer, Qt.Key.Key_Z)
    assert layer.mode == "pan_zoom"
    before = layer.data.copy()
    layer.data_setitem((np.array([35]), np.array([5])), 9)
    _key(qtbot, viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(layer.data, before)
    assert _errors() == []


def test_every_shortcut_with_qt_events_and_released_on_close(viewer, qtbot):
    result = viewer.layers["result"]
    _napari_keys_work(qtbot, viewer, result)  # before the dock opens
    dock, widget = viewer.window.add_dock_widget(CorrectWidget(viewer), name="Correct"), None
    widget = dock.widget()
    assert widget.labels.value is result  # the active layer, not the hidden ground truth
    viewer.reset_view()
    qtbot.wait(50)

    # Shift-click two touching objects on the canvas, then Shift-M merges them (one undo step)
    before = result.data.copy()
    _click(qtbot, viewer, (5, 5))
    _click(qtbot, viewer, (5, 14))
    assert widget.selection == [1, 2]
    assert widget.highlight.layer is not None
    assert len(widget.highlight.layer.data) == 2
    assert viewer.layers.selection.active is result  # the highlight does not take the focus
    _key(qtbot, viewer, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    assert not (result.data == 2).any()
    assert widget.selection == []
    _key(qtbot, viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # napari's undo
    np.testing.assert_array_equal(result.data, before)

    # Shift-D deletes the object under the cursor
    viewer.cursor.position = (15.0, 10.0)
    _key(qtbot, viewer, Qt.Key.Key_D, Qt.KeyboardModifier.ShiftModifier)
    assert not (result.data == 3).any()
    _key(qtbot, viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(result.data, before)

    # Shift-S: first press makes a seeds layer; two seeds, then Shift-S splits the dumbbell
    viewer.layers.selection.active = result
    _key(qtbot, viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    seeds = widget.points.value
    assert seeds is not None
    assert seeds.mode == "add"
    seeds.data = np.array([[27, 28], [27, 42]])
    _key(qtbot, viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    assert len(np.unique(result.data[22:32, 24:46])) == 3  # background and two pieces

    # Shift-C: a cut-lines layer, a line across the bar, Shift-C cuts it
    viewer.layers.selection.active = result
    _key(qtbot, viewer, Qt.Key.Key_C, Qt.KeyboardModifier.ShiftModifier)
    lines = widget.shapes.value
    lines.add_lines(np.array([[12, 12], [20, 12]]))
    _key(qtbot, viewer, Qt.Key.Key_C, Qt.KeyboardModifier.ShiftModifier)
    assert len(np.unique(result.data[14:18, 2:22])) == 2

    # Shift-H fills holes, Shift-X clears the selection, Shift-R marks the view reviewed
    result.data_setitem((np.array([5]), np.array([5])), 0)
    viewer.layers.selection.active = result
    _key(qtbot, viewer, Qt.Key.Key_H, Qt.KeyboardModifier.ShiftModifier)
    assert result.data[5, 5] == 1
    _click(qtbot, viewer, (5, 5))
    assert widget.selection == [1]
    _key(qtbot, viewer, Qt.Key.Key_X, Qt.KeyboardModifier.ShiftModifier)
    assert widget.selection == []
    _key(qtbot, viewer, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    mask = reviewed_mask_for(result)  # the visible canvas: all rows, the middle columns
    assert mask is not None
    assert mask[:, 23].all()
    assert 0.2 < mask.mean() <= 1
    assert _errors() == []
    _napari_keys_work(qtbot, viewer, result)  # while the dock is open

    # napari's close button: the keys and the shift-click are released, napari's keys still work
    dock.destroyOnClose()
    for key in SHORTCUTS:
        assert coerce_keybinding(key) not in viewer.keymap
    assert widget._on_click not in viewer.mouse_drag_callbacks
    assert not any(is_helper_layer(layer) for layer in viewer.layers)
    snapshot = result.data.copy()
    _key(qtbot, viewer, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(result.data, snapshot)
    _napari_keys_work(qtbot, viewer, result)  # after it closed
    assert _errors() == []


def test_correct_follows_the_active_layer_and_the_newest_result(viewer, qtbot):
    widget = CorrectWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.labels.value is viewer.layers["result"]  # Segment's result, not the hidden truth
    newer = viewer.add_labels(_objects(), name="newer result")
    mark_result(newer, output="instances")  # as Segment does, right after adding it
    qtbot.waitUntil(lambda: widget.labels.value is newer, timeout=2000)  # a new result: followed
    viewer.layers.selection.active = viewer.layers["ground truth"]
    assert widget.labels.value is viewer.layers["ground truth"]
    viewer.layers.selection.active = viewer.layers["image"]
    assert widget.labels.value is viewer.layers["ground truth"]  # an image keeps the choice


def test_removing_the_labels_layer_removes_its_highlight(viewer, qtbot):
    widget = CorrectWidget(viewer)
    qtbot.addWidget(widget)
    result = viewer.layers["result"]
    viewer.layers.selection.active = result
    _click(qtbot, viewer, (5, 5))  # shift-click selects object 1: a highlight layer appears
    assert widget.selection == [1]
    assert any(is_helper_layer(layer) for layer in viewer.layers)
    viewer.layers.remove(result)
    qtbot.waitUntil(lambda: not any(is_helper_layer(layer) for layer in viewer.layers), timeout=2000)
    assert _errors() == []


def test_correct_keeps_its_layer_when_layers_are_renamed(viewer, qtbot):
    """A live result layer renamed from "... (running)" to its final name (and its sibling
    renamed first) stays Correct's layer: seen in a real viewer after a blockwise run, where
    Correct ended on the classes layer while the instances were active."""
    widget = CorrectWidget(viewer)
    qtbot.addWidget(widget)
    first = viewer.add_labels(_objects(), name="classes (running)")
    mark_result(first, output="classes", partial=True)  # as Segment's live layers are
    second = viewer.add_labels(_objects(), name="instances (running)")
    mark_result(second, output="instances", partial=True)
    qtbot.waitUntil(lambda: widget.labels.value is second, timeout=2000)
    first.name = "classes"
    second.name = "instances"
    assert widget.labels.value is second


@pytest.mark.parametrize("helper", ["seeds", "cut lines"])
def test_ctrl_z_right_after_a_split_undoes_it_with_the_helper_layer_active(viewer, qtbot, helper):
    result = viewer.layers["result"]
    widget = viewer.window.add_dock_widget(CorrectWidget(viewer), name="Correct").widget()
    viewer.reset_view()
    viewer.layers.selection.active = result
    before = result.data.copy()
    if helper == "seeds":
        _key(qtbot, viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)  # makes the seeds layer
        layer = widget.points.value
        layer.data = np.array([[27, 28], [27, 42]])
        _key(qtbot, viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    else:
        _key(qtbot, viewer, Qt.Key.Key_C, Qt.KeyboardModifier.ShiftModifier)  # makes the cut-lines layer
        layer = widget.shapes.value
        layer.add_lines(np.array([[12, 12], [20, 12]]))
        _key(qtbot, viewer, Qt.Key.Key_C, Qt.KeyboardModifier.ShiftModifier)
    assert not np.array_equal(result.data, before)  # split
    assert viewer.layers.selection.active is layer  # the helper layer is still the active one
    split = result.data.copy()
    _key(qtbot, viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(result.data, before)
    _key(qtbot, viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(result.data, split)
    assert _errors() == []


def test_split_pieces_take_colours_that_stand_out_from_the_image(make_napari_viewer, qtbot):
    """On an H&E-like pink image, the new piece of a split (Shift-S, Qt keys) gets an id whose
    colour is far from the image under it, not simply the next free id."""
    from napari_deepseg._napari.correct_colors import CANDIDATES

    viewer = make_napari_viewer(show=True)
    pink = np.zeros((40, 48, 3), np.uint8)
    pink[...] = (230, 140, 200)
    viewer.add_image(pink, name="he", rgb=True)
    result = viewer.add_labels(_objects(), name="result")
    qtbot.waitUntil(lambda: _canvas(viewer).width() > 100, timeout=5000)
    widget = viewer.window.add_dock_widget(CorrectWidget(viewer), name="Correct").widget()
    viewer.reset_view()
    viewer.layers.selection.active = result
    _key(qtbot, viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    widget.points.value.data = np.array([[27, 28], [27, 42]])
    _key(qtbot, viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    ids = sorted(int(i) for i in np.unique(result.data[22:32, 24:46]) if i)
    assert len(ids) == 2
    assert 6 in ids  # the first seed's piece keeps its id
    (new,) = [i for i in ids if i != 6]
    assert 6 < new <= 6 + CANDIDATES
    background = np.array([230, 140, 200]) / 255

    def distance(label_id):
        return np.linalg.norm(np.asarray(result.get_color(label_id)[:3]) - background)

    assert distance(new) > 0.5  # clearly another colour than the pink under it
    assert distance(new) > distance(7)  # the next free id would have been closer to pink
    kept = np.asarray(result.get_color(6)[:3])
    assert np.linalg.norm(np.asarray(result.get_color(new)[:3]) - kept) > 0.3  # and unlike its neighbour
    _key(qtbot, viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # still one undo step
    np.testing.assert_array_equal(result.data, _objects())


def test_shift_click_and_merge_in_the_dock_the_plugins_menu_opens(viewer, qtbot):
    """Plugins > DeepSeg > Correct hands the widget napari's public-only proxy of the viewer;
    its layers are proxies too, and an ``is`` between one and the picker's layer was False, so
    shift-clicks selected nothing. The widget keeps the viewer itself (layers.plain_viewer)."""
    result = viewer.layers["result"]
    viewer.layers.selection.active = result
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepseg", "Correct")
    assert type(widget.viewer).__name__ == "Viewer"  # not napari's PublicOnlyProxy
    viewer.reset_view()
    qtbot.wait(100)
    _click(qtbot, viewer, (5, 5))
    _click(qtbot, viewer, (5, 14))
    assert widget.selection == [1, 2]
    _key(qtbot, viewer, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    assert not (result.data == 2).any()
    assert _errors() == []
