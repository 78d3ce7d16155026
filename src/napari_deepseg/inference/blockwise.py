"""The blockwise part of a run (:class:`~.job.Job`): planes larger than a block.

A plane larger than a block (:mod:`.memory`) is run block by block over the plane's own tile
grid; each block's instances are made on its region (beside the network's next block, through
:mod:`.pipeline`) and joined across block borders (:mod:`.blocks`); tiles that neighbouring
blocks share are run once and kept for the next (:class:`.tiling.TileCache`).
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Any

import numpy as np

from ..models.contract import map_count
from ..progress import Progress
from . import memory
from .blocks import BlockLabels, BlockLayout, Target
from .inputs import Normalizer
from .options import halo_for
from .pipeline import PostPipeline, block_instances
from .tiling import TileCache


class BlockwiseRuns:
    """Methods of :class:`~.job.Job` for block layouts and blockwise planes (a mixin: the
    attributes are the job's)."""

    def _plan_blocks(self) -> BlockLayout:
        """The plane's block layout and the tile cache's budget (:func:`.memory.plan_blocks`):
        ``block=`` if given, else the memory policy's block."""
        h, w = self._out_size()
        halo = halo_for(self.overlap)
        k = map_count(self.model) or 3
        instances = "instances" in self.outputs
        per_pixel = 1 + 2 * k * ("probabilities" in self.outputs)
        # a rescaled run's instances are on the image's grid; its classes and probabilities are
        # mapped there at the end
        rescaled = self.out_grid is not None
        image_pixels = math.prod(self.out_grid.full) if rescaled else h * w
        per_image_pixel = 4 * instances + per_pixel * rescaled
        outputs = self.plan.n_planes * (h * w * per_pixel + image_pixels * per_image_pixel)
        held = 0 if self.store.reserve(outputs) else outputs  # outputs on disk hold no memory
        per_block_pixel = memory.block_bytes_per_pixel(k, instances, self.pipelined)
        chosen = memory.plan_blocks(
            held, self.store.limit, self.limit_given, per_block_pixel, halo, self.block
        )
        if chosen.over_limit:
            warnings.warn(
                f"this image's result alone needs {outputs / 2**30:.1f} GB, over the memory limit of "
                f"{self.store.limit / 2**30:.1f} GB, and the scratch directory lacks the disk space to "
                "hold it "
                f"({self.store.directory}); segmenting in blocks of {chosen.side} in memory anyway. Free "
                "disk space or set DEEPSEG_SCRATCH to a larger disk, or raise max_memory",
                RuntimeWarning,
                stacklevel=2,
            )
        self.cache_budget = chosen.cache_budget
        return BlockLayout.plan(h, w, chosen.side, halo)

    def _tiles_per_plane(self) -> int:
        """Tiles run per plane: the plane's tile grid, each block running the tiles over its region."""
        grid = self._grid(self.plan.size("Y"), self.plan.size("X"))
        return sum(len(grid.tiles_in(*self._shift(b.read_y, b.read_x))) for b in self.layout.blocks())

    def _blockwise(
        self, raw: np.ndarray, norm: Normalizer, index: tuple[int, ...], first: int, post: PostPipeline
    ):
        """Run a plane block by block; returns its instance labels (``first .. first + N - 1``,
        a view of the stored instances) and N, or (None, 0).

        Yields ``"blocks"`` events: one before the first block (outputs allocated when the model
        names its classes, so a viewer can show the plane at once) and one after each block.
        """
        k = map_count(self.model) or 0
        if k and self.result["classes"] is None:
            self._allocate(k, (0, 0))
        total = self.layout.count
        yield Progress("blocks", 0, total, "blocks", self._block_info(index, slice(0, 0), slice(0, 0)))
        grid = self._grid(raw.shape[1], raw.shape[2])
        regions = [self._shift(b.read_y, b.read_x) for b in self.layout.blocks()]
        self.tiles = TileCache(grid, regions, self.cache_budget)
        writer = None
        try:
            for block in self.layout.blocks():
                self.tiles.start(block.index)
                window = self._shift(block.read_y, block.read_x)
                prob = yield from self._plane_with_retry(raw, norm, Target.of_block(index, block), window)
                work = (
                    None
                    if prob is None
                    else partial(block_instances, block, prob, self.postprocess, self.out_grid)
                )
                del prob
                writer = yield from self._joined(post.submit(block, work), writer, index)
            writer = yield from self._joined(post.collect(), writer, index)
        finally:
            post.close()
        self.tiles = None
        if writer is None:
            return None, 0
        count = writer.finish(offset=first - 1, release=self.store.release)
        return writer.out, count

    def _joined(self, done: tuple | None, writer: BlockLabels | None, index: tuple[int, ...]):
        """Join a finished block's instances (in block order) into the plane; its ``"blocks"`` event."""
        if done is None:
            return writer
        block, labels = done
        if labels is not None:
            writer = writer or BlockLabels(self._view("instances", index))
            writer.add(*labels)
        self.store.release()
        total = self.layout.count
        info = self._block_info(index, block.y, block.x)
        yield Progress("blocks", block.index + 1, total, f"block {block.index + 1}/{total}", info)
        return writer

    def _block_info(self, index: tuple[int, ...], y: slice, x: slice) -> dict[str, Any]:
        """A ``"blocks"`` event's payload: the block's core and the plane's 2D outputs so far."""
        views = {
            o: None if self.result[o] is None else self._view(o, index) for o in ("classes", "instances")
        }
        return {"index": tuple(index), "y": y, "x": x, **views}
