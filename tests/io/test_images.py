"""Reading every supported format, lazy reads of large TIFFs, ImageJ labels and OME-Zarr output."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_deepseg.errors import DeepsegError
from napari_deepseg.io import images
from napari_deepseg.io.images import image_stem, read_image, write_labels_tiff
from napari_deepseg.io.zarr import OmeZarrLabelsWriter, is_complete, open_labels


@pytest.mark.parametrize(
    ("name", "stem"), [("a.tif", "a"), ("b.ome.tif", "b"), ("c.ome.zarr", "c"), ("d.x.png", "d.x")]
)
def test_image_stem(name, stem):
    assert image_stem(name) == stem


def test_tiff_stack_and_imagej_axes(tmp_path):
    data = np.arange(3 * 16 * 20, dtype=np.uint16).reshape(3, 16, 20)
    tifffile.imwrite(tmp_path / "plain.tif", data, photometric="minisblack")
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, metadata={"axes": "TYX"})
    arr, axes = read_image(tmp_path / "plain.tif")
    assert axes == "ZYX"
    np.testing.assert_array_equal(arr, data)
    _, axes = read_image(tmp_path / "ij.tif")
    assert axes == "TYX"


def test_rgb_tiff_png_jpeg_npy(tmp_path):
    import imageio.v3 as iio

    rgb = (np.random.default_rng(0).random((16, 20, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    iio.imwrite(tmp_path / "a.png", rgb)
    iio.imwrite(tmp_path / "a.jpg", rgb)
    np.save(tmp_path / "a.npy", rgb[..., 0])
    for name, axes in [("rgb.tif", "YXC"), ("a.png", "YXC"), ("a.jpg", "YXC"), ("a.npy", "YX")]:
        arr, got = read_image(tmp_path / name)
        assert got == axes, name
        assert arr.shape[:2] == (16, 20)
    arr, _ = read_image(tmp_path / "a.npy")
    assert isinstance(arr, np.memmap)


def test_large_tiff_is_read_lazily(tmp_path, monkeypatch):
    data = np.random.default_rng(0).integers(0, 999, (6, 32, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "big.tif", data)
    monkeypatch.setattr(images, "LAZY_TIFF_BYTES", 1000)
    arr, axes = read_image(tmp_path / "big.tif")
    assert isinstance(arr, zarr.Array)
    assert axes == "ZYX"
    np.testing.assert_array_equal(arr[4], data[4])


def test_ome_zarr_input_axes(tmp_path):
    data = np.ones((2, 16, 20), np.uint8)
    w = OmeZarrLabelsWriter(tmp_path / "img.ome.zarr", data.shape, np.uint8, "ZYX")
    w.write((slice(None),) * 3, data)
    arr, axes = read_image(tmp_path / "img.ome.zarr")
    assert axes == "ZYX"
    assert arr.shape == (2, 16, 20)
    z = zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=(16, 20), dtype="u2")
    z[:] = 7
    arr, axes = read_image(tmp_path / "plain.zarr")
    assert axes == "YX"
    assert int(arr[3, 3]) == 7


def test_corrupt_and_missing_files_raise_one_line(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(DeepsegError, match=r"cannot read .*bad\.tif"):
        read_image(bad)
    with pytest.raises(DeepsegError, match="not found"):
        read_image(tmp_path / "none.tif")
    (tmp_path / "x.bmpx").write_bytes(b"1")
    with pytest.raises(DeepsegError, match="unsupported"):
        read_image(tmp_path / "x.bmpx")


def test_write_labels_tiff_imagej_and_dtypes(tmp_path):
    labels = np.zeros((2, 3, 16, 20), np.uint32)  # C, Z, Y, X -> stored as ZCYX
    labels[1, 2, 5, 6] = 70000
    out = write_labels_tiff(tmp_path / "l.tif", labels, "CZYX")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "ZCYX"
        back = tif.asarray()
    assert back.dtype == np.float32  # > uint16 max: exact float32
    assert back[2, 1, 5, 6] == 70000
    small = write_labels_tiff(tmp_path / "s.tif", np.full((4, 5), 3, np.uint32), "YX")
    assert tifffile.imread(small).dtype == np.uint16
    assert not list(tmp_path.glob(".*partial"))


def test_write_labels_tiff_bad_axes(tmp_path):
    with pytest.raises(DeepsegError, match="axes"):
        write_labels_tiff(tmp_path / "l.tif", np.zeros((4, 5), np.uint8), "ZYX")


def test_ome_zarr_writer_incremental_marker_and_reopen(tmp_path):
    path = tmp_path / "out.zarr"
    w = OmeZarrLabelsWriter(path, (3, 2, 16, 20), np.float16, "CZYX", attrs={"model": "m"})
    assert w.file_axes == "CZYX"
    w.write((slice(None), 0, slice(None), slice(None)), np.ones((3, 16, 20)))
    assert not is_complete(path)
    w2 = OmeZarrLabelsWriter.reopen(path)
    w2.write((slice(None), 1, slice(None), slice(None)), np.full((3, 16, 20), 2.0))
    w2.finalize({"seconds": 1.0})
    assert is_complete(path)
    arr, axes = open_labels(path)
    assert axes == "CZYX"
    assert float(arr[0, 1, 0, 0]) == 2.0
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert "image-label" in attrs
    with pytest.raises(DeepsegError, match="finished"):
        OmeZarrLabelsWriter(path, (2, 16, 20), np.uint8, "ZYX")


def test_ome_zarr_writer_reorders_to_ngff(tmp_path):
    w = OmeZarrLabelsWriter(tmp_path / "o.zarr", (2, 3, 8, 9), np.uint8, "ZCYX")
    assert w.file_axes == "CZYX"
    block = np.arange(3 * 8 * 9, dtype=np.uint8).reshape(3, 8, 9)
    w.write((1, slice(None), slice(None), slice(None)), block)
    arr, _ = open_labels(tmp_path / "o.zarr")
    np.testing.assert_array_equal(arr[:, 1], block)


def test_unfinished_store_is_replaced(tmp_path):
    path = tmp_path / "o.zarr"
    OmeZarrLabelsWriter(path, (8, 9), np.uint8, "YX").write((slice(None), slice(None)), np.ones((8, 9)))
    w = OmeZarrLabelsWriter(path, (8, 9), np.uint8, "YX")  # unfinished: removed and recreated
    arr, _ = open_labels(w.path)
    assert int(np.asarray(arr[:]).max()) == 0
