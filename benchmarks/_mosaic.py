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
