"""The one place in the GUI layer that starts background workers.

Widgets call :func:`start_worker` with a core progress generator; it runs in a napari
``GeneratorWorker`` thread, shows a napari progress bar per stage, and hands events, the result
and errors back on the GUI thread. Widget tests mock this function.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import notification_manager
from napari.utils.progress import cancelable_progress

from ..progress import Progress


class _Bar(cancelable_progress):
    """A napari progress bar whose Cancel button (activity panel) calls ``on_cancel`` at once."""

    def __init__(self, total: int, desc: str, on_cancel: Callable[[], None]) -> None:
        super().__init__(total=total, desc=desc, cancel_callback=on_cancel)

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class ProgressBars:
    """napari progress bars, one per stage, advanced by each event, closed when the run ends.

    A bar is (re)made when a stage starts or its total changes; ``bar.update`` emits napari's
    value event, so the activity panel's bars move with the run. A stage without a total shows
    a busy bar.
    """

    def __init__(self, title: str, on_cancel: Callable[[], None]) -> None:
        self.title = title
        self.on_cancel = on_cancel
        self.bars: dict[str, cancelable_progress] = {}
        self._pending: list[Progress] = []
        self._closed = False
        self._close_requested = False

    def update(self, event: Progress) -> None:
        """Show ``event`` on its stage's bar (in order, also when a new bar lets Qt run events)."""
        if self._closed:
            return
        self._pending.append(event)
        if len(self._pending) > 1:
            return  # a call further up the stack is showing events: it takes this one next
        while self._pending:
            self._show(self._pending[0])
            self._pending.pop(0)
        if self._close_requested:  # the run ended while a bar was being made: show its events first
            self.close()

    def _show(self, event: Progress) -> None:
        total = int(event.total or 0)
        bar = self.bars.get(event.stage)
        if bar is None or bar.total != total or event.done < bar.n:
            if bar is not None:
                bar.close()
            bar = _Bar(total, f"{self.title}: {event.stage}", self.on_cancel)
            self.bars[event.stage] = bar
        if event.done > bar.n:
            bar.update(event.done - bar.n)
        elif total == 0:
            bar.update(0)

    def close(self) -> None:
        """Close every bar (finish, error or cancel); later events show nothing."""
        if self._pending:  # an update further up the stack is showing events: it closes after them
            self._close_requested = True
            return
        self._closed = True
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


class RunError(Exception):
    """A RuntimeError raised by a run, re-raised under another type for the worker (see below)."""


WORKER_NICE = 10  # Linux nice value of worker threads: the GUI thread (nice 0) gets the CPU first


def lower_thread_priority() -> bool:
    """Give the calling (worker) thread a lower CPU priority; True where the platform allows it.

    On Linux a nice value is per thread and inherited by threads it starts later (torch's
    intra-op threads), so background inference and training leave the GUI thread the CPU it
    needs to redraw and answer (raising one's own nice value needs no privilege).
    """
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, max(WORKER_NICE, os.getpriority(os.PRIO_PROCESS, tid)))
    return True


def _runtime_errors_reported(
    func: Callable[..., Generator[Progress, Any, Any]], *args: Any, **kwargs: Any
) -> Generator[Progress, Any, Any]:
    """Drive ``func``'s generator at a lower thread priority; a RuntimeError comes out as :class:`RunError`.

    superqt's worker takes a RuntimeError for a deleted Qt object and drops it with a warning,
    emitting neither ``errored`` nor ``finished``: the widget would stay busy and say nothing
    (torch raises many RuntimeErrors).
    """
    lower_thread_priority()
    try:
        return (yield from func(*args, **kwargs))
    except RuntimeError as err:
        raise RunError(str(err) or type(err).__name__) from err


def show_worker_warning(args: tuple) -> None:
    """A warning raised in a worker (``worker.warned``'s showwarning arguments), shown as a
    napari warning notification. superqt catches worker warnings and only emits them; napari
    0.9.2's relay of that signal is never connected, so warnings such as "result over the
    memory limit" or "NaN values replaced" were lost in the GUI. napari drops repeats of a
    warning it has shown, so a working relay would not show it twice."""
    notification_manager.receive_warning(*args)


def start_worker(
    func: Callable[..., Generator[Progress, Any, Any]],
    *args: Any,
    title: str = "deepseg",
    on_progress: Callable[[Progress], None] | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    on_cancel: Callable[[], None] | None = None,
    **kwargs: Any,
) -> GeneratorWorker:
    """Run the generator function ``func(*args, **kwargs)`` in a napari worker thread.

    Args:
        func: a core generator function yielding :class:`Progress` and returning a result.
        title: prefix of the progress bars' descriptions.
        on_progress: called on the GUI thread with each event.
        on_done: called on the GUI thread with the generator's return value (not on cancel).
        on_error: called on the GUI thread with the exception (the worker does not re-raise).
        on_finished: called on the GUI thread last, after success, error or cancel.
        on_cancel: what the progress bars' Cancel button does (default: ``worker.quit()``).

    Returns:
        The started worker; ``worker.quit()`` cancels it at the next progress event.
    """
    worker = create_worker(
        _runtime_errors_reported,
        func,
        *args,
        _start_thread=False,
        _ignore_errors=on_error is not None,
        **kwargs,
    )
    bars = ProgressBars(title, on_cancel or worker.quit)
    worker.deepseg_bars = bars  # held by the worker: Qt keeps only weak references to bound methods
    worker.yielded.connect(bars.update)
    if on_progress is not None:
        worker.yielded.connect(on_progress)
    if on_done is not None:
        worker.returned.connect(on_done)
    if on_error is not None:
        worker.errored.connect(on_error)
    worker.warned.connect(show_worker_warning)
    worker.finished.connect(bars.close)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker
