"""The four Plugins > DeepSeg entries as separate docks never grow napari's window past the
screen: they become tabs of one dock area and scroll inside it.

The screen case runs napari in a subprocess under its own 1366x768 Xvfb screen (the size a
laptop gives) and clicks the four entries in the Plugins menu (their menu actions triggered).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from napari.utils.key_bindings import coerce_keybinding
from qtpy.QtCore import Qt

from napari_deepseg._napari.correct_widget import SHORTCUTS, CorrectWidget
from napari_deepseg._napari.docking import DockScroll
from napari_deepseg._napari.segment_widget import SegmentWidget
from napari_deepseg._napari.train_widget import FineTuneWidget

HERE = Path(__file__).parent


def _open_on_small_screen(order: list[str]) -> dict:
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is needed to start a 1366x768 screen")
    script = str(HERE / "_open_four_docks.py")
    out = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1366x768x24", sys.executable, script, *order],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stderr[-3000:]
    return json.loads(lines[-1])


@pytest.mark.parametrize(
    "order", [["Segment", "Correct", "Fine-tune", "Batch"], ["Fine-tune", "Correct", "Batch", "Segment"]]
)
def test_four_docks_fit_a_1366x768_screen(order):
    report = _open_on_small_screen(order)
    assert report["room"] <= 768
    assert max(report["heights"]) <= report["room"]  # never past the screen, after any entry
    assert report["docks"] == 4
    assert report["tabbed"] == ["Batch", "Correct", "Fine-tune", "Segment"]  # one group of tabs
    assert report["inner"] == ["BatchDock", "CorrectDock", "FineTuneDock", "SegmentDock"]


def test_docked_widgets_are_still_the_widgets_and_correct_releases_on_close(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="cells")
    _, seg = viewer.window.add_plugin_dock_widget("napari-deepseg", "Segment")
    dock, correct = viewer.window.add_plugin_dock_widget("napari-deepseg", "Correct")
    _, tune = viewer.window.add_plugin_dock_widget("napari-deepseg", "Fine-tune")
    window, docks = viewer.window._qt_window, list(viewer.window._wrapped_dock_widgets.values())

    def one_group() -> bool:
        return all(len(window.tabifiedDockWidgets(d)) == len(docks) - 1 for d in docks)

    qtbot.waitUntil(one_group, timeout=3000)
    assert isinstance(dock.widget(), DockScroll)  # the widget scrolls inside its dock
    assert isinstance(seg, SegmentWidget)
    assert isinstance(correct, CorrectWidget)
    assert isinstance(tune, FineTuneWidget)
    assert viewer.window.dock_widgets[dock.name] is correct  # napari still sees the widget
    assert viewer.window.add_plugin_dock_widget("napari-deepseg", "Correct")[1] is correct
    assert coerce_keybinding("Shift-M") in viewer.keymap
    qtbot.mouseClick(dock.title.close_button, Qt.MouseButton.LeftButton)  # napari's close button
    qtbot.waitUntil(lambda: coerce_keybinding("Shift-M") not in viewer.keymap, timeout=3000)
    for key in SHORTCUTS:
        assert coerce_keybinding(key) not in viewer.keymap
