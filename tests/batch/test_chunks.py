"""Large inputs: lazy, chunk-by-chunk processing into OME-Zarr with bounded memory (fake engine)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_deepseg.batch import MANIFEST_NAME
from napari_deepseg.batch.work import plan_chunks
from napari_deepseg.io import is_complete, open_labels
from napari_deepseg.io.zarr import OmeZarrLabelsWriter

from . import fakes
from .conftest import expected_classes
from .fakes import predict


def _stack(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 140).astype(np.uint8)


def test_plan_runs_of_planes_and_blocks():
    chunks = plan_chunks((10, 64, 64), "ZYX", 1, chunk_bytes=3 * 64 * 64, halo=8)
    assert [c.lead[0] for c in chunks] == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
    assert chunks[1].id_offsets == (3 * 4096, 4 * 4096, 5 * 4096)
    blocks = plan_chunks((2, 3000, 2500), "CYX", 1, chunk_bytes=2 * 1024 * 1024, halo=16, block=1024)
    assert len(blocks) == 9
    b = blocks[4]
    assert (b.y, b.x) == (slice(1024, 2048), slice(1024, 2048))
    assert (b.read_y, b.read_x) == (slice(1008, 2064), slice(1008, 2064))
    assert blocks[-1].x == slice(2048, 2500)
    assert blocks[-1].read_x == slice(2032, 2500)


def test_large_stack_is_processed_lazily_in_chunks(tmp_path, model_file, fake):
    data = _stack((12, 40, 48))
    tifffile.imwrite(tmp_path / "stack.tif", data, photometric="minisblack")
    out = tmp_path / "out"
    chunk_bytes = 4 * 40 * 48
    summary = predict(
        [tmp_path / "stack.tif"],
        out,
        model=model_file,
        segment_fn=fake,
        zarr_threshold=1000,
        chunk_bytes=chunk_bytes,
    )
    assert summary.exit_code == 0
    # the engine only ever saw 4-plane chunks, never the whole stack
    assert fakes.CALLS == [(4, 40, 48)] * 3
    store = out / "stack_labels.zarr"
    assert is_complete(store)
    labels, axes = open_labels(store)
    assert axes == "ZYX"
    assert labels.dtype == np.uint32
    assert labels.chunks == (1, 40, 48)
    got = np.asarray(labels[:])
    np.testing.assert_array_equal(got > 0, expected_classes(data))
    # ids are unique across chunks: every plane's ids are disjoint from every other plane's
    seen: set[int] = set()
    for plane in got:
        ids = set(np.unique(plane[plane > 0]).tolist())
        assert not ids & seen
        seen |= ids
    entry = json.loads((out / MANIFEST_NAME).read_text())["files"][str(tmp_path / "stack.tif")]
    assert entry["kind"] == "zarr"
    assert entry["chunks"] == 3


def test_huge_plane_blocks_with_halo_equal_whole_plane(tmp_path, model_file, fake):
    data = _stack((2100, 1100), seed=1)
    np.save(tmp_path / "plane.npy", data)
    out = tmp_path / "out"
    predict(
        [tmp_path / "plane.npy"],
        out,
        model=model_file,
        segment_fn=fake,
        output="classes",
        zarr_threshold=1000,
        chunk_bytes=1024 * 1024,
        overlap=16,
    )
    # 3 x 2 blocks of 1024 (clipped), each read with the halo rule's max(64, overlap) = 64 pixels
    assert sorted(fakes.CALLS) == sorted(
        [(1088, 1088), (1088, 140), (1140, 1088), (1140, 140), (116, 1088), (116, 140)]
    )
    labels, axes = open_labels(out / "plane_labels.zarr")
    assert axes == "YX"
    np.testing.assert_array_equal(np.asarray(labels[:]), expected_classes(data))


def test_probabilities_of_a_large_rgb_stack(tmp_path, model_file, fake):
    data = _stack((3, 20, 24, 3), seed=2)
    z = zarr.open_array(str(tmp_path / "rgb.zarr"), mode="w", shape=data.shape, dtype=data.dtype)
    z[:] = data
    out = tmp_path / "out"
    predict(
        [tmp_path / "rgb.zarr"],
        out,
        model=model_file,
        segment_fn=fake,
        output="probabilities",
        zarr_threshold=100,
        chunk_bytes=20 * 24 * 3,
    )
    assert is_complete(out / "rgb_labels.zarr")
    probs, axes = open_labels(out / "rgb_labels.zarr")
    assert axes == "CZYX"
    assert probs.shape == (3, 3, 20, 24)  # K=3 classes of the model x Z x Y x X
    np.testing.assert_array_equal(np.asarray(probs[1]), expected_classes(data.max(-1)))


def test_unfinished_zarr_output_is_redone(tmp_path, model_file, fake):
    data = _stack((4, 16, 16))
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="minisblack")
    out = tmp_path / "out"
    OmeZarrLabelsWriter(out / "s_labels.zarr", (4, 16, 16), np.uint32, "ZYX")  # no marker
    summary = predict([tmp_path / "s.tif"], out, model=model_file, segment_fn=fake, zarr_threshold=100)
    assert [p.name for p in summary.done] == ["s.tif"]
    assert is_complete(out / "s_labels.zarr")
    again = predict([tmp_path / "s.tif"], out, model=model_file, segment_fn=fake, zarr_threshold=100)
    assert [p.name for p in again.skipped] == ["s.tif"]
    redo = predict(
        [tmp_path / "s.tif"], out, model=model_file, segment_fn=fake, zarr_threshold=100, overwrite=True
    )
    assert [p.name for p in redo.done] == ["s.tif"]
    assert is_complete(out / "s_labels.zarr")


@pytest.mark.parametrize("axes", ["YXZ", "ZY"])
def test_bad_axes_fail_the_file(tmp_path, model_file, fake, axes):
    tifffile.imwrite(tmp_path / "s.tif", _stack((4, 16, 16)), photometric="minisblack")
    summary = predict(
        [tmp_path / "s.tif"],
        tmp_path / "out",
        model=model_file,
        segment_fn=fake,
        zarr_threshold=100,
        axes=axes,
    )
    assert summary.exit_code == 1
    assert "axes" in summary.failed[0][1]


def test_instances_cut_by_block_borders_are_joined(tmp_path, model_file, fake):
    from skimage.draw import disk

    image = np.zeros((2100, 1100), np.uint8)
    centres = [(1024, 500), (500, 1024), (1024, 1024), (2048, 300), (300, 300), (1500, 700)]
    for c in centres:
        image[disk(c, 25, shape=image.shape)] = 200
    image[1030:1040, 1049:1060] = 200  # touches the disk at (1024, 1024) inside one block only
    np.save(tmp_path / "plane.npy", image)
    out = tmp_path / "out"
    summary = predict(
        [tmp_path / "plane.npy"],
        out,
        model=model_file,
        segment_fn=fake,
        zarr_threshold=1000,
        chunk_bytes=1024 * 1024,
        overlap=16,
    )
    assert summary.exit_code == 0
    labels = np.asarray(open_labels(out / "plane_labels.zarr")[0][:])
    for c in centres:
        ids = np.unique(labels[disk(c, 25, shape=image.shape)])
        assert len(ids) == 1, (c, ids)  # one id per disk although borders cut 4 of them
        assert ids[0] > 0
    assert len(np.unique(labels[labels > 0])) == len(centres)
    marker = json.loads((out / "plane_labels.zarr" / "deepseg_complete.json").read_text())
    assert marker["joined_at_block_borders"] >= 4


def test_distinct_objects_touching_a_border_stay_apart():
    from napari_deepseg.inference.blocks import facing_pairs

    a = np.array([0, 5, 5, 5, 5, 0, 7, 7, 0, 0])
    b = np.array([0, 9, 9, 9, 9, 0, 0, 0, 0, 8])
    b2 = np.array([0, 0, 0, 0, 6, 6, 6, 6, 6, 6])
    assert facing_pairs(a, b) == [(5, 9)]
    assert facing_pairs(a, b2) == []  # border IoU 5/6: 1/9, 7/6: 2/6
