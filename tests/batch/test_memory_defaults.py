"""deepseg predict's defaults follow the memory limit: zarr threshold, chunk size and block."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from napari_deepseg.batch.files import MANIFEST_NAME
from napari_deepseg.inference import memory
from napari_deepseg.progress import drain

from . import fakes
from .fakes import predict_iter


def _run(src, out, model_file, fake, max_memory):
    summary = drain(predict_iter([src], out, model=model_file, segment_fn=fake, max_memory=max_memory))
    assert summary.exit_code == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    return manifest["options"], manifest["files"][str(src)]


def test_defaults_follow_max_memory(tmp_path, model_file, fake):
    image = (np.random.default_rng(0).random((2500, 2500)) * 255).astype(np.uint8)
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, image)
    plenty = memory.in_use() + 8 * 2**30
    options, entry = _run(src, tmp_path / "roomy", model_file, fake, plenty)
    assert entry["kind"] == "tiff"  # fits: one piece
    assert options["max_memory"] == plenty
    assert options["zarr_threshold"] is None  # "from the limit", recorded as such
    assert options["block"] == entry["block"] == memory.MAX_BLOCK
    assert fakes.CALLS == [(2500, 2500)]

    fakes.CALLS.clear()
    tight = memory.in_use() + 60 * 2**20
    options, entry = _run(src, tmp_path / "tight", model_file, fake, tight)
    assert entry["kind"] == "zarr"  # 6.25 MPix x 18 bytes does not fit 60 MB: chunks
    assert memory.MIN_BLOCK <= options["block"] < memory.MAX_BLOCK
    assert 0 < entry["chunk_bytes"] < image.nbytes
    assert entry["chunks"] == len(fakes.CALLS) > 1
    assert max(h * w for h, w in fakes.CALLS) < image.size


def test_batch_sizes_grow_with_the_limit():
    used = 500 * 2**20
    small, large = (memory.batch_sizes(used + mb * 2**20, 1, 3, True, used=used) for mb in (100, 1000))
    assert small.block < large.block == memory.MAX_BLOCK
    assert small.zarr_threshold < large.zarr_threshold
    for sizes, mb in ((small, 100), (large, 1000)):
        work = (sizes.block + 2 * memory.DEFAULT_HALO) ** 2 * memory.block_bytes_per_pixel(3, True)
        piece = sizes.chunk_bytes * (1 + memory.BATCH_BYTES_PER_PIXEL)  # uint8 input
        assert work + piece <= mb * 2**20
    # uint16 RGB inputs: 6 bytes a pixel, so fewer pixels per piece
    rgb16 = memory.batch_sizes(used + 1000 * 2**20, 6, 3, True, used=used)
    assert rgb16.chunk_bytes / 6 < large.chunk_bytes


def test_a_process_over_the_default_limit_still_gets_useful_pieces(tmp_path, model_file, fake, monkeypatch):
    """napari with large layers can already use more than the default limit: the batch then
    bounds what it adds (pieces and blocks from half the limit) instead of cutting every input
    into the smallest pieces; a limit the user gives is kept (the smallest pieces)."""
    big = 3 * memory.DEFAULT_LIMIT
    given = memory.batch_sizes(memory.DEFAULT_LIMIT, 1, 3, True, used=big)
    default = memory.batch_sizes(memory.DEFAULT_LIMIT, 1, 3, True, used=big, limit_given=False)
    assert given.block == memory.MIN_BLOCK
    assert given.zarr_threshold == memory.MIN_BLOCK**2
    assert default.block == memory.MAX_BLOCK
    assert default.zarr_threshold > 16 * 2**20
    image = (np.random.default_rng(0).random((1500, 1500)) * 255).astype(np.uint8)
    src = tmp_path / "mid.tif"
    tifffile.imwrite(src, image)
    monkeypatch.setattr(memory, "in_use", lambda: big)
    monkeypatch.setattr(memory, "DEFAULT_LIMIT", 2 * 2**30)
    fakes.CALLS.clear()
    _, entry = _run(src, tmp_path / "out", model_file, fake, None)
    assert entry["kind"] == "tiff"  # 2.25 MPix: one piece, not 512² chunks
    assert fakes.CALLS == [(1500, 1500)]
