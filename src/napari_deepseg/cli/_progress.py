"""tqdm progress bars driven by the core's :class:`~napari_deepseg.progress.Progress` events."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from tqdm import tqdm

from ..progress import Progress

T = TypeVar("T")


def run_with_progress(
    gen: Generator[Progress, Any, T],
    on_event: Callable[[Progress], None] | None = None,
    disable: bool | None = None,
) -> T:
    """Drive ``gen`` to the end with one tqdm bar per stage; return its result.

    Args:
        gen: a core progress generator.
        on_event: also called with every event (e.g. to print a per-epoch table).
        disable: hide the bars; default hides them when stderr is not a terminal.
    """
    if disable is None:
        disable = not sys.stderr.isatty()
    bars: dict[str, tqdm] = {}
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            bar = bars.get(event.stage)
            if bar is None or (event.total is not None and bar.total != event.total):
                if bar is not None:
                    bar.close()
                bar = tqdm(
                    total=event.total,
                    desc=event.stage,
                    position=len(bars),
                    leave=False,
                    disable=disable,
                    file=sys.stderr,
                )
                bars[event.stage] = bar
            bar.n = event.done
            if event.message:
                bar.set_postfix_str(event.message, refresh=False)
            bar.refresh()
            if on_event is not None:
                on_event(event)
    finally:
        gen.close()
        for bar in bars.values():
            bar.close()
