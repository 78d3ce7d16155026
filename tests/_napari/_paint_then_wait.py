"""Run by test_correct_recovery.py in a subprocess: a real napari viewer with Correct docked;
paint on the labels as napari's brush does, wait until the recovery copy is written, print
WRITTEN and keep the event loop going until the test kills this process (SIGKILL)."""

from __future__ import annotations

import sys
import time

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_deepseg._napari.correct_widget import CorrectWidget
from napari_deepseg.samples import synthetic_nuclei


def main(expected: str) -> None:
    viewer = napari.Viewer(show=True)
    image, labels = synthetic_nuclei((64, 64), seed=5)[:2]
    viewer.add_image(image, name="cells")
    layer = viewer.add_labels(labels.astype(np.uint16), name="cells labels")
    widget = CorrectWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Correct")
    app = QApplication.instance()
    layer.brush_size = 7
    for x in (10, 14, 18):  # a stroke of three dabs, as the brush paints
        layer.paint((30, x), 99)
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
