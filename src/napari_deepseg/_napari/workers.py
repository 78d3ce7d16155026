"""The one place in the GUI layer that starts background workers.

Widgets call :func:`start_worker` with a core progress generator; it runs in a napari
``GeneratorWorker`` thread, shows a napari progress bar per stage, and hands events, the result
and errors back on the GUI thread. Widget tests mock this function.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress as napari_progress

from ..progress import Progress


class _ProgressBars:
    """napari progress bars, one per stage, closed when the worker finishes."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.bars: dict[str, napari_progress] = {}

    def update(self, event: Progress) -> None:
        bar = self.bars.get(event.stage)
        if bar is None or (event.total is not None and bar.total != event.total):
            if bar is not None:
                bar.close()
            bar = napari_progress(total=event.total or 0)
            self.bars[event.stage] = bar
        bar.set_description(f"{self.title}: {event.stage}")
        bar.n = event.done
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def start_worker(
    func: Callable[..., Generator[Progress, Any, Any]],
    *args: Any,
    title: str = "deepseg",
    on_progress: Callable[[Progress], None] | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[], None] | None = None,
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

    Returns:
        The started worker; ``worker.quit()`` cancels it at the next progress event.
    """
    worker = create_worker(func, *args, _start_thread=False, _ignore_errors=on_error is not None, **kwargs)
    bars = _ProgressBars(title)
    worker.yielded.connect(bars.update)
    if on_progress is not None:
        worker.yielded.connect(on_progress)
    if on_done is not None:
        worker.returned.connect(on_done)
    if on_error is not None:
        worker.errored.connect(on_error)
    worker.finished.connect(bars.close)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker
