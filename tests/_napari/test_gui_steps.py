"""GuiSteps and add_layer_steps in a real viewer: one step per event-loop turn, overlays
built after the layer, automatic garbage collection paused while steps run (errors restore it)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from napari.layers import Labels
from qtpy.QtCore import QTimer

from napari_deepseg._napari.gui_steps import GuiSteps, add_layer_steps


@pytest.fixture
def ticks():
    """A 1 ms timer's tick count: it grows only when the event loop runs between steps."""
    count = []
    timer = QTimer()
    timer.timeout.connect(lambda: count.append(1))
    timer.start(1)
    yield count
    timer.stop()


def test_steps_run_in_separate_turns_in_order_then_done(qtbot, ticks):
    seen, finished = [], []
    first = lambda: seen.append(("a", len(ticks), gc.isenabled())) or "a-result"  # noqa: E731
    steps = GuiSteps(
        [first, lambda: seen.append(("b", len(ticks)))],
        done=lambda: finished.append((len(ticks), gc.isenabled())),
    )
    steps.insert(lambda: steps.insert(lambda: seen.append(("inserted", len(ticks)))))
    steps.start()
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert [s[0] for s in seen] == ["inserted", "a", "b"]
    assert seen[1][2] is False  # automatic collection paused while steps run
    assert seen[0][1] < seen[1][1] < seen[2][1] < finished[0][0]  # the loop ran between steps
    assert steps.results == ["a-result"]
    assert finished[0][1] is False  # done() still runs with collection paused ...
    qtbot.waitUntil(lambda: not steps.running, timeout=5000)
    assert gc.isenabled()  # ... and it is restored in the turn after it


def test_a_failing_step_drops_the_rest_and_restores_collection(qtbot):
    seen, finished = [], []

    def boom():
        raise RuntimeError("step failed")

    steps = GuiSteps([boom, lambda: seen.append("after")], done=lambda: finished.append(1))
    with qtbot.captureExceptions() as raised:
        steps.start()
        qtbot.waitUntil(lambda: bool(raised), timeout=5000)
        qtbot.wait(50)
    assert "step failed" in str(raised[0][1])
    assert seen == []
    assert finished == []
    assert gc.isenabled()
    assert not steps.running


def test_collection_left_off_by_someone_else_stays_off(qtbot):
    gc.disable()
    try:
        steps = GuiSteps([lambda: None])
        steps.start()
        qtbot.waitUntil(lambda: not steps.steps, timeout=5000)
        qtbot.wait(50)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_sequences_keep_collection_paused_until_the_last_ends(qtbot):
    states = []
    short = GuiSteps([lambda: None])
    long = GuiSteps([lambda: None] * 6 + [lambda: states.append(gc.isenabled())])
    short.start()  # the first to pause collection ...
    long.start()
    qtbot.waitUntil(lambda: not short.running, timeout=5000)
    assert long.running
    assert not gc.isenabled()  # ... ends first: the long one still runs paused
    qtbot.waitUntil(lambda: not long.running, timeout=5000)
    assert states == [False]
    assert gc.isenabled()


def test_add_layer_steps_builds_overlays_after_the_layer(make_napari_viewer, qtbot, ticks):
    viewer = make_napari_viewer()
    layer = Labels(np.zeros((64, 64), np.uint8), name="result")
    canvas = viewer.window._qt_viewer.canvas
    states = []

    def state() -> None:
        built = canvas._layer_overlay_to_visual.get(layer, {})
        states.append((layer in viewer.layers, layer.visible, len(built), len(ticks)))

    steps = add_layer_steps(viewer, layer, visible=True)
    assert len(steps) == 4  # add, polygon overlay, brush stroke overlay, show
    interleaved = [s for step in steps for s in (step, state)]
    finished = []
    GuiSteps(interleaved, done=lambda: finished.append(1)).start()
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert [s[:3] for s in states] == [(True, False, 0), (True, False, 1), (True, False, 2), (True, True, 2)]
    assert layer._overlays["polygon"].visible
    assert layer._overlays["brush_stroke"].visible
    layer.mode = "polygon"  # the user's tools still work on the overlays built late
    assert layer._overlays["polygon"].enabled


def test_add_layer_steps_keeps_a_hidden_layer_hidden(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = Labels(np.zeros((8, 8), np.uint8))
    finished = []
    GuiSteps(add_layer_steps(viewer, layer, visible=False), done=lambda: finished.append(1)).start()
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert layer in viewer.layers
    assert not layer.visible


def test_the_first_segment_dock_runs_one_full_collection(make_napari_viewer, monkeypatch):
    """The collection the plugin's imports make due runs when the dock opens, once a process."""
    from napari_deepseg._napari import gui_steps
    from napari_deepseg._napari.segment_widget import SegmentWidget

    full = []

    def record(phase, info):
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    viewer = make_napari_viewer()
    gui_steps.collect_once.cache_clear()
    gc.callbacks.append(record)
    try:
        SegmentWidget(viewer)
        first = len(full)
        SegmentWidget(viewer)
        second = len(full) - first
    finally:
        gc.callbacks.remove(record)
    assert first >= 1
    assert second == 0


def test_the_first_segment_dock_makes_naparis_first_label_colours(make_napari_viewer, monkeypatch):
    """napari's first Labels layer imports its colour code; the dock does it once, on opening."""
    import napari.utils.colormaps as colormaps

    from napari_deepseg._napari import gui_steps
    from napari_deepseg._napari.segment_widget import SegmentWidget

    made = []
    real = colormaps.label_colormap
    monkeypatch.setattr(colormaps, "label_colormap", lambda *a, **k: made.append(a) or real(*a, **k))
    viewer = make_napari_viewer()
    gui_steps.warm_labels_once.cache_clear()
    SegmentWidget(viewer)
    SegmentWidget(viewer)
    assert len(made) == 1
