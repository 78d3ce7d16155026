"""CLI progress driven by the core's :class:`~napari_deepseg.progress.Progress` events.

On a terminal: one tqdm bar per stage on stderr; lines printed meanwhile (train's epoch table)
go through :func:`echo`, which lifts the bars off the screen first so the two never share a
line. When stderr is not a terminal (a cluster job, a log file): plain lines such as
``deepseg: files 3/10 (30%), tiles 12/40 (30%); 1m05s`` every ``interval`` seconds and when a
file or epoch finishes. ``quiet``: neither (the command still prints its result line).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from tqdm import tqdm

from ..progress import Progress, drain

T = TypeVar("T")

#: seconds between plain progress lines (override with DEEPSEG_PROGRESS_INTERVAL)
DEFAULT_INTERVAL = 30.0
#: stages whose every event gets a plain line (they are rare and worth logging)
MILESTONES = ("files", "epoch")


def echo(text: str, file: Any = None) -> None:
    """Print a line (default stdout) without breaking the progress bars on a terminal."""
    tqdm.write(text, file=file or sys.stdout)
    (file or sys.stdout).flush()


def _interval() -> float:
    try:
        return float(os.environ.get("DEEPSEG_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class PlainLines:
    """Periodic one-line progress reports on stderr (no terminal control characters)."""

    def __init__(self, interval: float | None = None, file: Any = None) -> None:
        self.interval = _interval() if interval is None else interval
        self.file = file or sys.stderr
        self.start = self.last = time.monotonic()
        self.state: dict[str, Progress] = {}

    def __call__(self, event: Progress) -> None:
        self.state[event.stage] = event
        now = time.monotonic()
        if event.stage in MILESTONES or now - self.last >= self.interval:
            self.last = now
            print(f"deepseg: {self.line()}; {_elapsed(now - self.start)}", file=self.file, flush=True)

    def line(self) -> str:
        parts = []
        for event in self.state.values():
            count = f"{event.stage} {event.done}" + (f"/{event.total}" if event.total else "")
            pct = f" ({100 * event.fraction:.0f}%)" if event.fraction is not None else ""
            parts.append(count + pct)
        return ", ".join(parts)


def run_with_progress(
    gen: Generator[Progress, Any, T],
    on_event: Callable[[Progress], None] | None = None,
    quiet: bool = False,
    terminal: bool | None = None,
) -> T:
    """Drive ``gen`` to the end with bars (terminal) or plain lines (otherwise); return its result.

    Args:
        gen: a core progress generator.
        on_event: also called with every event (e.g. to print a per-epoch table with :func:`echo`).
        quiet: no bars and no progress lines.
        terminal: whether stderr is a terminal (default: ``sys.stderr.isatty()``).
    """
    if terminal is None:
        terminal = sys.stderr.isatty()
    lines = PlainLines() if not quiet and not terminal else None
    bars: dict[str, tqdm] = {}

    def show(event: Progress) -> None:
        if lines is not None:
            lines(event)
        elif not quiet:
            _update_bar(bars, event)
        if on_event is not None:
            on_event(event)

    try:
        return drain(gen, show)
    finally:
        for bar in bars.values():
            bar.close()


def _update_bar(bars: dict[str, tqdm], event: Progress) -> None:
    bar = bars.get(event.stage)
    if bar is None or (event.total is not None and bar.total != event.total):
        if bar is not None:
            bar.close()
        bar = tqdm(total=event.total, desc=event.stage, position=len(bars), leave=False, file=sys.stderr)
        bars[event.stage] = bar
    bar.n = event.done
    if event.message:
        bar.set_postfix_str(event.message, refresh=False)
    bar.refresh()
