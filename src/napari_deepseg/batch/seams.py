"""Join instances cut by the Y/X block borders of a huge plane (chunked OME-Zarr outputs).

Each block is segmented with a halo, so an object crossing a border is segmented alike on
both sides but gets one id per block. The store holds only the blocks' cores, so across every
border, ids ``a`` (on the last row/column of one block) and ``b`` (on the first of the next)
whose border pixels overlap with an IoU of at least 0.5 are the same object; they are joined
(union-find, smallest id kept, :mod:`napari_deepseg.inference.blocks`) and the store is
relabelled block by block. Distinct objects that merely touch at a border overlap little there
and stay apart.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

import numpy as np

from ..inference.blocks import facing_pairs, join_roots
from ..io import OmeZarrLabelsWriter
from .work import Chunk, plane_selection


def _lead_key(lead: tuple) -> tuple:
    return tuple((s.start, s.stop) if isinstance(s, slice) else s for s in lead)


def _read(writer: OmeZarrLabelsWriter, lead: tuple, y, x) -> np.ndarray:
    sel = plane_selection(writer.axes, lead, y, x, None)
    return np.asarray(writer.array[tuple(sel[i] for i in writer.order)]).ravel()


def _border_pairs(writer: OmeZarrLabelsWriter, chunks: Sequence[Chunk]) -> list[tuple[int, int]]:
    by_start = {(_lead_key(c.lead), c.y.start, c.x.start): c for c in chunks}
    pairs: list[tuple[int, int]] = []
    for c in chunks:
        key = _lead_key(c.lead)
        right = by_start.get((key, c.y.start, c.x.stop))
        if right is not None:
            a = _read(writer, c.lead, c.y, c.x.stop - 1)
            pairs += facing_pairs(a, _read(writer, c.lead, c.y, c.x.stop))
        below = by_start.get((key, c.y.stop, c.x.start))
        if below is not None:
            a = _read(writer, c.lead, c.y.stop - 1, c.x)
            pairs += facing_pairs(a, _read(writer, c.lead, c.y.stop, c.x))
    return pairs


def merge_block_seams(path: str | os.PathLike, chunks: Sequence[Chunk]) -> int:
    """Join instances cut by block borders in the labels store at ``path``; returns joins made.

    ``chunks`` is the plan the store was written with (:func:`~.work.plan_chunks`); plans of
    whole planes have no borders and cost nothing.
    """
    writer = OmeZarrLabelsWriter.reopen(path)
    mapping = join_roots(_border_pairs(writer, chunks))
    if not mapping:
        return 0
    keys = np.array(sorted(mapping), dtype=writer.array.dtype)
    values = np.array([mapping[k] for k in keys.tolist()], dtype=writer.array.dtype)
    rows = writer.array.chunks[writer.file_axes.index("Y")]
    for c in chunks:
        for band in _row_bands(c.y, rows):
            sel = plane_selection(writer.axes, c.lead, band, c.x, None)
            file_sel = tuple(sel[i] for i in writer.order)
            block = np.asarray(writer.array[file_sel])
            idx = np.clip(np.searchsorted(keys, block), 0, len(keys) - 1)
            hit = keys[idx] == block
            if hit.any():
                block[hit] = values[idx[hit]]
                writer.array[file_sel] = block
    return len(mapping)


def _row_bands(y: slice, rows: int, min_rows: int = 512) -> list[slice]:
    """``y`` cut into bands that end on the store's chunk rows (multiples of ``rows``), each at
    least ``min_rows`` high where ``y`` allows: the relabelling holds a band's temporaries (about
    25 bytes per pixel), not a whole chunk's (a 30 MPix chunk of a 16k plane: 0.75 GB)."""
    step = max(1, -(-min_rows // rows)) * rows
    edges = [y.start, *range((y.start // step + 1) * step, y.stop, step), y.stop]
    return [slice(a, b) for a, b in itertools.pairwise(edges) if b > a]
