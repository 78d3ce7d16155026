"""A rescaled run's two grids: the resampled plane the model runs on, and the image's own.

:class:`GridMap` maps labels computed on the resampled (run) grid back to the image's grid, a
block at a time: a block's core and region on the run grid become the original-grid rows and
columns whose nearest source pixel lies in them, so a rescaled plane's instances are joined
across block borders (:class:`~.blocks.BlockLabels`) and stored on the image's grid directly,
never held at the (possibly larger) run grid. Classes are mapped by nearest neighbour into a
preallocated array in row bands (:meth:`GridMap.fill`).

Instances keep their ids from the nearest run-grid pixel, but their outlines follow the
foreground probability resampled bilinearly to the image's grid (:meth:`GridMap.labels`): a
pixel whose ``P(foreground)`` is at most the threshold is background, and a foreground pixel
the nearest mapping left empty takes the largest id within half a run-grid pixel. Nearest
neighbour alone draws an enlarged object as blocks of ``1/scale`` pixels; on the DSB2018
selection split (bundled model) the smooth outline raised the per-image mean accuracy from
0.595 to 0.612 (fluorescence) and AP@0.75 from 0.311 to 0.331 (histology).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .blocks import Block
from .postprocess import foreground_probability
from .scale import apply_taps, nearest_indices, row_taps

_BAND_ROWS = 256


@dataclass(frozen=True)
class GridMap:
    """Map from a run grid of ``small`` (h, w) to an image grid of ``full`` (H, W).

    Attributes:
        rows: (H,) int64, the run-grid row each image row takes its id from (nearest neighbour,
            non-decreasing).
        cols: (W,) int64, likewise for columns.
        taps_y, taps_x: the bilinear resampling's (source rows (H, T) int64, weights (H, T)
            float32) per image row, and likewise per column (:func:`.scale.row_taps`).
        reach: how far (image pixels) an outline may grow past the nearest map's: half a
            run-grid pixel, at least 1.
    """

    small: tuple[int, int]
    full: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    taps_y: tuple[np.ndarray, np.ndarray]
    taps_x: tuple[np.ndarray, np.ndarray]
    reach: int = 1

    @classmethod
    def between(cls, small: tuple[int, int], full: tuple[int, int]) -> GridMap:
        rows, cols = nearest_indices(small[0], full[0]), nearest_indices(small[1], full[1])
        taps = [row_taps(small[a], full[a], full[a] < small[a]) for a in (0, 1)]
        reach = max(1, math.ceil(max(full[0] / small[0], full[1] / small[1]) / 2))
        return cls(small, full, rows, cols, *taps, reach)

    def window(self, source: tuple[slice, slice], region: tuple[slice, slice]) -> GridMap:
        """The map of a window: run-grid ``source`` (which holds every source pixel and tap of
        ``region``) onto image-grid ``region``, both seen from their own origin; the same ids
        and outlines as the whole map gives there."""
        (sy, sx), (ry, rx) = source, region
        size = (sy.stop - sy.start, sx.stop - sx.start)
        full = (ry.stop - ry.start, rx.stop - rx.start)
        taps = (_local(self.taps_y, ry, sy.start, size[0]), _local(self.taps_x, rx, sx.start, size[1]))
        return GridMap(size, full, self.rows[ry] - sy.start, self.cols[rx] - sx.start, *taps, self.reach)

    def span(self, y: slice, x: slice) -> tuple[slice, slice]:
        """The image-grid rows and columns whose source lies in run-grid rows ``y``, columns ``x``."""

        def one(src: np.ndarray, s: slice) -> slice:
            lo, hi = np.searchsorted(src, [s.start, s.stop], side="left")
            return slice(int(lo), int(hi))

        return one(self.rows, y), one(self.cols, x)

    def block_labels(
        self, block: Block, labels: np.ndarray, prob: np.ndarray | None = None, threshold: float = 0.5
    ) -> tuple[Block, np.ndarray]:
        """A run-grid ``block`` and its region's (h, w) labels, both on the image grid (cores
        still tile the plane without gaps); ``prob``: the region's (K, h, w) probabilities, for
        the outlines (:meth:`labels`)."""
        ry, rx = self.span(block.read_y, block.read_x)
        origin = (block.read_y.start, block.read_x.start)
        mapped = self.labels(labels, prob, threshold, origin, (ry, rx))
        return Block(block.index, *self.span(block.y, block.x), ry, rx), mapped

    def labels(
        self,
        labels: np.ndarray,
        prob: np.ndarray | None = None,
        threshold: float = 0.5,
        origin: tuple[int, int] = (0, 0),
        window: tuple[slice, slice] | None = None,
    ) -> np.ndarray:
        """(h, w) run-grid labels of a region starting at run-grid ``origin`` -> the image-grid
        ``window`` (rows, cols; default the whole plane) of them, in row bands.

        Without ``prob`` each pixel takes its nearest source's id. With the region's (K, h, w)
        class probabilities, outlines follow ``foreground_probability`` resampled bilinearly
        (see the module docstring); no id is made, and an object loses the pixels where the
        resampled probability is at most ``threshold`` (its run-grid pixels were above it, so
        it keeps most of them; no object of the DSB2018 selection split lost all).
        """
        ry, rx = window or (slice(0, self.full[0]), slice(0, self.full[1]))
        src_r = self.rows[ry] - origin[0]
        src_c = self.cols[rx] - origin[1]
        out = np.empty((len(src_r), len(src_c)), labels.dtype)
        if prob is None:
            for r in range(0, len(src_r), _BAND_ROWS):
                out[r : r + _BAND_ROWS] = labels[src_r[r : r + _BAND_ROWS, None], src_c[None, :]]
            return out
        taps_y = _local(self.taps_y, ry, origin[0], labels.shape[0])
        taps_x = _local(self.taps_x, rx, origin[1], labels.shape[1])
        reach = self.reach
        for r in range(0, len(src_r), _BAND_ROWS):
            lo, hi = max(0, r - reach), min(len(src_r), r + _BAND_ROWS + reach)
            near = labels[src_r[lo:hi, None], src_c[None, :]]
            fg = _resample(prob, (taps_y[0][lo:hi], taps_y[1][lo:hi]), taps_x) > threshold
            grown = ndi.grey_dilation(near, size=(2 * reach + 1, 2 * reach + 1))
            near = np.where(near > 0, near, grown)
            near[~fg] = 0
            out[r : r + _BAND_ROWS] = near[r - lo : r - lo + _BAND_ROWS]
        return out

    def fill(self, out: np.ndarray, src: np.ndarray) -> np.ndarray:
        """Write (..., h, w) run-grid labels into (..., H, W) ``out`` in row bands; returns ``out``."""
        for r in range(0, self.full[0], _BAND_ROWS):
            rows = self.rows[r : r + _BAND_ROWS]
            out[..., r : r + len(rows), :] = src[..., rows[:, None], self.cols[None, :]]
        return out


def _local(taps: tuple[np.ndarray, np.ndarray], span: slice, origin: int, size: int) -> tuple:
    """Bilinear taps of the image-grid ``span``, relative to a region starting at run-grid
    ``origin`` with ``size`` pixels (clipped to it)."""
    return np.clip(taps[0][span] - origin, 0, size - 1), taps[1][span]


def _resample(prob: np.ndarray, taps_y: tuple, taps_x: tuple) -> np.ndarray:
    """``foreground_probability`` of (K, h, w) ``prob`` at the given (rows, weights) taps: float32."""
    (ry, wy), (rx, wx) = taps_y, taps_x
    lo, hi = int(ry.min()), int(ry.max()) + 1
    x0, x1 = int(rx.min()), int(rx.max()) + 1
    fg = foreground_probability(prob[:, lo:hi, x0:x1])
    return apply_taps(fg, (ry - lo, wy), (rx - x0, wx))
