"""Post-processing beside the network: the next unit's tiles run while the last unit becomes instances.

A run makes instances unit by unit (a plane of a stack, or a block of a large plane). With the
pipeline on, :meth:`PostPipeline.submit` hands a unit's post-processing (probabilities ->
instances on the image grid) to one worker thread and returns at once, so the network goes on
with the next unit; the unit still in flight is collected first, so at most one unit's
post-processing runs beside the network and at most two units' probabilities are held (the
block planner counts them: :func:`.memory.block_bytes_per_pixel`). Results come back in order,
so instance ids are given exactly as without the pipeline.

On a GPU the device then never waits for the CPU's post-processing unless the queue is full.
On a CPU the two share the cores: the network's intra-op threads and the post-processing thread
overlap where one of them leaves a core idle (numpy and scikit-image release the GIL in their
loops). Closing a run (cancel) waits for the one unit in flight: at most one block's
post-processing, well under a second at the speeds in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .gridmap import GridMap
from .postprocess import foreground_threshold, instances_from_probabilities


class PostPipeline:
    """Units' post-processing, at most one in flight beside the caller (see the module docstring).

    ``overlap=False`` runs each unit's work at once in the caller's thread, with the same
    order of results (a unit's result is still handed back when the next one is submitted).
    """

    def __init__(self, overlap: bool) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="deepseg-post") if overlap else None
        self._pending: tuple[Hashable, Future | Any] | None = None

    def submit(self, key: Hashable, work: Callable[[], Any] | None) -> tuple[Hashable, Any] | None:
        """Start ``work()`` (None: nothing to do, the unit's result is None) and return the unit
        submitted before it as ``(key, result)`` once that one is done, or None for the first."""
        previous = self.collect()
        if work is None:
            self._pending = (key, _Ready(None))
        elif self._pool is None:
            self._pending = (key, _Ready(work()))
        else:
            self._pending = (key, self._pool.submit(work))
        return previous

    def collect(self) -> tuple[Hashable, Any] | None:
        """The unit in flight as ``(key, result)`` when done (its exception raised), or None."""
        if self._pending is None:
            return None
        key, future = self._pending
        self._pending = None
        return key, future.result()

    def close(self) -> None:
        """Drop the unit in flight (waiting for it if it runs) and stop the worker thread."""
        pending, self._pending = self._pending, None
        if pending is not None and isinstance(pending[1], Future) and not pending[1].cancel():
            pending[1].exception()  # wait for it; its result or error is not wanted any more
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def plane_instances(prob: np.ndarray, settings: dict[str, Any], out_grid: GridMap | None) -> np.ndarray:
    """A plane's (or a region's) instances from its (K, h, w) probabilities: 1..N uint32 labels
    on the run's grid, or on the image's grid (``out_grid``: outlines from the probabilities)."""
    labels = instances_from_probabilities(prob, **settings)
    if out_grid is None:
        return labels
    return out_grid.instances(labels, prob, foreground_threshold(settings))


def block_instances(
    block: Any, prob: np.ndarray, settings: dict[str, Any], out_grid: GridMap | None
) -> tuple[Any, np.ndarray]:
    """A block's instances as ``BlockLabels.add`` takes them: ``(block, labels)`` on the run's
    grid, or the block's part of the image's grid (``out_grid``)."""
    labels = instances_from_probabilities(prob, **settings)
    if out_grid is None:
        return block, labels
    return out_grid.block_labels(block, labels, prob, foreground_threshold(settings))


class _Ready:
    """A result computed at once, with a Future's ``result()``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value
