"""Fixtures shared by the GUI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from napari.utils.progress import progress


class ProgressLog:
    """Every napari progress bar opened during a test, with the values it reported."""

    def __init__(self) -> None:
        self.bars: list[progress] = []
        self.values: dict[int, list[int]] = {}

    def on_change(self, event) -> None:
        for bar in event.added:
            self.bars.append(bar)
            values = self.values[id(bar)] = []
            bar.events.value.connect(lambda e, seen=values: seen.append(e.value))

    def advanced(self, prefix: str) -> list[progress]:
        """Bars whose description starts with ``prefix`` and that moved at least once."""
        return [b for b in self.bars if str(b.desc).startswith(prefix) and self.values[id(b)]]

    def open(self) -> list[progress]:
        """Bars of this test still open."""
        return [b for b in self.bars if b in progress._all_instances]


@pytest.fixture
def progress_log() -> Iterator[ProgressLog]:
    """Records the napari progress bars a test's runs open (see :class:`ProgressLog`)."""
    log = ProgressLog()
    progress._all_instances.events.changed.connect(log.on_change)
    yield log
    progress._all_instances.events.changed.disconnect(log.on_change)
