"""Progress events shared by every long-running generator (inference, training, batch).

Long work is written once, as a generator that yields :class:`Progress` after each unit of
work (a tile batch, a plane, a training step, a file) and *returns* its result. Each yield is
also a chance to stop: a consumer that stops iterating (and closes the generator) cancels the
work, and the generator's ``finally`` blocks release resources. The napari worker, the CLI
progress bars and the tests all drive the same generators.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

ProgressGenerator = Generator["Progress", None, T]


@dataclass(frozen=True)
class Progress:
    """One progress tick.

    Attributes:
        stage: what is counted, e.g. ``"tiles"``, ``"planes"``, ``"step"``, ``"epoch"``, ``"files"``.
        done: units finished so far in this stage.
        total: units in this stage, or ``None`` when unknown.
        message: a short human-readable line.
        info: stage-specific payload (e.g. ``{"loss": 0.3}`` or a finished plane's index).
    """

    stage: str
    done: int
    total: int | None = None
    message: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Fraction done in [0, 1], or ``None`` when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


class Cancelled(RuntimeError):
    """Raised by :func:`drain` when ``should_stop`` asked the work to stop."""


def drain(
    gen: Generator[Progress, Any, T],
    callback: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """Run a progress generator to the end and return its result.

    Args:
        gen: a generator yielding :class:`Progress` and returning a result.
        callback: called with each progress event.
        should_stop: polled after each event; when it returns True the generator is closed
            (its cleanup runs) and :class:`Cancelled` is raised, so no partial result escapes.
    """
    try:
        while True:
            event = next(gen)
            if callback is not None:
                callback(event)
            if should_stop is not None and should_stop():
                gen.close()
                raise Cancelled("stopped on request")
    except StopIteration as stop:
        return stop.value
