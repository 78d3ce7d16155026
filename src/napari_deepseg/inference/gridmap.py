"""A rescaled run's two grids: the resampled plane the model runs on, and the image's own.

:class:`GridMap` maps labels computed on the resampled (run) grid back to the image's grid by
nearest neighbour, a block at a time: a block's core and region on the run grid become the
original-grid rows and columns whose nearest source pixel lies in them, so a rescaled plane's
instances are joined across block borders (:class:`~.blocks.BlockLabels`) and stored on the
image's grid directly, never held at the (possibly larger) run grid. Classes are mapped into a
preallocated array in row bands (:meth:`GridMap.fill`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .blocks import Block
from .scale import nearest_indices

_BAND_ROWS = 256


@dataclass(frozen=True)
class GridMap:
    """Nearest-neighbour map from a run grid of ``small`` (h, w) to an image grid of ``full`` (H, W).

    Attributes:
        rows: (H,) int64, the run-grid row each image row takes its value from (non-decreasing).
        cols: (W,) int64, likewise for columns.
    """

    small: tuple[int, int]
    full: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def between(cls, small: tuple[int, int], full: tuple[int, int]) -> GridMap:
        return cls(small, full, nearest_indices(small[0], full[0]), nearest_indices(small[1], full[1]))

    def span(self, y: slice, x: slice) -> tuple[slice, slice]:
        """The image-grid rows and columns whose source lies in run-grid rows ``y``, columns ``x``."""

        def one(src: np.ndarray, s: slice) -> slice:
            lo, hi = np.searchsorted(src, [s.start, s.stop], side="left")
            return slice(int(lo), int(hi))

        return one(self.rows, y), one(self.cols, x)

    def block_labels(self, block: Block, labels: np.ndarray) -> tuple[Block, np.ndarray]:
        """A run-grid ``block`` and its region's (h, w) labels, both on the image grid (cores
        still tile the plane without gaps)."""
        ry, rx = self.span(block.read_y, block.read_x)
        r = self.rows[ry] - block.read_y.start
        c = self.cols[rx] - block.read_x.start
        return Block(block.index, *self.span(block.y, block.x), ry, rx), labels[r[:, None], c[None, :]]

    def fill(self, out: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Write (..., h, w) run-grid labels into (..., H, W) ``out`` in row bands; returns ``out``."""
        for r in range(0, self.full[0], _BAND_ROWS):
            rows = self.rows[r : r + _BAND_ROWS]
            out[..., r : r + len(rows), :] = src[..., rows[:, None], self.cols[None, :]]
        return out
