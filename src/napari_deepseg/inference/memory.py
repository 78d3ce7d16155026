"""Memory policy: how much memory a run may use, and the block and chunk sizes that follow.

Every memory-derived default lives here (one place):

- :func:`memory_limit`: the bytes a run aims to stay under (its peak resident memory):
  ``max_memory`` when given (``--max-memory``, ``max_memory=``, the widget's Advanced field),
  else half of ``psutil.virtual_memory().available`` capped at :data:`DEFAULT_LIMIT`.
- :func:`block_size`: the side of the square Y/X blocks a large plane is segmented in. A block's
  work costs :func:`block_bytes_per_pixel` bytes per pixel of its region (block plus halo);
  the block is the largest multiple of :data:`BLOCK_STEP` between :data:`MIN_BLOCK` and
  :data:`MAX_BLOCK` whose work fits what the limit leaves after the memory already in use
  (the process's resident set) and the outputs still to allocate in memory. Outputs that would
  take more than half of that go to scratch files instead (:mod:`.outputs`; a 16k x 16k
  plane's labels take 1.3 GB). Only when the disk lacks the space for them and they alone
  exceed the limit, the limit cannot be kept: blocks and the tile cache are then sized from
  :func:`over_limit_room` (half the available memory), with a warning. When the process
  itself already fills the default limit (napari holding large layers), the default bounds
  what the run adds: its work gets at least half of what the limit leaves after its outputs.
  A ``max_memory`` the user set is kept as far as the smallest blocks allow.
- :func:`run_room`: what a run's work may use under the limit (the one rule for a process that
  already fills the default limit, shared by the block plan and the batch defaults).
- :func:`plan_blocks`: a run's block side and its tile cache's budget (what the limit leaves
  after one block's work, at most that work again), from the outputs it must hold.
- :func:`batch_sizes`: ``deepseg predict``'s ``zarr_threshold`` and ``chunk_bytes``: the largest
  input held in memory at once, so that input, outputs and block work fit the limit (the
  blocks get at most half of what is free, the input piece the rest); under the default limit,
  a process that already fills it gets at least half the limit, as in :func:`plan_blocks`.

Blocks bigger than :data:`MAX_BLOCK` do not run faster (a 2048 block plus its 64-pixel halo is
covered by exactly as many 512-pixel tiles as a 2048 x 2048 plane), so a larger limit only buys
headroom, not speed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import psutil

from ..errors import DeepsegError

DEFAULT_LIMIT = 2 * 1024**3
MIN_BLOCK, MAX_BLOCK, BLOCK_STEP = 512, 2048, 256
#: context pixels around a block or chunk: 1/8 of the default 512-pixel tile (the one halo rule
#: is ``SegmentOptions.halo``: max(DEFAULT_HALO, tile overlap))
DEFAULT_HALO = 64
#: the smallest memory limit a run accepts (below it no run can keep to it: a byte, a kilobyte)
MIN_MEMORY = 1024**2
#: instance post-processing bytes per pixel of a block region, labels included (measured by
#: tests/inference/test_postprocess_memory.py: at most 20 on top of the probabilities and labels)
POSTPROCESS_BYTES_PER_PIXEL = 24
#: batch bytes per pixel of a chunk held in memory beyond its input: classes (1), instances (4),
#: the chunk's id offsetting (relabelling, offsetting and the uint32 copy: about 20) and the
#: written copy (4). Was 17: the 8192² benchmark then peaked at 2.1 GB under a 2 GB limit.
BATCH_BYTES_PER_PIXEL = 32


def parse_size(text: str | int | float) -> int:
    """Bytes from ``"512M"``, ``"2G"``, ``"1.5GB"``, ``"100k"`` or a plain number of bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", text)
    if not match:
        raise DeepsegError(f"size {text!r} not understood; use e.g. 512M, 2G or a number of bytes")
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(float(match.group(1)) * 1024**power)


def memory_limit(max_memory: int | str | None = None) -> int:
    """The peak memory (bytes) a run aims for: ``max_memory``, else min(available / 2, 2 GiB)."""
    if max_memory is not None:
        limit = parse_size(max_memory)
        if limit < MIN_MEMORY:
            raise DeepsegError(
                f"max_memory={max_memory!r} is too small; use at least {MIN_MEMORY // 1024**2}M (e.g. 2G)"
            )
        return limit
    return int(min(psutil.virtual_memory().available // 2, DEFAULT_LIMIT))


def in_use() -> int:
    """Resident memory of this process now (the runtime, the model, images already loaded)."""
    return int(psutil.Process().memory_info().rss)


def block_bytes_per_pixel(num_classes: int, instances: bool, pipelined: bool = True) -> int:
    """Work bytes per pixel of a block region.

    The float16 probability buffer (2 K) when instances are made, the post-processing
    (:data:`POSTPROCESS_BYTES_PER_PIXEL`), the region's classes and probability rows (K + 1),
    and the tile accumulator's float32 rows (about 4 K, they span one tile of the region).
    ``pipelined`` (the engine's way): the previous block's probabilities and post-processing are in flight
    beside this block's network (:mod:`.pipeline`): 2 K + the post-processing once more.
    """
    per = 5 * num_classes + 1
    if instances:
        per += (2 * num_classes + POSTPROCESS_BYTES_PER_PIXEL) * (2 if pipelined else 1)
    return per


def block_size(free_bytes: int, bytes_per_pixel: int, halo: int = DEFAULT_HALO) -> int:
    """Largest block side (multiple of BLOCK_STEP, MIN_BLOCK..MAX_BLOCK) whose work fits ``free_bytes``."""
    side = math.isqrt(max(0, int(free_bytes)) // max(1, int(bytes_per_pixel))) - 2 * halo
    side = side // BLOCK_STEP * BLOCK_STEP
    return int(min(MAX_BLOCK, max(MIN_BLOCK, side)))


def over_limit_room() -> int:
    """Bytes for block work when a run's outputs alone exceed the limit (it cannot be kept):
    half the available memory, so the run is not also slowed by tiny blocks."""
    return int(psutil.virtual_memory().available // 2)


def run_room(limit: int, used: int, held: int, limit_given: bool) -> int:
    """Bytes a run may use for its work under ``limit``: what is left after the memory already
    ``used`` and the outputs it must hold (``held``). Under the default limit (``limit_given`` False) a
    process that already fills it (napari with large layers, a long session) bounds what the run
    adds instead: at least half of what the limit leaves after the outputs. A limit the user set
    is kept (the run then gets the smallest blocks and pieces)."""
    free = limit - used - held
    return free if limit_given else max(free, (limit - held) // 2)


@dataclass(frozen=True)
class BlockPlan:
    """A plane's block side, the tile cache's byte budget, and whether the outputs alone
    exceed the default limit (the run then uses :func:`over_limit_room` and should warn)."""

    side: int
    cache_budget: int
    over_limit: bool


def plan_blocks(
    outputs: int, limit: int, limit_given: bool, bytes_per_pixel: int, halo: int, block: int | None
) -> BlockPlan:
    """Block side (``block`` if given) and tile-cache budget for a run whose outputs take
    ``outputs`` bytes under ``limit``: the cache gets what is left after one block's work, at
    most that work again (memory stays the outputs plus O(block)). ``limit_given``: the caller
    set the limit, which is then kept as far as the smallest blocks allow."""
    over = block is None and not limit_given and outputs >= limit
    free = over_limit_room() if over else run_room(limit, in_use(), outputs, limit_given)
    side = block or block_size(free, bytes_per_pixel, halo)
    work = (side + 2 * halo) ** 2 * bytes_per_pixel
    return BlockPlan(side, max(0, min(work, free - work)), over)


@dataclass(frozen=True)
class BatchSizes:
    """``deepseg predict`` defaults from the memory limit (bytes of input).

    Attributes:
        limit: the memory limit they were derived from.
        zarr_threshold: inputs larger than this are segmented chunk by chunk into OME-Zarr.
        chunk_bytes: input bytes per chunk.
        block: the block side used for planes larger than a block.
    """

    limit: int
    zarr_threshold: int
    chunk_bytes: int
    block: int


def batch_sizes(
    limit: int,
    pixel_bytes: int,
    num_classes: int,
    instances: bool,
    used: int | None = None,
    limit_given: bool = True,
) -> BatchSizes:
    """Batch defaults under ``limit``: the largest input piece whose input, outputs and work fit.

    ``pixel_bytes`` is the input's bytes per Y/X pixel (itemsize times channels); ``used`` the
    memory already in use (default: this process's resident set); ``limit_given``: see
    :func:`run_room`.
    """
    used = in_use() if used is None else int(used)
    room = run_room(limit, used, 0, limit_given)
    bpp = block_bytes_per_pixel(num_classes, instances)
    block = block_size(room // 2, bpp)  # at most half for the blocks, the rest for the piece
    work = (block + 2 * DEFAULT_HALO) ** 2 * bpp
    free = max(0, room - work)
    per_pixel = pixel_bytes + BATCH_BYTES_PER_PIXEL
    piece_pixels = max(block * block, free // per_pixel)
    return BatchSizes(limit, piece_pixels * pixel_bytes, piece_pixels * pixel_bytes, block)
