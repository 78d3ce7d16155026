"""Synthetic mosaics of real DSB2018 tiles (uint8 grayscale) for the scaling benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks._mosaic
    from _common import dsb_records, read_dsb
except ImportError:
    from benchmarks._common import dsb_records, read_dsb

TILE = 256


def dsb_tiles(data: Path, split: str = "val", kind: str = "fluorescence") -> list[np.ndarray]:
    """The top-left 256 x 256 crop of every ``split``/``kind`` DSB image, as uint8 grayscale."""
    tiles = []
    for rec in dsb_records(data, split, kind):
        image, _ = read_dsb(data, rec)
        if image.ndim == 3:
            image = image[..., :3].mean(axis=-1)
        tiles.append(np.asarray(image[:TILE, :TILE], np.uint8))
    if not tiles:
        raise SystemExit(f"no {split}/{kind} images under {data}")
    return tiles


def mosaic(tiles: list[np.ndarray], side: int, seed: int = 0) -> np.ndarray:
    """A (side, side) uint8 mosaic of the tiles, cycled in a shuffled order with random flips."""
    rng = np.random.default_rng(seed)
    out = np.zeros((side, side), np.uint8)
    n = side // TILE
    order = rng.permutation(n * n) % len(tiles)
    for k, t in enumerate(order):
        y, x = divmod(k, n)
        tile = tiles[t]
        if rng.random() < 0.5:
            tile = tile[::-1]
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
        out[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE] = tile
    return out


def dsb_truth_tiles(data: Path, split: str = "val", kind: str = "fluorescence") -> list[np.ndarray]:
    """The ground-truth instance masks of :func:`dsb_tiles`' crops (same order), int32."""
    return [
        np.asarray(read_dsb(data, rec)[1][:TILE, :TILE], np.int32) for rec in dsb_records(data, split, kind)
    ]


def truth_mosaic(truths: list[np.ndarray], side: int, seed: int = 0) -> np.ndarray:
    """The instance masks of :func:`mosaic`'s tiles, laid out (and flipped) the same way, with
    ids made unique across tiles (int64: a 16384² mosaic holds about 100k nuclei)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((side, side), np.int64)
    n = side // TILE
    order = rng.permutation(n * n) % len(truths)
    offset = 0
    for k, t in enumerate(order):
        y, x = divmod(k, n)
        tile = truths[t].astype(np.int64)
        if rng.random() < 0.5:
            tile = tile[::-1]
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
        out[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE] = np.where(tile > 0, tile + offset, 0)
        offset += int(tile.max())
    return out
