"""napari progress bars of background runs: they exist, advance with the events and close."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from napari.utils.progress import progress

from napari_deepseg._napari.workers import WORKER_NICE, start_worker
from napari_deepseg.progress import Progress

WAIT_MS = 20000


def _bars(title: str) -> list[progress]:
    return [bar for bar in progress._all_instances if str(bar.desc).startswith(title)]


def _gated(gate: threading.Event, steps: int = 4, fail: type[Exception] | None = None):
    """Yields ``steps`` tile events, waiting for ``gate`` after each (so the test sees each value)."""
    for i in range(1, steps + 1):
        yield Progress("tiles", i, steps)
        gate.wait(5)
        gate.clear()
        if fail is not None and i == 2:
            raise fail("boom")
    return "result"


def _step(qtbot, gate, title, expected_n):
    qtbot.waitUntil(lambda: [b.n for b in _bars(title)] == [expected_n], timeout=WAIT_MS)
    gate.set()


@pytest.mark.parametrize("ending", ["finish", "error", "runtime error", "cancel"])
def test_progress_bars_advance_and_close(make_napari_viewer, qtbot, ending):
    viewer = make_napari_viewer()
    assert viewer is not None
    gate, seen, done = threading.Event(), [], []
    title = f"test run {ending}"
    worker = start_worker(
        _gated,
        gate,
        fail={"error": ValueError, "runtime error": RuntimeError}.get(ending),
        title=title,
        on_progress=lambda event: seen.append(event.done),
        on_done=done.append,
        on_error=lambda err: done.append(err),
    )
    _step(qtbot, gate, title, 1)
    (bar,) = _bars(title)
    assert bar.total == 4
    assert bar.desc == f"{title}: tiles"
    values = []
    bar.events.value.connect(lambda event: values.append(event.value))  # what napari's panel hears
    _step(qtbot, gate, title, 2)
    assert values == [2]
    if ending == "cancel":
        bar.cancel()  # the activity panel's Cancel button
    gate.set()
    qtbot.waitUntil(lambda: worker.is_running is False and not _bars(title), timeout=WAIT_MS)
    assert _bars(title) == []  # closed
    if ending == "finish":
        assert done == ["result"]
        assert values[-1] == 4
    elif ending.endswith("error"):  # a RuntimeError too (superqt alone would drop it silently)
        assert len(done) == 1
        assert str(done[0]) == "boom"
    else:
        assert done == []
        assert worker.abort_requested


def _own_priority():
    yield Progress("check", 1, 1)
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_workers_run_below_the_gui_thread_priority(make_napari_viewer, qtbot):
    make_napari_viewer()
    got = []
    start_worker(_own_priority, on_done=got.append)
    qtbot.waitUntil(lambda: bool(got), timeout=WAIT_MS)
    assert got == [max(WORKER_NICE, os.getpriority(os.PRIO_PROCESS, 0))]
    assert (
        os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < got[0]
    )  # the GUI thread is not lowered
