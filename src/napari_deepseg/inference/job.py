"""One segmentation run over an image's planes: the state machine behind ``segment_iter``.

:class:`Job` reads each 2D plane (one T, Z combination), picks and maps its channels to the
model's inputs, normalizes it tile by tile, runs tile batches and blends them in a row-strip
accumulator; finished rows become classes (and probabilities) at once, so memory is the image,
the outputs and O(tile batch + one strip of rows), not the whole plane's logits. A plane larger
than a block (:mod:`.memory`) is run block by block over the plane's own tile grid, its
instances made on each block's region and joined across block borders (:mod:`.blocks`); tiles
that neighbouring blocks share are run once and kept for the next (:class:`.tiling.TileCache`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DeepsegError
from ..models.contract import class_count, contract_of
from ..models.modelfile import described, makes_instances
from ..progress import Progress
from . import memory
from .blocks import BlockLayout, Target
from .blockwise import BlockwiseRuns
from .device import Precision, resolve_device, resolve_precision
from .gridmap import GridMap
from .inputs import (
    AxesPlan,
    Normalizer,
    channel_mapping,
    check_channels,
    check_normalization,
    fixed_normalizer,
    model_plane,
    percentile_normalizer,
)
from .options import DEFAULT_TILE, MIN_TILE, SegmentOptions
from .outputs import OutputStore
from .pipeline import PostPipeline, plane_instances
from .postprocess import StackIds, class_map
from .probability import softmax, write_float16
from .result import SegmentationResult, run_meta
from .runner import TileRunner, TileTooLarge, model_in_channels
from .settings import as_array, check_tile
from .tiling import StripAccumulator, TileCache, TileGrid, fit_tile
from .window import Window

DEFAULT_BATCH = {"cpu": 2, "cuda": 4, "mps": 4}


@dataclass
class Job(BlockwiseRuns):
    image: Any
    plan: AxesPlan
    picked: list[int] | None
    mapping: str
    norm_spec: dict[str, Any]
    device: torch.device
    precision: Precision
    tile: int
    overlap: int
    batch_size: int
    outputs: tuple[str, ...]
    model: nn.Module
    tta: bool = False
    postprocess: dict[str, Any] = field(default_factory=dict)
    stitch: float | None = None
    runner: TileRunner | None = None
    result: dict[str, np.ndarray | None] = field(default_factory=dict)
    max_memory: int | None = None  # the caller's limit (None: the memory policy's default)
    block: int | None = None
    layout: BlockLayout | None = None
    out_grid: GridMap | None = None  # a rescaled run: instances are stored on the image's grid
    cache_budget: int = 0  # bytes for tile outputs shared by neighbouring blocks
    tiles: TileCache | None = None
    window: Window | None = None  # a run over a region of a larger plane (:mod:`.window`)
    normalizers: dict[tuple[int, ...], Normalizer] | None = None  # per plane, given (window runs)
    store: OutputStore | None = None  # where the outputs live (default: decided in run())
    pipelined: bool = True  # post-processing beside the network (:mod:`.pipeline`)

    @property
    def limit_given(self) -> bool:
        """The caller set the memory limit (kept to the smallest blocks if need be)."""
        return self.max_memory is not None

    @classmethod
    def make(
        cls, image: Any, model: nn.Module, axes: str | None, opts: SegmentOptions, plane: tuple | None = None
    ) -> Job:
        """A job for ``image`` with checked ``opts``; what depends on the model and image is
        checked here, before any work (one-line DeepsegError). ``plane``: the (H, W) the default
        tile is fitted to (default: the image's planes)."""
        image = as_array(image)
        plan = AxesPlan.parse(tuple(image.shape), axes)
        meta = described(model)
        wanted = model_in_channels(model)
        picked = check_channels(plan.channels, opts.channels)
        available = len(picked) if picked is not None else plan.channels
        mode = meta.channel_mode if meta is not None else "gray"
        mapping = channel_mapping(available, wanted, mode, picked is not None)
        norm = meta.normalization if meta is not None else {"method": "percentile"}
        norm_spec = check_normalization(norm, wanted)
        dev = resolve_device(opts.device)
        agreement = meta.bf16_agreement if meta is not None else None
        prec = resolve_precision(opts.precision, dev, mode="inference", bf16_agreement=agreement)
        tile, overlap = check_tile(model, opts.tile, opts.overlap)
        if opts.tile is None:  # the default tile is sized to the plane
            multiple = max(32, int(contract_of(model).size_multiple))
            tile = fit_tile(*(plane or (plan.size("Y"), plan.size("X"))), tile, overlap, multiple)
        bs = opts.batch_size or DEFAULT_BATCH.get(dev.type, 2)
        if opts.tile is None and opts.batch_size is None:  # larger tiles, fewer per batch
            bs = max(1, round(bs * (DEFAULT_TILE / tile) ** 2))
        outs = opts.outputs if makes_instances(meta) else tuple(o for o in opts.outputs if o != "instances")
        job = cls(image, plan, picked, mapping, norm_spec, dev, prec, tile, overlap, bs, outs, model)
        job.tta, job.stitch, job.block = opts.tta, opts.stitch_3d or None, opts.block
        job.max_memory = opts.max_memory
        return job

    def run(self) -> Generator[Progress, None, SegmentationResult]:
        start = time.perf_counter()
        plan = self.plan
        fixed = fixed_normalizer(self.norm_spec, model_in_channels(self.model))
        if fixed is None and self.normalizers is None and self.norm_spec["scope"] == "stack":
            spec = self.norm_spec
            planes = (self._plane(i, warn=False) for i in plan.plane_indices())
            fixed = percentile_normalizer(planes, spec["low"], spec["high"])
        if self.store is None:
            self.store = OutputStore(
                memory.memory_limit(self.max_memory), self.limit_given
            )  # the run's limit
        self.layout = self._plan_blocks()
        self.tiles_total, self.tiles_done = self._tiles_per_plane() * plan.n_planes, 0
        self.result = {"classes": None, "instances": None, "probabilities": None}
        ids = StackIds(self.stitch, plan.loop_axes.index("Z") if "Z" in plan.loop_axes else None)
        post = PostPipeline(self.pipelined)
        try:
            for n, index in enumerate(plan.plane_indices()):
                raw = self._plane(index)
                norm = self._normalizer(index, raw, fixed)
                if not self.layout.single:  # numbered with stack-unique ids as its blocks are joined
                    first = ids.first_id(index)
                    out = yield from self._blockwise(raw, norm, index, first, PostPipeline(self.pipelined))
                    yield from self._placed(((n, index), out), ids)
                    continue
                prob = yield from self._plane_with_retry(raw, norm, Target(index), self._shift())
                work = (
                    None if prob is None else partial(plane_instances, prob, self.postprocess, self.out_grid)
                )
                yield from self._placed(post.submit((n, index), work), ids)
                del prob
            yield from self._placed(post.collect(), ids)
        finally:
            post.close()
        return self._finish(time.perf_counter() - start)

    def _placed(self, done: tuple | None, ids: StackIds) -> Generator[Progress, None, None]:
        """Place a finished plane's instances with stack-unique ids; its ``"planes"`` event."""
        if done is None:
            return
        (n, index), labels = done
        labels, count = labels if isinstance(labels, tuple) else (labels, None)
        inst_2d = None if labels is None else ids.place(labels, self._view("instances", index), index, count)
        self.store.release()
        info = {"index": tuple(index), "classes": self._view("classes", index), "instances": inst_2d}
        total = self.plan.n_planes
        yield Progress("planes", n + 1, total, f"plane {n + 1}/{total}", info)

    def _normalizer(self, index: tuple[int, ...], raw: np.ndarray, fixed: Normalizer | None) -> Normalizer:
        """The plane's normalizer: fixed, given (a window run's, from its whole plane), or its own."""
        if fixed is None and self.normalizers is not None:
            return self.normalizers[tuple(index)]
        return fixed or percentile_normalizer([raw], self.norm_spec["low"], self.norm_spec["high"])

    def _out_size(self) -> tuple[int, int]:
        """(h, w) of the outputs' planes: the image's, or a window run's region."""
        return self.window.size if self.window else (self.plan.size("Y"), self.plan.size("X"))

    def _shift(self, rows: slice | None = None, cols: slice | None = None) -> tuple[slice, slice] | None:
        """Output rows and columns (default: all) as those of the image the tiles read (None:
        the whole plane of an ordinary run)."""
        return self.window.shift(rows, cols) if self.window else None if rows is None else (rows, cols)

    def _grid(self, height: int, width: int) -> TileGrid:
        """The tile grid of an (height, width) plane, or a window run's view of its whole plane's."""
        if self.window is None:
            return TileGrid.plan(height, width, self.tile, self.overlap, self.model)
        return self.window.grid(self.tile, self.overlap, self.model, (height, width))

    def _plane(self, index: tuple[int, ...], warn: bool = True) -> np.ndarray:
        """The raw (C_in, H, W) plane at ``index``: channels picked and mapped, NaN/inf policy applied."""
        raw = self.plan.read_plane(self.image, index)
        if self.picked is not None:
            raw = raw[self.picked]
        lead = ", ".join(f"{a}={i}" for a, i in zip(self.plan.loop_axes, index))
        where = f"image plane ({lead})" if lead else "image"
        return model_plane(raw, self.mapping, where, warn)

    def _plane_with_retry(
        self, raw: np.ndarray, norm: Normalizer, target: Target, window: tuple[slice, slice] | None = None
    ):
        """Run a plane, or the ``window`` (rows, cols) of it with the plane's own tile grid (a
        block region: its probabilities equal the whole-plane run's); on a tile too large for
        memory halve the tile and redo it."""
        while True:
            grid = self._grid(raw.shape[1], raw.shape[2])
            try:
                return (yield from self._run_plane(raw, norm, grid, target, window))
            except TileTooLarge as err:
                smaller = self.tile // 2
                if smaller < max(MIN_TILE, contract_of(self.model).size_multiple, self.overlap + 1):
                    raise DeepsegError(
                        f"out of memory on {self.device} even with tile {self.tile} and batch 1 ({err}); "
                        + (
                            "close other programs to free memory"
                            if self.device.type == "cpu"
                            else "use device='cpu' or free device memory"
                        )
                    ) from None
                warnings.warn(
                    f"out of memory on {self.device}; retrying the plane with tile {smaller}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.tile = smaller
                self.overlap = min(self.overlap, smaller // 4)
                self.tiles_total = max(self.tiles_done, self._tiles_per_plane() * self.plan.n_planes)

    def _run_plane(self, raw: np.ndarray, norm: Normalizer, grid: TileGrid, target: Target, window=None):
        """Tile batches -> strip accumulator -> finished rows of the window (default: the plane);
        returns the window's (K, h, w) float16 probabilities or None."""
        wy, wx = grid.weights()
        ry, rx = window or (slice(0, grid.height), slice(0, grid.width))
        tiles = grid.tiles_in(ry, rx)
        acc: StripAccumulator | None = None
        keep_prob = None
        i = 0
        while i < len(tiles):
            chunk = tiles[i : i + self.runner.batch_size]
            out = self._tile_outputs(raw, norm, grid, chunk)
            if acc is None:
                acc = StripAccumulator(out[0].shape[0], rx.stop - rx.start)
                keep_prob = self._allocate(out[0].shape[0], (ry.stop - ry.start, rx.stop - rx.start))
            for (y, x), o in zip(chunk, out):
                y0, y1 = max(y, ry.start), min(y + grid.th, ry.stop)
                x0, x1 = max(x, rx.start), min(x + grid.tw, rx.stop)
                part = o[:, y0 - y : y1 - y, x0 - x : x1 - x]
                acc.add(part, y0 - ry.start, x0 - rx.start, wy[y][y0 - y : y1 - y], wx[x][x0 - x : x1 - x])
            i += len(chunk)
            until = (min(max(tiles[i][0], ry.start), ry.stop) if i < len(tiles) else ry.stop) - ry.start
            if until > acc.top:
                self._finalize_rows(acc.pop_final(until), target, keep_prob)
            self.tiles_done += len(chunk)
            message = f"tile {self.tiles_done}/{self.tiles_total}"
            yield Progress("tiles", self.tiles_done, self.tiles_total, message)
        return keep_prob

    def _tile_outputs(
        self, raw: np.ndarray, norm: Normalizer, grid: TileGrid, chunk: list[tuple[int, int]]
    ) -> list[np.ndarray]:
        """The (K, th, tw) outputs of ``chunk``'s tiles: kept ones from the block tile cache, the
        others run through the network in one batch (and kept when a later block reads them)."""
        cache = self.tiles if self.tiles is not None and self.tiles.grid == grid else None
        found = {t: cache.get(t) for t in chunk} if cache is not None else {}
        todo = [t for t in chunk if found.get(t) is None]
        if todo:
            out = self.runner.run(norm(np.stack([grid.read(raw, y, x) for y, x in todo])))
            if out.shape[2] < grid.th or out.shape[3] < grid.tw:
                raise DeepsegError(
                    f"the model returned {out.shape[2]}x{out.shape[3]} for {grid.in_h}x{grid.in_w} input; "
                    "valid-padding models must declare output_margin (models.contract)"
                )
            for t, o in zip(todo, out):
                found[t] = o
                if cache is not None:
                    cache.put(t, o)
        return [found[t] for t in chunk]

    def _allocate(self, k: int, size: tuple[int, int]) -> np.ndarray | None:
        """Allocate outputs at the first tile; returns a (K, h, w) float16 buffer for instances."""
        shape = list(self.plan.out_shape)
        for axis, n in zip("YX", self._out_size()):
            shape[self.plan.out_axes.index(axis)] = n
        shape = tuple(shape)
        if self.result["classes"] is None:
            zeros = self.store.zeros
            self.result["classes"] = zeros(shape, np.uint8 if k <= 256 else np.uint16)
            if "probabilities" in self.outputs:
                self.result["probabilities"] = zeros((k, *shape), np.float16)
            if "instances" in self.outputs:
                full = shape if self.out_grid is None else (*shape[:-2], *self.out_grid.full)
                self.result["instances"] = zeros(full, np.uint32)
        if "instances" in self.outputs:
            return np.zeros((k, *size), np.float16)
        return None

    def _view(self, name: str, index: tuple[int, ...], k: int | None = None) -> np.ndarray:
        """The 2D (Y, X) view of output ``name`` (class ``k`` for probabilities) for a plane."""
        key, transposed = self.plan.out_key(index)
        arr = self.result[name] if k is None else self.result[name][k]
        view = arr[key]
        return view.T if transposed else view

    def _finalize_rows(self, popped, target: Target, keep_prob: np.ndarray | None) -> None:
        """Write finished rows: the core's classes/probabilities into the outputs, all rows'
        probabilities of classes 1.. (what instances read) into ``keep_prob``."""
        first, sums, wsum = popped
        lo, hi = max(first, target.core_y.start), min(first + sums.shape[1], target.core_y.stop)
        cx = target.core_x
        rows = slice(lo - first, hi - first)
        out_rows = slice(target.oy + lo, target.oy + hi)
        out_cols = slice(target.ox + cx.start, target.ox + cx.stop)
        classes = class_count(self.model) or len(sums)  # then a distance map, for such models
        if hi > lo:
            self._view("classes", target.index)[out_rows, out_cols] = class_map(sums[:classes, rows, cx])
        if self.result["probabilities"] is None and keep_prob is None:
            return
        prob = softmax(sums, wsum, classes)  # in place: the popped rows are ours
        if self.result["probabilities"] is not None and hi > lo:
            for k in range(len(prob)):
                write_float16(
                    self._view("probabilities", target.index, k)[out_rows, out_cols], prob[k, rows, cx]
                )
        if keep_prob is not None:  # instances read classes 1.. only: the background stays 0
            write_float16(keep_prob[1:, first : first + prob.shape[1]], prob[1:])

    def _finish(self, seconds: float) -> SegmentationResult:
        r = self.result
        info = run_meta(self, seconds)
        return SegmentationResult(r["classes"], r["instances"], r["probabilities"], self.plan.out_axes, info)
