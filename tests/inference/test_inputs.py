"""Channels, lazy (dask/zarr-like) inputs read plane by plane, and stack-scope normalization."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import segment
from napari_deepseg.models import ModelMeta, build_model

CPU = {"device": "cpu", "precision": "fp32", "tile": 64}


def _model(in_channels, mode="gray"):
    model = build_model("unet", in_channels=in_channels, num_classes=3, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="m", channel_mode=mode).complete(3)
    return model.eval()


class LazyArray:
    """A zarr-like array: records every index and refuses to be converted whole."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.keys = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self.data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was loaded")


def test_rgb_to_gray_for_one_channel_model():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 50, 3)).astype(np.uint8)
    model = _model(1)
    res = segment(rgb, model, axes="YXC", **CPU)
    gray = segment(rgb.mean(-1, dtype=np.float32), model, **CPU)
    np.testing.assert_array_equal(res.classes, gray.classes)


def test_gray_replicated_for_rgb_model_and_channel_pick():
    rng = np.random.default_rng(0)
    gray = rng.random((40, 50)).astype(np.float32)
    model = _model(3, "rgb")
    res = segment(gray, model, **CPU)
    same = segment(np.stack([gray] * 3), model, axes="CYX", **CPU)
    np.testing.assert_array_equal(res.classes, same.classes)
    two = np.stack([rng.random((40, 50)), gray]).astype(np.float32)
    picked = segment(two, _model(1, "select"), axes="CYX", channels=[1], **CPU)
    np.testing.assert_array_equal(picked.classes, segment(gray, _model(1, "select"), **CPU).classes)


def test_impossible_mapping_is_clear():
    with pytest.raises(DeepsegError, match="takes 2 channel"):
        segment(np.zeros((3, 20, 20), np.uint8), _model(2, "select"), axes="CYX", **CPU)


def test_lazy_inputs_read_plane_by_plane():
    data = np.random.default_rng(0).random((3, 2, 40, 50)).astype(np.float32)
    lazy = LazyArray(data)
    res = segment(lazy, _model(1), axes="ZCYX", channels=[0], **CPU)
    assert res.classes.shape == (3, 40, 50)
    assert len(lazy.keys) == 3
    assert all(isinstance(k[0], int) for k in lazy.keys)
    dask_res = segment(
        da.from_array(data, chunks=(1, 2, 40, 50)), _model(1), axes="ZCYX", channels=[0], **CPU
    )
    np.testing.assert_array_equal(dask_res.classes, res.classes)


def test_stack_scope_normalization_reads_each_plane_twice():
    data = np.random.default_rng(0).random((2, 40, 50)).astype(np.float32)
    model = _model(1)
    model.deepseg_meta.normalization = {"method": "percentile", "low": 1, "high": 99.8, "scope": "stack"}
    lazy = LazyArray(data)
    res = segment(lazy, model, axes="ZYX", **CPU)
    assert res.classes.shape == (2, 40, 50)
    assert len(lazy.keys) == 4
