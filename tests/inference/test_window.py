"""``segment_iter(region=...)``: a region of a large image segmented as the whole-image run does."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import percentile_normalizer, region_normalizers, segment
from napari_deepseg.inference.inputs import banded_percentile_normalizer
from napari_deepseg.inference.scale import resize_into, resize_window
from napari_deepseg.models import ModelMeta

from .test_blocks import _plane

CPU = {"device": "cpu", "precision": "fp32"}


class _ContextNet(nn.Module):
    """The per-pixel oracle of test_blocks (normalized 0 background, 0.5 boundary, 1 interior)
    plus a random 5x5 convolution: its context reaches across tile borders, so any change of
    tile grid, normalization or resampling changes the probabilities."""

    def __init__(self, diameter: float | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 3, 5, padding=2)
        self.deepseg_arch = SimpleNamespace(name="context", in_channels=1, num_classes=3)
        self.deepseg_meta = ModelMeta(name="context", task="instance-boundary").complete(3)
        self.deepseg_meta.object_diameter = diameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centers = torch.tensor([0.0, 1.0, 0.5], dtype=x.dtype).view(1, 3, 1, 1)
        return -40.0 * (x - centers) ** 2 + self.conv(x)


def _conv_net(diameter: float | None = None) -> nn.Module:
    return _ContextNet(diameter)


class _Recording:
    """An array that records the pixels read (as a lazy zarr or TIFF view would read them)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.read = np.zeros(data.shape[-2:], bool)

    def __getitem__(self, key):
        self.read[key[-2:]] = True
        return self.data[key]


@pytest.mark.parametrize(
    ("diameter", "block"),
    [("off", 4096), ("off", 128), (8.0, 4096), (27.0, 4096)],  # own grid, blocks inside, 2x, ~0.6x
)
def test_a_region_equals_the_same_region_of_the_whole_image_run(diameter, block):
    image, _ = _plane((430, 510), seed=5)
    image = (image.astype(np.float32) * 0.7 + 11).astype(np.uint8)  # percentiles are not 0..255
    model = _conv_net(16.0)
    opts = {"outputs": ("classes", "instances", "probabilities"), "tile": 96, "overlap": 16, **CPU}
    whole = segment(image, model, object_diameter=diameter, **opts)
    rows, cols = slice(101, 333), slice(57, 401)
    part = segment(image, model, object_diameter=diameter, region=(rows, cols), block=block, **opts)
    assert part.classes.shape == part.instances.shape == (232, 344)
    assert part.probabilities.shape == (3, 232, 344)
    assert part.meta["object_diameter"] == whole.meta["object_diameter"]
    if diameter == "off":  # the same tiles, blends and normalizer: bit-identical
        np.testing.assert_array_equal(part.probabilities, whole.probabilities[:, rows, cols])
        np.testing.assert_array_equal(part.classes, whole.classes[rows, cols])
    else:  # the same filter taps summed in another order: float rounding only
        diff = np.abs(part.probabilities.astype(np.float32) - whole.probabilities[:, rows, cols])
        assert diff.max() < 0.02
        assert (part.classes == whole.classes[rows, cols]).mean() > 0.9995
    # objects away from the region's edge are the whole run's objects
    inner = (slice(20, -20), slice(20, -20))
    a, b = part.instances[inner], whole.instances[rows, cols][inner]
    assert ((a > 0) == (b > 0)).mean() > 0.999
    fg = (a > 0) & (b > 0)
    pairs = np.unique(np.stack([a[fg], b[fg]]), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1] > 10  # one to one


def test_a_region_reads_only_its_neighbourhood_and_a_stack_keeps_its_axes():
    data = np.stack([_plane((300, 900), seed=s)[0] for s in (1, 2)])  # Z, Y, X
    image = _Recording(data)
    model = _conv_net()
    rows, cols = slice(100, 200), slice(0, 150)
    norms = region_normalizers(data, model, axes="ZYX")
    part = segment(
        image, model, axes="ZYX", region=(rows, cols), plane_normalizers=norms, tile=96, overlap=16,
        outputs=("classes", "instances"), **CPU,
    )  # fmt: skip
    assert part.classes.shape == (2, 100, 150)
    assert part.axes == "ZYX"
    assert not image.read[:, 400:].any()  # the far columns of the plane were never read
    assert image.read[100:200, :150].all()
    whole = segment(data, model, axes="ZYX", tile=96, overlap=16, **CPU)
    np.testing.assert_array_equal(part.classes, whole.classes[:, rows, cols])
    ids = [set(np.unique(p[p > 0]).tolist()) for p in part.instances]
    assert ids[0]
    assert ids[1]
    assert not ids[0] & ids[1]


def test_channels_last_images_map_back_to_their_axes():
    rgb = np.repeat(_plane((200, 260), seed=6)[0][..., None], 3, axis=2)
    model = _conv_net()
    whole = segment(rgb, model, axes="YXC", tile=96, overlap=16, **CPU)
    part = segment(rgb, model, axes="YXC", region=(slice(50, 120), slice(0, 200)), tile=96, overlap=16, **CPU)
    np.testing.assert_array_equal(part.classes, whole.classes[50:120, :200])


@pytest.mark.parametrize(
    "region", [(slice(0, 10),), (slice(50, 40), slice(0, 10)), (slice(0, 10, 2), slice(0, 10)), "all"]
)
def test_a_bad_region_is_a_one_line_error(region):
    with pytest.raises(DeepsegError, match="region must be two slices"):
        segment(np.zeros((64, 64), np.uint8), _conv_net(), region=region, **CPU)


def test_normalizers_of_another_image_are_a_one_line_error():
    stack = np.stack([_plane((100, 120), seed=s)[0] for s in (1, 2)])
    norms = region_normalizers(stack[0], _conv_net())  # one plane's, for a two-plane stack
    with pytest.raises(DeepsegError, match="plane_normalizers hold 1 plane"):
        segment(stack, _conv_net(), axes="ZYX", region=(slice(0, 50), slice(0, 50)), plane_normalizers=norms)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_banded_statistics_equal_the_whole_planes(dtype):
    rng = np.random.default_rng(1)
    plane = (rng.gamma(2.0, 300.0, (2, 2500, 1900))).astype(dtype)  # float: sampled (> 4 MPix)
    whole = percentile_normalizer([plane], 1.0, 99.8)
    bands = ((r, plane[:, r : r + 300]) for r in range(0, 2500, 300))
    banded = banded_percentile_normalizer(bands, (2500, 1900), 1.0, 99.8)
    np.testing.assert_array_equal(banded.offset, whole.offset)
    np.testing.assert_array_equal(banded.scale, whole.scale)


@pytest.mark.parametrize(
    ("small", "dtype"), [((75, 64), np.uint8), ((600, 514), np.float32), ((210, 180), np.uint16)]
)
def test_a_resampled_window_equals_that_window_of_the_whole_resampling(small, dtype):
    rng = np.random.default_rng(0)
    plane = (rng.random((2, 300, 257)) * 200).astype(dtype)
    whole = resize_into(plane, np.empty((2, *small), dtype))
    rows, cols = slice(small[0] // 3, small[0] // 3 + 40), slice(7, small[1] - 3)
    part = resize_window(lambda r, c: plane[:, r, c], (300, 257), small, rows, cols, dtype, band=16)
    diff = np.abs(part.astype(np.float64) - whole[:, rows, cols])
    assert diff.max() <= (1 if np.dtype(dtype).kind in "iu" else 1e-4)  # rounding of x.5 only
    assert (diff > 0).mean() < 0.01 or np.dtype(dtype).kind == "f"
