"""Run by test_correct_recovery.py in a subprocess: a real napari viewer with Correct docked;
paint on the labels with mouse clicks on the canvas (napari's brush), wait until the recovery
copy is written, print WRITTEN and keep the event loop going until the test kills this process
(SIGKILL)."""

from __future__ import annotations

import sys
import time

import napari
import numpy as np
from qtpy.QtCore import QPoint, Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication

from napari_deepseg._napari.correct_widget import CorrectWidget
from napari_deepseg.samples import synthetic_nuclei


def _pixel(viewer, yx) -> QPoint:
    """The canvas pixel showing world point ``yx`` (2D view)."""
    native = viewer.window._qt_viewer.canvas.native
    camera = viewer.camera
    offset = (np.asarray(yx, float) - np.asarray(camera.center[-2:], float)) * camera.zoom
    return QPoint(round(native.width() / 2 + offset[1]), round(native.height() / 2 + offset[0]))


def main(expected: str) -> None:
    viewer = napari.Viewer(show=True)
    image, labels = synthetic_nuclei((64, 64), seed=5)[:2]
    viewer.add_image(image, name="cells")
    layer = viewer.add_labels(labels.astype(np.uint16), name="cells labels")
    widget = CorrectWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Correct")
    app = QApplication.instance()
    canvas = viewer.window._qt_viewer.canvas.native
    while canvas.width() < 100:
        app.processEvents()
    viewer.reset_view()
    viewer.layers.selection.active = layer
    layer.mode, layer.selected_label, layer.brush_size = "paint", 99, 7
    for x in (10, 14, 18):  # three dabs of the brush, clicked on the canvas
        where = _pixel(viewer, (30, x))
        QTest.mouseClick(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, where)
        app.processEvents()
    np.save(expected, layer.data)  # what the person sees before the crash
    deadline = time.time() + 90
    while not widget.recovery.written and time.time() < deadline:
        app.processEvents()
        time.sleep(0.02)
    print("WRITTEN" if widget.recovery.written else "TIMEOUT", flush=True)
    while True:  # the test kills the process here, mid-session and unsaved
        app.processEvents()
        time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1])
