"""The batch's OME-Zarr outputs open in a real napari viewer through napari-ome-zarr."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from .fakes import predict
from .test_ome_zarr import _image, _ome_zarr_image

pytest.importorskip("napari_ome_zarr", reason="napari-ome-zarr not installed: pip install -e '.[testing]'")


def test_napari_ome_zarr_opens_the_pyramid_as_labels(make_napari_viewer, qtbot, tmp_path, model_file, fake):
    data = _image((600, 700), seed=2)
    tifffile.imwrite(tmp_path / "big.tif", data)
    predict([tmp_path / "big.tif"], tmp_path / "out", model=model_file, segment_fn=fake, zarr_threshold=1000)
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(tmp_path / "out" / "big_labels.zarr"), plugin="napari-ome-zarr")
    qtbot.wait(50)
    assert [layer._type_string for layer in layers] == ["labels"]
    labels = layers[0]
    assert labels.multiscale
    assert [level.shape for level in labels.data] == [(600, 700), (300, 350), (150, 175)]
    ids = np.asarray(labels.data[0])
    assert ((ids > 0) == (data > 100)).all()
    assert not labels.visible  # napari-ome-zarr opens labels hidden; the user shows them
    labels.visible = True
    viewer.reset_view()

    def drawn() -> bool:  # the canvas shows labels in colour, not a blank view
        shot = viewer.screenshot(canvas_only=True, flash=False)
        return len(np.unique(shot[..., :3].reshape(-1, 3), axis=0)) > 10

    qtbot.waitUntil(drawn, timeout=10000)


def test_napari_ome_zarr_shows_image_with_its_labels(make_napari_viewer, qtbot, tmp_path, model_file, fake):
    data = _image((2, 64, 80), seed=3)
    src = _ome_zarr_image(tmp_path / "cells.ome.zarr", data, (3.0, 0.5, 0.5))
    predict([src], tmp_path / "out", model=model_file, segment_fn=fake, output="classes")
    viewer = make_napari_viewer()
    layers = viewer.open(str(src), plugin="napari-ome-zarr")
    qtbot.wait(50)
    kinds = sorted(layer._type_string for layer in layers)
    assert kinds == ["image", "labels"]
    image = next(layer for layer in layers if layer._type_string == "image")
    labels = next(layer for layer in layers if layer._type_string == "labels")
    assert labels.name.endswith("tiny_classes")
    np.testing.assert_allclose(labels.scale, image.scale)
    np.testing.assert_allclose(labels.scale, (3.0, 0.5, 0.5))
    np.testing.assert_array_equal(
        np.asarray(labels.data[0] if labels.multiscale else labels.data), data > 100
    )
