"""OME-Zarr outputs through ome-zarr: pyramid, labels beside an OME-Zarr image with its scale and
units, chunk-level resume of an interrupted store, and napari-ome-zarr opening the result."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_deepseg.io import is_complete, open_labels, read_ngff
from napari_deepseg.io.zarr import CHUNKS_DIR, OmeZarrLabelsWriter

from . import fakes
from .fakes import predict

pytest.importorskip("ome_zarr", reason="ome-zarr not installed: pip install -e '.[testing]'")


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 140).astype(np.uint8)


def _ome_zarr_image(path, data, scale, version="0.4"):
    """An OME-Zarr image as another tool writes it (ZYX in micrometers; NGFF 0.4 or 0.5)."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    group.create_array("0", data=data, chunks=(1, *data.shape[1:]))
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}]
    fmt = FormatV04() if version == "0.4" else FormatV05()
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=axes, name="cells")
    return path


def test_pyramid_levels_are_nearest_downsamples(tmp_path):
    data = np.random.default_rng(1).integers(0, 50, (1100, 900), dtype=np.uint32)
    writer = OmeZarrLabelsWriter(tmp_path / "p.zarr", data.shape, np.uint32, "YX", chunks=(256, 256))
    writer.write((slice(None), slice(None)), data)
    writer.finalize(min_side=256)
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    node = next(iter(Reader(parse_url(str(tmp_path / "p.zarr")))()))
    assert node.load(Label) is not None  # an NGFF image-label
    assert [level.shape for level in node.data] == [(1100, 900), (550, 450), (275, 225), (138, 113)]
    for k, level in enumerate(node.data):
        np.testing.assert_array_equal(np.asarray(level), data[:: 2**k, :: 2**k])
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[1.0, 1.0], [2.0, 2.0], [4.0, 4.0], [8.0, 8.0]]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_go_beside_an_ome_zarr_image_with_its_scale(tmp_path, model_file, fake, version):
    data = _image((3, 40, 48))
    src = _ome_zarr_image(tmp_path / "cells.ome.zarr", data, (2.0, 0.25, 0.25), version)
    out = tmp_path / "out"
    summary = predict([src], out, model=model_file, segment_fn=fake, output="instances")
    assert summary.exit_code == 0, summary.text()
    labels_path = src / "labels" / "tiny_instances"
    assert is_complete(labels_path)
    assert not list(out.glob("*_labels.*"))  # nothing beside the manifest: the labels sit in the image
    info = read_ngff(labels_path)
    assert info.axes == "ZYX"
    assert info.scale == {"Z": 2.0, "Y": 0.25, "X": 0.25}
    assert info.units == {"Z": "micrometer", "Y": "micrometer", "X": "micrometer"}
    assert info.zarr_format == (2 if version == "0.4" else 3)  # the image's own format
    parent = _ngff_attrs(src / "labels")
    assert parent["labels"] == ["tiny_instances"]
    assert _ngff_attrs(labels_path)["image-label"]["source"] == {"image": "../../"}
    labels, _ = open_labels(labels_path)
    assert (np.asarray(labels[:]) > 0).sum() == (data > 100).sum()
    again = predict([src], out, model=model_file, segment_fn=fake, output="instances")
    assert [p.name for p in again.skipped] == ["cells.ome.zarr"]
    assert _ngff_attrs(src / "labels")["labels"] == ["tiny_instances"]


def _ngff_attrs(path) -> dict:
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    return attrs.get("ome", attrs)  # NGFF 0.5 nests its metadata under "ome"


def _failing_after(n):
    calls = {"n": 0}

    def segment_iter(image, model, **options):
        calls["n"] += 1
        if calls["n"] > n:
            raise RuntimeError("killed")
        return (yield from fakes.fake_segment_iter(image, model, **options))

    return segment_iter


def test_interrupted_store_resumes_chunk_by_chunk(tmp_path, model_file, fake):
    data = _image((10, 32, 40))
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="minisblack")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    kwargs = {"model": model_file, "zarr_threshold": 100, "chunk_bytes": 2 * 32 * 40, "output": "instances"}
    first = predict([tmp_path / "s.tif"], out, segment_fn=_failing_after(3), **kwargs)
    assert first.exit_code == 1
    store = out / "s_labels.zarr"
    assert not is_complete(store)
    assert sorted(p.name for p in (store / CHUNKS_DIR).iterdir()) == ["0", "1", "2"]
    fakes.CALLS.clear()
    second = predict([tmp_path / "s.tif"], out, segment_fn=fake, **kwargs)
    assert second.exit_code == 0, second.text()
    assert len(fakes.CALLS) == 2  # only the 2 chunks the first run did not write
    assert is_complete(store)
    predict([tmp_path / "s.tif"], fresh, segment_fn=fake, **kwargs)
    a, b = open_labels(store)[0], open_labels(fresh / "s_labels.zarr")[0]
    np.testing.assert_array_equal(np.asarray(a[:]), np.asarray(b[:]))


def test_changed_plan_restarts_the_store(tmp_path, model_file, fake):
    data = _image((6, 32, 40))
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="minisblack")
    out = tmp_path / "out"
    kwargs = {"model": model_file, "zarr_threshold": 100, "output": "classes"}
    predict([tmp_path / "s.tif"], out, segment_fn=_failing_after(1), chunk_bytes=2 * 32 * 40, **kwargs)
    fakes.CALLS.clear()
    summary = predict([tmp_path / "s.tif"], out, segment_fn=fake, chunk_bytes=3 * 32 * 40, **kwargs)
    assert summary.exit_code == 0
    assert len(fakes.CALLS) == 2  # all of the new plan's chunks: the old plan's one is not reused
    labels, _ = open_labels(out / "s_labels.zarr")
    np.testing.assert_array_equal(np.asarray(labels[:]), (data > 100).astype(np.uint8))
