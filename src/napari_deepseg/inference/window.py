"""Segmenting one region of a large image exactly as the whole-image run does.

``segment_iter(image, model, region=(rows, cols))`` returns the outputs of those rows and
columns of every plane, reading only the part of the image they need, so a huge image can be
segmented piece by piece (``deepseg predict`` writes each chunk of an OME-Zarr output this way)
with the result of one whole-image run:

- the same tile grid: the whole plane's (tile sizes fitted to the plane, starts spread over
  it); the region runs the tiles that cover it (:class:`WindowGrid`), blended with the whole
  grid's weights, reflected only at the plane's own borders;
- the same resampling (a model that records its object diameter): the region of the resampled
  plane is computed from the input with the whole plane's filter taps
  (:func:`.scale.resize_window`), and the outputs are mapped back as the whole run maps them
  (classes by nearest neighbour, instances with outlines from the bilinearly resampled
  foreground probability, :meth:`.gridmap.GridMap.labels`);
- the same normalization: percentiles of the whole plane (as resampled), read in row bands
  (:func:`plane_normalizers`; a caller segmenting many regions computes them once).

Instances are made on the region (by blocks with halos, as any run), so objects that cross the
region's edge are cut there; callers give the region a halo and keep its core. NaN and infinite
pixels are replaced per region (by the region's finite extremes), a difference from the whole
run only where the image has them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DeepsegError
from ..progress import Progress
from .gridmap import GridMap
from .inputs import AxesPlan, banded_percentile_normalizer, fixed_normalizer, model_plane
from .result import in_out_axes
from .scale import resize_window, scaled_shape
from .tiling import TileGrid

_BAND_ROWS = 256
#: run-grid pixels around a rescaled region's source (the taps of the map back to the image)
_PAD = 6


@dataclass(frozen=True)
class WindowGrid(TileGrid):
    """A whole plane's tile grid seen from a box of it: tile starts shifted by the box's origin,
    the whole grid's blending weights (reads stay inside the box, which holds every input pixel
    of the tiles a run over its region needs)."""

    whole: TileGrid | None = None
    oy: int = 0
    ox: int = 0

    @classmethod
    def of(cls, whole: TileGrid, origin: tuple[int, int], size: tuple[int, int]) -> WindowGrid:
        oy, ox = origin
        ys, xs = tuple(y - oy for y in whole.ys), tuple(x - ox for x in whole.xs)
        g = whole
        return cls(size[0], size[1], g.th, g.tw, g.in_h, g.in_w, g.margin, ys, xs, whole, oy, ox)

    def weights(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        wy, wx = self.whole.weights()
        return {y - self.oy: w for y, w in wy.items()}, {x - self.ox: w for x, w in wx.items()}


@dataclass(frozen=True)
class Window:
    """A run over a region of a larger plane: the plane's (H, W) on the run grid, where the
    image given to the run (a box of the plane) starts in it, and the box's rows and columns
    the outputs cover."""

    plane: tuple[int, int]
    origin: tuple[int, int]
    region: tuple[slice, slice]

    @property
    def size(self) -> tuple[int, int]:
        """(h, w) of the region."""
        return self.region[0].stop - self.region[0].start, self.region[1].stop - self.region[1].start

    def shift(self, rows: slice | None = None, cols: slice | None = None) -> tuple[slice, slice]:
        """Rows and columns of the region (default: all of it) as rows and columns of the box."""
        ry, rx = self.region
        if rows is None:
            return ry, rx
        return slice(ry.start + rows.start, ry.start + rows.stop), slice(
            rx.start + cols.start, rx.start + cols.stop
        )

    def grid(self, tile: int, overlap: int, model: Any, size: tuple[int, int]) -> WindowGrid:
        """The whole plane's grid (for this tile and overlap) seen from the (h, w) box."""
        whole = TileGrid.plan(*self.plane, tile, overlap, model)
        return WindowGrid.of(whole, self.origin, size)


def check_region(region: Any, size: tuple[int, int]) -> tuple[slice, slice]:
    """``region`` as (rows, cols) slices inside an (H, W) plane, or a one-line DeepsegError."""
    try:
        rows, cols = region
        out = tuple(slice(*s.indices(n)[:2]) for s, n in zip((rows, cols), size))
        ok = all(s.step in (None, 1) and o.stop > o.start for s, o in zip((rows, cols), out))
    except (TypeError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise DeepsegError(
            f"region must be two slices (rows, cols) with pixels inside the {size[0]}x{size[1]} "
            f"plane, such as (slice(0, 1024), slice(0, 1024)), not {region!r}"
        )
    return out


class RunGrid:
    """The run grid of a region: the image's grid, or its resampling by ``scale``."""

    def __init__(self, full: tuple[int, int], scale: float) -> None:
        self.full = full
        self.size = full if scale == 1.0 else scaled_shape(full, scale)
        self.map = None if scale == 1.0 else GridMap.between(self.size, full)

    @classmethod
    def of(cls, plan: AxesPlan, sizing: dict | None) -> RunGrid:
        """The run grid of ``plan``'s planes under an object-size decision (``None``: scale 1)."""
        return cls((plan.size("Y"), plan.size("X")), sizing["scale"] if sizing else 1.0)

    def source(self, rows: slice, cols: slice) -> tuple[slice, slice]:
        """Run-grid rows and columns that the image-grid ``rows``, ``cols`` are made from."""
        if self.map is None:
            return rows, cols

        def one(src: np.ndarray, s: slice, n: int) -> slice:
            return slice(max(0, int(src[s.start]) - _PAD), min(n, int(src[s.stop - 1]) + 1 + _PAD))

        return one(self.map.rows, rows, self.size[0]), one(self.map.cols, cols, self.size[1])

    def read(
        self, image: Any, plan: AxesPlan, index: tuple[int, ...], rows: slice, cols: slice
    ) -> np.ndarray:
        """The raw (C, h, w) run-grid pixels ``rows`` x ``cols`` of the plane at ``index``."""

        def raw(r: slice, c: slice) -> np.ndarray:
            return plan.read_plane(image, index, r, c)

        if self.map is None:
            return raw(rows, cols)
        dtype = np.float32 if np.dtype(image.dtype).kind in "fc" else image.dtype
        return resize_window(raw, self.full, self.size, rows, cols, dtype)


def _bands(image: Any, plan: AxesPlan, job: Any, run: RunGrid, index: tuple[int, ...]) -> Iterator:
    for r in range(0, run.size[0], _BAND_ROWS):
        rows = slice(r, min(run.size[0], r + _BAND_ROWS))
        raw = run.read(image, plan, index, rows, slice(0, run.size[1]))
        if job.picked is not None:
            raw = raw[job.picked]
        yield r, model_plane(raw, job.mapping, "image", warn=False)


def normalizers_for(image: Any, plan: AxesPlan, job: Any, run: RunGrid) -> dict | None:
    """Each plane's normalizer as a whole-image run of ``job``'s settings computes it (on the
    ``run`` grid), read in row bands: ``{plane index: Normalizer}``, or None for normalization
    methods that need no statistics."""
    from .runner import model_in_channels

    if fixed_normalizer(job.norm_spec, model_in_channels(job.model)) is not None:
        return None
    low, high = job.norm_spec["low"], job.norm_spec["high"]
    indices = list(plan.plane_indices())
    if job.norm_spec["scope"] == "stack":
        bands = (b for i in indices for b in _bands(image, plan, job, run, i))
        pooled = banded_percentile_normalizer(bands, run.size, low, high)
        return {i: pooled for i in indices}
    return {
        i: banded_percentile_normalizer(_bands(image, plan, job, run, i), run.size, low, high)
        for i in indices
    }


def run_window(
    image: Any,
    plan: AxesPlan,
    region: tuple[slice, slice],
    run: RunGrid,
    job: Any,
    normalizers: dict | None,
) -> Generator[Progress, None, Any]:
    """Run ``job`` (made for the whole image, not yet run) over ``region`` of every plane of
    ``image`` (on the ``run`` grid); returns its result with the region's outputs on the
    image's grid, in the image's output axes."""
    run_rows, run_cols = run.source(*region)
    grid = TileGrid.plan(*run.size, job.tile, job.overlap, job.model)
    box = tuple(
        slice(max(0, s.start - extra), min(n, s.stop + extra))
        for s, extra, n in zip((run_rows, run_cols), (grid.in_h, grid.in_w), run.size)
    )
    if normalizers is None:
        normalizers = normalizers_for(image, plan, job, run)
    elif set(normalizers) != set(plan.plane_indices()):
        raise DeepsegError(
            f"plane_normalizers hold {len(normalizers)} plane(s) but the image has {plan.n_planes} "
            f"over axes {plan.loop_axes or '(none)'}; compute them for this image with "
            "region_normalizers(image, ...)"
        )
    lead = tuple(plan.size(a) for a in plan.loop_axes)
    boxed = None
    for index in plan.plane_indices():
        raw = run.read(image, plan, index, *box)
        if boxed is None:
            boxed = np.empty((*lead, *raw.shape), raw.dtype)
        boxed[index] = raw
    job.image, job.plan = boxed, AxesPlan.parse(boxed.shape, plan.loop_axes + "CYX")
    inside = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip((run_rows, run_cols), box))
    job.window = Window(run.size, (box[0].start, box[1].start), inside)
    job.normalizers = normalizers
    if run.map is not None:  # instances are stored on the image grid as the whole run maps them
        job.out_grid = run.map.window((run_rows, run_cols), region)
    result = yield from job.run()
    return _on_image_grid(result, run, job.out_grid, region, (run_rows, run_cols), plan)


def _on_image_grid(result: Any, run: RunGrid, sub: GridMap | None, region, source, plan: AxesPlan) -> Any:
    """A window run's outputs (over the run-grid ``source`` region, axes loop + YX; instances
    already on the image grid) as the image grid's ``region``, in the image's output axes
    (``sub``: the window's map, None at scale 1)."""
    if sub is not None:
        result.classes = result.classes[..., sub.rows[:, None], sub.cols[None, :]]
        if result.probabilities is not None:
            result.probabilities = _probabilities_back(result.probabilities, run, region, source)
    return in_out_axes(result, plan.loop_axes, plan.out_axes)


def _probabilities_back(prob: np.ndarray, run: RunGrid, region, source) -> np.ndarray:
    """(K, *lead, h, w) run-grid probabilities of ``source`` -> the image grid's ``region``
    (bilinear, as the whole run maps them back)."""
    flat = prob.reshape(-1, *prob.shape[-2:])

    def read(r: slice, c: slice) -> np.ndarray:
        rs = slice(r.start - source[0].start, r.stop - source[0].start)
        cs = slice(c.start - source[1].start, c.stop - source[1].start)
        return flat[:, rs, cs]

    back = resize_window(read, run.size, run.full, region[0], region[1], prob.dtype)
    return back.reshape(*prob.shape[:-2], *back.shape[-2:])


__all__ = ["Window", "WindowGrid", "check_region", "normalizers_for", "run_window"]
