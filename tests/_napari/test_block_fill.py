"""A plane larger than a block fills its result layer block by block, in a real viewer."""

from __future__ import annotations

import mmap
import time

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QRect, Qt

from napari_deepseg._napari import segment_widget as sw
from napari_deepseg._napari.segment_widget import SegmentWidget
from napari_deepseg.inference import segment
from napari_deepseg.models import load_model, save_model
from napari_deepseg.samples import synthetic_nuclei

WAIT_MS = 120_000


@pytest.fixture
def errors(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(sw, "show_error", shown.append)
    return shown


def _slowed(model, seconds: float):
    forward = model.forward

    def slow_forward(x):
        time.sleep(seconds)
        return forward(x)

    model.forward = slow_forward
    return model


def _big_plane(make_napari_viewer, tiny_unet, tmp_path, seconds: float):
    """A viewer with the Segment dock on a 1100x1100 image and the tiny model, slowed by
    ``seconds`` a forward pass; returns (viewer, widget, image, model path)."""
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    image = synthetic_nuclei((1100, 1100), n_nuclei=600, seed=7)[0]
    viewer.add_image(image, name="big")
    path = save_model(tmp_path / "tiny.pt", tiny_unet)
    choice = widget.models.add(path)
    widget.model.value = choice
    widget._remember(choice, _slowed(load_model(path), seconds))
    return viewer, widget, image, path


def test_big_plane_fills_block_by_block(make_napari_viewer, qtbot, tiny_unet, tmp_path, errors):
    viewer, widget, image, path = _big_plane(make_napari_viewer, tiny_unet, tmp_path, 0.02)
    widget.out_classes.value = False
    # Advanced > max memory: 1 MB, typed into the spin box (the smallest blocks, 512 pixels)
    widget.advanced.expand(animate=False)
    spin = widget.max_memory.native
    spin.selectAll()
    qtbot.keyClicks(spin, "1")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert widget.max_memory.value == 1

    seen = []  # (block done, layer, filled pixels) each time a block reaches the GUI

    def watch(event):
        if event.stage == "blocks":
            layer = next((lyr for lyr in viewer.layers if lyr.name.endswith("(running)")), None)
            seen.append((event.done, layer, int((layer.data > 0).sum()) if layer is not None else -1))

    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    assert widget.running
    widget._worker.yielded.connect(watch)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert errors == []
    done = [d for d, _, _ in seen]
    assert done[0] == 0  # the layer appears before any block is finished ...
    assert seen[0][1] is not None
    assert seen[0][2] == 0
    assert done[-1] == 4  # ... and fills in as the 2 x 2 blocks land
    filled = [f for _, _, f in seen]
    assert filled == sorted(filled)
    assert 0 < filled[len(filled) // 2] < filled[-1]
    result = viewer.layers["big tiny instances"]
    assert result is seen[0][1]  # the live layer became the result
    assert not any(layer.name.endswith("(running)") for layer in viewer.layers)
    expected = segment(image, load_model(path), outputs=("instances",), max_memory=2**20)
    assert expected.meta["block"] == 512
    np.testing.assert_array_equal(result.data, expected.instances)
    # under 1 MB the result lives in a scratch file mapped into memory: the layer shows it as is
    assert expected.meta["outputs_stored"] == "disk"
    assert isinstance(_buffer_owner(result.data), mmap.mmap)
    result.data[0, 0] = 7  # and it is as editable as any layer
    assert result.data[0, 0] == 7


def _buffer_owner(array: np.ndarray):
    """The object whose memory ``array`` views (following views and memoryviews)."""
    owner = array
    while isinstance(owner, np.ndarray | memoryview):
        owner = owner.base if isinstance(owner, np.ndarray) else owner.obj
    return owner


def test_status_bar_names_the_result_not_the_running_layer(
    make_napari_viewer, qtbot, tiny_unet, tmp_path, errors
):
    """With the mouse resting on the canvas, the status bar shows the live layer while blocks
    land, and the finished result's name afterwards, without another mouse move."""
    viewer = make_napari_viewer(show=True)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.waitUntil(lambda: canvas.width() > 100, timeout=5000)
    viewer.add_image(synthetic_nuclei((700, 700), n_nuclei=200, seed=3)[0], name="big")
    path = save_model(tmp_path / "tiny.pt", tiny_unet)
    choice = widget.models.add(path)
    widget.model.value = choice
    widget._remember(choice, _slowed(load_model(path), 0.02))
    widget.out_classes.value = False
    widget.max_memory.value = 1
    centre = _on_screen(canvas)
    qtbot.mouseMove(canvas, centre)
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(lyr.name.endswith("(running)") for lyr in viewer.layers), timeout=WAIT_MS)
    qtbot.mouseMove(canvas, centre + QPoint(10, 10))  # the user moves the mouse over the live layer
    qtbot.waitUntil(lambda: "(running)" in str(viewer.status), timeout=5000)
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "big tiny instances" in viewer.layers, timeout=5000)
    qtbot.wait(200)  # no mouse move after the run
    assert errors == []
    assert viewer.mouse_over_canvas
    assert "(running)" not in str(viewer.status)
    assert "big tiny instances" in str(viewer.status)


def _on_screen(widget) -> QPoint:
    """A point of ``widget`` that the (virtual) screen shows: the centre of their overlap."""
    shown = QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size()).intersected(widget.screen().geometry())
    assert min(shown.width(), shown.height()) > 40, "the canvas is off the virtual screen"
    return widget.mapFromGlobal(shown.center() - QPoint(10, 10))


def test_a_large_plane_fills_display_levels_and_ends_as_an_editable_layer(
    make_napari_viewer, qtbot, tiny_unet, tmp_path, errors, monkeypatch
):
    """Issue 33: over ``LIVE_LEVELS_ABOVE`` pixels the "(running)" layer shows levels (strided
    views of the run's own array) that fill as blocks land; the finished result is a new,
    plain, editable Labels layer and no running layer is left."""
    from napari_deepseg._napari import live_levels, segment_run

    monkeypatch.setattr(live_levels, "LIVE_LEVELS_ABOVE", 512 * 512)
    monkeypatch.setattr(live_levels, "LIVE_LEVEL_SIDE", 256)
    from napari_deepseg._napari.correct_widget import CorrectWidget

    viewer, widget, image, path = _big_plane(make_napari_viewer, tiny_unet, tmp_path, 0.1)
    correct = CorrectWidget(viewer)
    viewer.window.add_dock_widget(correct, name="Correct")
    targets = []  # what Correct edits, whenever it changes
    correct.labels.changed.connect(targets.append)
    widget.max_memory.value = 1  # blocks of 512 pixels
    seen = []  # (levels' shapes, filled pixels of the coarsest level) as blocks reach the GUI

    def watch(event):
        name = "big tiny instances (running)"
        layer = next((lyr for lyr in viewer.layers if lyr.name == name), None)
        if event.stage == "blocks" and layer is not None:
            assert layer.multiscale
            levels = [np.asarray(level) for level in layer.data]
            assert all(np.shares_memory(level, levels[0]) for level in levels[1:])
            seen.append(([lv.shape for lv in levels], int((levels[-1] > 0).sum())))

    made = []  # (output, strides of the data) of each running layer as it is made
    running_layer = segment_run.running_layer

    def spy(viewer, snapshot, name, out, data, visible=True):
        made.append((out, data.strides))
        return running_layer(viewer, snapshot, name, out, data, visible)

    monkeypatch.setattr(segment_run, "running_layer", spy)
    task = sw.segment_task

    def loading_slowly(*args, **kwargs):  # as a model load and a diameter estimate take time
        time.sleep(1.0)
        return (yield from task(*args, **kwargs))

    monkeypatch.setattr(sw, "segment_task", loading_slowly)
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    widget._worker.yielded.connect(watch)
    # both running layers are made at launch, before the run's arrays exist, on zeros that take
    # no memory; the first block event points them at the run's arrays
    qtbot.waitUntil(lambda: len(made) == 2, timeout=WAIT_MS)
    assert made == [("classes", (0, 0)), ("instances", (0, 0))]
    qtbot.waitUntil(lambda: viewer.layers["big tiny instances (running)"].visible, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert errors == []
    assert seen
    assert seen[0][0] == [(1100, 1100), (550, 550), (275, 275)]
    filled = [f for _, f in seen]
    assert filled == sorted(filled)
    assert filled[-1] > filled[0]
    assert not any(layer.name.endswith("(running)") for layer in viewer.layers)
    result = viewer.layers["big tiny instances"]
    assert not result.multiscale
    assert result.editable
    assert result.visible
    expected = segment(image, load_model(path), outputs=("classes", "instances"), max_memory=2**20)
    np.testing.assert_array_equal(result.data, expected.instances)
    np.testing.assert_array_equal(viewer.layers["big tiny classes"].data, expected.classes)
    # Correct never took a display-only running layer, and follows the result
    assert not any(getattr(t, "multiscale", False) for t in targets)
    qtbot.waitUntil(lambda: correct.labels.value is result, timeout=5000)


def test_a_running_layer_made_at_launch_but_never_filled_is_removed(
    make_napari_viewer, qtbot, tiny_unet, tmp_path, errors, monkeypatch
):
    """A semantic model asked for instances on a large plane: the instances running layer made
    at launch gets no blocks, and goes when the classes are placed."""
    from napari_deepseg._napari import live_levels
    from napari_deepseg.models import ModelMeta

    monkeypatch.setattr(live_levels, "LIVE_LEVELS_ABOVE", 512 * 512)
    tiny_unet.deepseg_meta = ModelMeta(name="tiny", task="semantic").complete(3)
    viewer, widget, _image, _path = _big_plane(make_napari_viewer, tiny_unet, tmp_path, 0.05)
    widget.max_memory.value = 1
    assert widget.out_instances.value
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "big tiny instances (running)" in viewer.layers, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert errors == []
    assert "big tiny classes" in viewer.layers
    assert not any(layer.name.startswith("big tiny instances") for layer in viewer.layers)
