"""Correct's target and its helper layers, through real Qt clicks in a real viewer.

- Removing a Labels layer (napari's delete-layer button) removes the helper layers Correct made
  for it (seeds, cut lines, reviewed rectangles, selection highlight) and its status line.
- A Labels layer a person adds (e.g. a ground truth opened after segmenting) does not become
  Correct's target until the person picks it (a click in the layer list); Segment's new results
  are followed. The header always names the target.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QPushButton

from napari_deepseg._napari.correct_target import owner_of
from napari_deepseg._napari.correct_widget import CorrectWidget
from napari_deepseg._napari.layers import mark_result

from .test_correct_keys import _click, _errors, _objects, shown_viewer

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def viewer(make_napari_viewer, qtbot):
    return shown_viewer(make_napari_viewer, qtbot)


def _press(qtbot, widget, text: str) -> None:
    (button,) = [b for b in widget.findChildren(QPushButton) if b.text() == text]
    qtbot.mouseClick(button, LEFT)


def _dock(viewer, qtbot) -> CorrectWidget:
    widget = viewer.window.add_dock_widget(CorrectWidget(viewer), name="Correct").widget()
    viewer.reset_view()
    qtbot.wait(50)
    return widget


def _click_in_layer_list(qtbot, viewer, layer) -> None:
    view = viewer.window._qt_viewer.layers
    row = len(viewer.layers) - 1 - viewer.layers.index(layer)  # the list shows the top layer first
    rect = view.visualRect(view.model().index(row, 0))
    qtbot.mouseClick(view.viewport(), LEFT, Qt.KeyboardModifier.NoModifier, rect.center())


def test_removing_the_labels_removes_its_helpers_and_status(viewer, qtbot):
    result = viewer.layers["result"]
    widget = _dock(viewer, qtbot)
    assert widget.labels.value is result
    assert "result" in widget.header.value
    _press(qtbot, widget, "Split by seeds")  # no seeds layer yet: one is made
    _press(qtbot, widget, "Cut along line")
    _press(qtbot, widget, "Mark view reviewed")
    assert widget.status.value.startswith("reviewed: ")
    viewer.layers.selection.active = result
    _click(qtbot, viewer, (5, 5))  # shift-click: the selection highlight
    helpers = [layer.name for layer in viewer.layers if owner_of(layer) == id(result)]
    assert sorted(helpers) == ["result cut lines", "result reviewed", "result seeds", "result selection"]
    viewer.layers.selection = {result}
    qtbot.mouseClick(viewer.window._qt_viewer.layerButtons.deleteButton, LEFT)  # napari's delete button
    assert result not in viewer.layers
    qtbot.waitUntil(lambda: not any(owner_of(layer) is not None for layer in viewer.layers), timeout=3000)
    assert [layer.name for layer in viewer.layers] == ["image", "ground truth"]
    assert "reviewed" not in widget.status.value
    assert widget.status.value == "'result' was removed; now editing 'ground truth'"
    assert widget.header.value.endswith("ground truth")
    assert _errors() == []


def test_other_labels_keep_their_helpers(viewer, qtbot):
    result, truth = viewer.layers["result"], viewer.layers["ground truth"]
    widget = _dock(viewer, qtbot)
    _press(qtbot, widget, "Mark view reviewed")  # on the result
    viewer.layers.remove(truth)
    qtbot.wait(50)
    assert "result reviewed" in [layer.name for layer in viewer.layers]
    assert widget.labels.value is result
    assert widget.status.value.startswith("reviewed: ")  # the target's status stays


def test_an_added_layer_is_edited_only_when_the_person_picks_it(viewer, qtbot):
    result = viewer.layers["result"]
    widget = _dock(viewer, qtbot)
    truth = viewer.add_labels(_objects(), name="new truth")  # as File > Open adds it: active
    qtbot.wait(50)
    assert viewer.layers.selection.active is truth
    assert widget.labels.value is result  # not silently switched
    assert widget.header.value.endswith("result")
    assert widget.status.value == "'new truth' added; still editing 'result'"
    _click_in_layer_list(qtbot, viewer, truth)  # the person picks it (already the active layer)
    assert widget.labels.value is truth
    assert widget.header.value.endswith("new truth")
    _click_in_layer_list(qtbot, viewer, result)
    assert widget.labels.value is result
    newer = viewer.add_labels(_objects(), name="newer result")
    mark_result(newer, output="instances")  # Segment marks its result right after adding it
    qtbot.waitUntil(lambda: widget.labels.value is newer, timeout=2000)
    assert widget.header.value.endswith("newer result")
    newer.name = "renamed result"
    assert widget.header.value.endswith("renamed result")
    assert np.array_equal(result.data, _objects())  # nothing was edited on the way
    assert _errors() == []
