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
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            if callback is not None:
                callback(event)
            if should_stop is not None and should_stop():
                raise Cancelled("stopped on request")
    finally:
        gen.close()  # a no-op for a finished generator; cancels one left early (its cleanup runs)


def relay(
    gen: Generator[Progress, Any, T],
    transform: Callable[[Progress], Progress | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, T]:
    """Yield ``gen``'s events (through ``transform``; an event it maps to None is not passed
    on) and return its result: ``result = yield from relay(inner, mapper)``. ``should_stop`` is
    polled after each event is taken; when it returns True ``gen`` is closed (its cleanup runs)
    and :class:`Cancelled` is raised. Closing the outer generator closes ``gen``. The one relay
    loop (a plain ``yield from gen`` needs none)."""
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            out = event if transform is None else transform(event)
            if out is not None:
                yield out
            if should_stop is not None and should_stop():
                raise Cancelled("stopped on request")
    finally:
        gen.close()
