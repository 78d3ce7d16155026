"""The one axes rule: the reader, segment(), the widgets and training read an array alike."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import segment
from napari_deepseg.inference.inputs import AxesPlan
from napari_deepseg.io import read_image
from napari_deepseg.io.axes import axes_with_channel, guess_axes, paired_axes


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((8, 9), "YX"),
        ((64, 64, 3), "YXC"),
        ((128, 128, 5), "YXC"),  # was ZYX: 128 planes 5 pixels wide
        ((512, 512, 8), "YXC"),
        ((5, 128, 128), "ZYX"),
        ((40, 40, 40), "ZYX"),
        ((16, 16, 9), "ZYX"),  # 9 entries: more than channels usually are
        ((6, 16, 16, 4), "ZYXC"),
        ((2, 5, 8, 9), "TZYX"),
        ((2, 3, 4, 64, 64), "TCZYX"),  # the OME order (was TZCYX for files, TCZYX for segment())
        ((2, 3, 64, 64, 2), "TZYXC"),
    ],
)
def test_guess_axes(shape, axes):
    assert guess_axes(shape) == axes
    assert AxesPlan.parse(shape, None).axes == axes  # segment()'s guess is the same rule


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4, 5, 6)])
def test_guess_axes_refuses_what_is_no_image(shape):
    with pytest.raises(DeepsegError, match="dimensions"):
        guess_axes(shape)


@pytest.mark.parametrize(
    ("ndim", "channel_axis", "colour_last", "axes"),
    [
        (2, None, False, "YX"),
        (3, None, False, "ZYX"),
        (4, None, False, "TZYX"),
        (3, None, True, "YXC"),
        (4, None, True, "ZYXC"),
        (3, 0, False, "CYX"),
        (4, 1, False, "ZCYX"),
    ],
)
def test_axes_with_a_known_channel_axis(ndim, channel_axis, colour_last, axes):
    assert axes_with_channel(ndim, channel_axis, colour_last=colour_last) == axes


@pytest.mark.parametrize(("ndim", "channel_axis"), [(1, None), (5, None), (3, 1), (3, 2)])
def test_axes_with_channel_refuses(ndim, channel_axis):
    with pytest.raises(DeepsegError):
        axes_with_channel(ndim, channel_axis)


def test_paired_axes_of_training_layers():
    assert paired_axes((3, 32, 32), (32, 32)) == "CYX"
    assert paired_axes((2, 4, 32, 32), (4, 32, 32)) == "CZYX"
    assert paired_axes((32, 32, 3), (32, 32), rgb=True) is None
    assert paired_axes((32, 32), (32, 32)) is None


@pytest.mark.parametrize("shape", [(2, 1, 3, 48, 48), (48, 48, 5)])
def test_a_file_and_an_array_are_read_with_the_same_axes(shape, tmp_path):
    """``read_image`` of a .npy and ``segment()`` of the same array agree on its axes."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, shape).astype(np.uint8)
    np.save(tmp_path / "a.npy", array)
    _, file_axes = read_image(tmp_path / "a.npy")
    assert file_axes == AxesPlan.parse(shape, None).axes


def test_a_channels_last_array_on_a_gray_model_is_refused_not_read_as_planes(tiny_unet):
    """A (Y, X, 5) array is 5 channels: a 1-channel model asks which to use instead of
    segmenting 128 planes 5 pixels wide."""
    image = np.zeros((128, 128, 5), np.float32)
    with pytest.raises(DeepsegError, match="channel"):
        segment(image, tiny_unet, device="cpu")
    result = segment(image, tiny_unet, device="cpu", channels=[2])
    assert result.classes.shape == (128, 128)
