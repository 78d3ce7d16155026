"""Correct's recovery copies: written in the background after a burst of edits, offered when
the same image is opened again, restored through Correct's button, cleared by saving.

The crash case runs a real napari viewer in a subprocess (under the same virtual display),
paints, and kills it with SIGKILL once the copy is written; a new viewer then restores it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt

from napari_deepseg._napari import correct_recovery as cr
from napari_deepseg._napari.correct_widget import CorrectWidget
from napari_deepseg.correction.recovery import find_copies, image_key, prune, write_copy
from napari_deepseg.samples import synthetic_nuclei

from .test_correct_keys import _canvas, _pixel

LEFT = Qt.MouseButton.LeftButton
HERE = Path(__file__).parent


def _image():
    return synthetic_nuclei((64, 64), seed=5)[0]


def _dock(viewer, qtbot) -> CorrectWidget:
    widget = viewer.window.add_dock_widget(CorrectWidget(viewer), name="Correct").widget()
    qtbot.wait(10)
    return widget


def test_a_killed_napari_is_restored_in_a_new_one(make_napari_viewer, qtbot, tmp_path, recovery_dir):
    expected = tmp_path / "expected.npy"
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_paint_then_wait.py"), str(expected)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        line = child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)  # a crash: nothing is saved, no clean-up runs
        _, err = child.communicate(timeout=60)
    assert line == "WRITTEN", err[-2000:]
    assert child.returncode == -signal.SIGKILL
    painted = np.load(expected)
    assert (painted == 99).sum() > 20

    viewer = make_napari_viewer(show=True)
    viewer.add_image(_image(), name="cells")  # the same image, opened again
    widget = _dock(viewer, qtbot)
    assert widget.recovery_row.visible
    assert "'cells labels' of 'cells'" in widget.recovery_text.value
    qtbot.mouseClick(widget.restore_button.native, LEFT)
    restored = viewer.layers["cells labels"]
    np.testing.assert_array_equal(restored.data, painted)
    assert widget.labels.value is restored
    assert not widget.recovery_row.visible
    assert widget.save_to(tmp_path / "saved.tif")
    assert find_copies(image_key(_image(), "cells"), recovery_dir) == []  # saved: the copy is gone


def test_a_burst_of_edits_is_written_once_in_a_worker(make_napari_viewer, qtbot, monkeypatch, recovery_dir):
    threads, calls, original = [], [], cr.write_copy_iter

    def recording(*args):  # runs where the worker drives the generator
        threads.append(threading.get_ident())
        calls.append(args[3])
        return (yield from original(*args))

    monkeypatch.setattr(cr, "write_copy_iter", recording)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(_image(), name="cells")
    layer = viewer.add_labels(np.zeros((64, 64), np.uint16), name="mine")
    widget = _dock(viewer, qtbot)
    widget.labels.value = layer
    widget.recovery.timer.setInterval(300)
    viewer.reset_view()
    viewer.layers.selection.active = layer
    layer.mode, layer.selected_label, layer.brush_size = "paint", 3, 3
    for x in range(5, 40, 5):  # a burst of brush dabs, clicked on the canvas
        qtbot.mouseClick(_canvas(viewer), LEFT, pos=_pixel(viewer, (20, x)))
    assert (layer.data == 3).sum() >= 7 * 5
    assert len(layer._undo_history) == 7  # seven edits
    assert calls == []  # nothing written while the person paints
    qtbot.waitUntil(lambda: len(widget.recovery.written) == 1, timeout=10_000)
    qtbot.wait(600)
    assert calls == ["mine"]  # one write for the burst
    assert threads[0] != threading.get_ident()  # not on the GUI thread
    (copy,) = find_copies(image_key(_image(), "cells"), recovery_dir)
    np.testing.assert_array_equal(copy.read(), layer.data)


def test_an_image_added_later_offers_its_copy_and_discard_deletes_it(make_napari_viewer, qtbot, recovery_dir):
    labels = np.zeros((64, 64), np.uint16)
    labels[5:9, 5:9] = 4
    write_copy(labels, image_key(_image(), "cells"), "cells", "cells labels", recovery_dir)
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer, qtbot)
    assert not widget.recovery_row.visible
    viewer.add_image(_image() + 1, name="cells")  # other values: another image, no offer
    assert not widget.recovery_row.visible
    viewer.add_image(_image(), name="cells [1]")  # napari renames a second "cells": another key
    assert not widget.recovery_row.visible
    viewer.layers.clear()
    viewer.add_image(_image(), name="cells")
    assert widget.recovery_row.visible
    qtbot.mouseClick(widget.discard_button.native, LEFT)
    assert not widget.recovery_row.visible
    assert find_copies(image_key(_image(), "cells"), recovery_dir) == []


def test_copies_are_bounded_in_age_and_size(recovery_dir, monkeypatch):
    from napari_deepseg.correction import recovery

    old = write_copy(np.ones((8, 8), np.uint16), "k1", "a", "old", recovery_dir)
    os.utime(old, (1, 1))  # written long ago
    prune(recovery_dir)
    assert not old.exists()
    monkeypatch.setattr(recovery, "MAX_BYTES", 100)
    assert write_copy(np.ones((64, 64), np.uint16), "k2", "a", "big", recovery_dir) is None


def test_the_segment_dock_says_unsaved_labels_can_be_restored(make_napari_viewer, monkeypatch, recovery_dir):
    shown: list[str] = []
    monkeypatch.setattr(cr, "show_info", shown.append)
    monkeypatch.setattr(cr, "_announced", set())
    key = image_key(_image(), "cells")
    write_copy(np.ones((64, 64), np.uint16), key, "cells", "cells labels", recovery_dir)
    viewer = make_napari_viewer(show=True)
    viewer.window.add_plugin_dock_widget("napari-deepseg", "Segment")  # Correct is not open
    viewer.add_image(_image(), name="cells")
    assert shown == [
        "napari-deepseg: unsaved labels 'cells labels' of 'cells' can be restored: "
        "open Plugins > DeepSeg > Correct"
    ]
    viewer.add_image(_image(), name="other")
    assert len(shown) == 1  # once, and only for the image it belongs to
