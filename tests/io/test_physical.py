"""Physical pixel sizes read from ImageJ and OME-TIFF inputs and carried into OME-Zarr outputs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_deepseg.io.physical import ngff_unit, physical_sizes

pytest.importorskip("ome_zarr", reason="ome-zarr not installed: pip install -e '.[testing]'")


def test_imagej_tiff_sizes(tmp_path):
    path = tmp_path / "ij.tif"
    data = np.zeros((3, 16, 20), np.uint16)
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.5),
        metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"},
    )
    scale, units = physical_sizes(path)
    assert scale == pytest.approx({"X": 0.25, "Y": 0.5, "Z": 2.0})
    assert units == {"X": "micrometer", "Y": "micrometer", "Z": "micrometer"}


def test_ome_tiff_sizes(tmp_path):
    path = tmp_path / "cells.ome.tif"
    metadata = {"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.3}
    metadata["PhysicalSizeZUnit"] = "nm"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8), ome=True, metadata=metadata)
    scale, units = physical_sizes(path)
    assert scale == pytest.approx({"X": 0.1, "Y": 0.1, "Z": 0.3})
    assert units == {"X": "micrometer", "Y": "micrometer", "Z": "nanometer"}


def test_unknown_sizes_are_left_out(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    assert physical_sizes(tmp_path / "plain.tif") == ({}, {})
    np.save(tmp_path / "a.npy", np.zeros((8, 8)))
    assert physical_sizes(tmp_path / "a.npy") == ({}, {})
    assert ngff_unit("micron") == "micrometer"
    assert ngff_unit("\\u00B5m") == "micrometer"  # ImageJ's escaped micro sign
    assert ngff_unit("furlong") is None


def test_batch_zarr_output_keeps_tiff_sizes(tmp_path):
    from napari_deepseg.io import read_ngff
    from napari_deepseg.models import ModelMeta, build_model, save_model
    from tests.batch import fakes
    from tests.batch.fakes import predict  # the batch engine replaced by a fake while it runs

    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="tiny", task="instance-boundary").complete(3)
    model_file = save_model(tmp_path / "tiny.pt", model)
    data = (np.random.default_rng(0).random((2, 24, 32)) * 140).astype(np.uint8)
    tifffile.imwrite(
        tmp_path / "s.tif",
        data,
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "micron"},
    )
    summary = predict(
        [tmp_path / "s.tif"],
        tmp_path / "out",
        model=model_file,
        segment_fn=fakes.fake_segment_iter,
        zarr_threshold=100,
    )
    assert summary.exit_code == 0, summary.text()
    info = read_ngff(tmp_path / "out" / "s_labels.zarr")
    assert info.scale == pytest.approx({"Z": 1.5, "Y": 0.25, "X": 0.25})
    assert info.units == {"Z": "micrometer", "Y": "micrometer", "X": "micrometer"}
