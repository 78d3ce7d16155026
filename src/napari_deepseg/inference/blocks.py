"""Blockwise instances of a large plane: block layout with halos and seam joining.

A plane larger than a block is cut into a grid of square-ish core blocks; each is segmented
from a region that adds ``halo`` pixels of context on every side inside the plane, and only its
core is kept. In :func:`~napari_deepseg.inference.segment` a block runs the tiles of the whole
plane's tile grid that cover its region (``TileGrid.tiles_in``), so its probabilities are
exactly the whole-plane ones; only the watershed sees the region's edge. An object crossing a
core border is then segmented alike on both sides (each side saw the other's first ``halo``
pixels) but carries one id per block. Across every border, ids
``a`` (on the last row/column of one core) and ``b`` (on the first of the next) whose facing
pixels overlap with an IoU of at least :data:`MIN_FACING` are the same object and are joined;
distinct objects that merely touch at a border overlap little there and stay apart.

:class:`BlockLabels` does this while blocks arrive in row-major order: each core's ids become
provisional ids unique in the plane, joins are recorded in a union-find, and :meth:`finish`
renumbers the plane 1..N in one pass of row bands. The batch path joins the blocks of its
chunked Zarr outputs (where only the cores are stored) by the facing rows and columns of
their borders, with the same :func:`facing_pairs` and :func:`join_roots`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

MIN_FACING = 0.5
_BAND_ROWS = 256


def facing_pairs(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Id pairs of two label arrays of one area that overlap there with IoU >= MIN_FACING.

    Args:
        a, b: 1D labels of equal length: two facing border lines (the last row/column of one
            block, the first of the next) or two labellings of the same pixels; the IoU is taken
            over these pixels.
    """
    both = (a > 0) & (b > 0)
    if not both.any():
        return []
    pairs, counts = np.unique(np.stack([a[both], b[both]], 1), axis=0, return_counts=True)
    ids_a, n_a = np.unique(a[a > 0], return_counts=True)
    ids_b, n_b = np.unique(b[b > 0], return_counts=True)
    size_a, size_b = dict(zip(ids_a.tolist(), n_a.tolist())), dict(zip(ids_b.tolist(), n_b.tolist()))
    return [
        (int(p), int(q))
        for (p, q), n in zip(pairs.tolist(), counts.tolist())
        if n >= MIN_FACING * (size_a[p] + size_b[q] - n)
    ]


class UnionFind:
    """Groups of ids joined pairwise; the smallest id of a group is its root."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(i, i) != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    def join(self, pairs: list[tuple[int, int]]) -> None:
        for a, b in pairs:
            ra, rb = self.find(a), self.find(b)
            if ra != rb:
                self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> dict[int, int]:
        """``{id: root}`` for every id that is not its group's root."""
        return {i: r for i in list(self.parent) if (r := self.find(i)) != i}


def join_roots(pairs: list[tuple[int, int]]) -> dict[int, int]:
    """Union-find over joined id pairs: ``{id: smallest id of its group}`` for every non-root id."""
    groups = UnionFind()
    groups.join(pairs)
    return groups.roots()


def split_axis(length: int, block: int, halo: int) -> list[tuple[int, int]]:
    """Core (start, stop) ranges of nearly equal size covering ``range(length)``.

    A length up to ``block + 2 * halo`` stays one piece (its region would be no larger);
    otherwise ``ceil((length - 2 halo) / block)`` pieces, so no thin remainder block is made.
    """
    count = max(1, math.ceil((length - 2 * halo) / block))
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(itertools.pairwise(edges))


@dataclass(frozen=True)
class Block:
    """One block: core rows/columns kept, and the region read (core plus halo, inside the plane)."""

    index: int
    y: slice
    x: slice
    read_y: slice
    read_x: slice

    @property
    def core_in_region(self) -> tuple[slice, slice]:
        """The core as slices of the region."""
        y0, x0 = self.y.start - self.read_y.start, self.x.start - self.read_x.start
        return slice(y0, y0 + self.y.stop - self.y.start), slice(x0, x0 + self.x.stop - self.x.start)


@dataclass(frozen=True)
class BlockLayout:
    """Blocks of one (height, width) plane, in row-major order."""

    height: int
    width: int
    block: int
    halo: int
    ys: tuple[tuple[int, int], ...]
    xs: tuple[tuple[int, int], ...]

    @classmethod
    def plan(cls, height: int, width: int, block: int, halo: int) -> BlockLayout:
        ys, xs = split_axis(height, block, halo), split_axis(width, block, halo)
        return cls(height, width, block, halo, tuple(ys), tuple(xs))

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def single(self) -> bool:
        """True when the plane is one block (segmented whole)."""
        return self.count == 1

    def blocks(self) -> Iterator[Block]:
        h, w, m = self.height, self.width, self.halo
        for i, (y0, y1) in enumerate(self.ys):
            for j, (x0, x1) in enumerate(self.xs):
                read_y = slice(max(0, y0 - m), min(h, y1 + m))
                read_x = slice(max(0, x0 - m), min(w, x1 + m))
                yield Block(i * len(self.xs) + j, slice(y0, y1), slice(x0, x1), read_y, read_x)


_ALL = slice(0, 2**62)


@dataclass(frozen=True)
class Target:
    """Where a run over a plane or a block region writes: plane index, region origin (oy, ox)
    in the plane, and the core rows/columns of the region to keep (all for a whole plane)."""

    index: tuple[int, ...]
    oy: int = 0
    ox: int = 0
    core_y: slice = field(default_factory=lambda: _ALL)
    core_x: slice = field(default_factory=lambda: _ALL)

    @classmethod
    def of_block(cls, index: tuple[int, ...], block: Block) -> Target:
        cy, cx = block.core_in_region
        return cls(index, block.read_y.start, block.read_x.start, cy, cx)


def _shift(region_slices: tuple[slice, slice], block: Block) -> tuple[slice, slice]:
    """Slices of the region (starts and stops given) as slices of the plane."""
    sy, sx = region_slices
    y0, x0 = block.read_y.start, block.read_x.start
    ys = slice(y0 + (sy.start or 0), y0 + (block.read_y.stop - y0 if sy.stop is None else sy.stop))
    xs = slice(x0 + (sx.start or 0), x0 + (block.read_x.stop - x0 if sx.stop is None else sx.stop))
    return ys, xs


class BlockLabels:
    """Writes blocks' instance labels into a (H, W) uint32 plane and joins objects across borders."""

    def __init__(self, out: np.ndarray) -> None:
        self.out = out
        self.next_id = 1
        self.groups = UnionFind()

    def add(self, block: Block, region: np.ndarray) -> None:
        """Write a block's core from its region's labels; join objects already written in the halo.

        ``region`` holds the labels (0 background, any ids) of the block's whole region. Its
        halo overlaps the cores written before (the rows above, the block to the left): a
        region object kept in the core whose pixels there match a written object with
        IoU >= MIN_FACING is that object, cut by the border.
        """
        cy, cx = block.core_in_region
        ids = np.unique(region[cy, cx])
        ids = ids[ids > 0]
        lut = np.zeros(int(region.max()) + 1, np.uint32)
        lut[ids] = np.arange(self.next_id, self.next_id + len(ids), dtype=np.uint32)
        self.next_id += len(ids)
        self.out[block.y, block.x] = lut[region[cy, cx]]
        top = (slice(0, cy.start), slice(None))  # rows above the core: written by earlier block rows
        left = (cy, slice(0, cx.start))  # the left neighbour's core
        mine = [lut[region[s]].ravel() for s in (top, left)]
        theirs = np.concatenate([self.out[_shift(s, block)].ravel() for s in (top, left)])
        written, inverse = np.unique(theirs, return_inverse=True)  # as joined so far
        roots = np.array([self.groups.find(int(i)) for i in written], np.uint32)
        self.groups.join(facing_pairs(np.concatenate(mine), roots[inverse.ravel()]))

    def finish(self, offset: int = 0, release: Callable[[], None] | None = None) -> int:
        """Renumber the plane to ``offset + 1 .. offset + N`` (joined ids merged); returns N.

        ``release`` is called after each row band (outputs in scratch files drop the band's
        pages from memory: :class:`.outputs.OutputStore`)."""
        lut = np.arange(self.next_id, dtype=np.int64)
        for child, root in self.groups.roots().items():
            lut[child] = root
        roots = np.unique(lut[1:])
        final = np.zeros(self.next_id, np.uint32)
        rank = np.searchsorted(roots, lut[1:]).astype(np.uint32)
        final[1:] = rank + np.uint32(offset + 1)
        for r in range(0, self.out.shape[0], _BAND_ROWS):
            band = self.out[r : r + _BAND_ROWS]
            band[...] = final[band]
            if release is not None:
                release()
        return len(roots)
