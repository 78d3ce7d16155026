"""segment / segment_iter: shapes, axes, tiling agreement, progress, cancel, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import SegmentationResult, segment, segment_iter
from napari_deepseg.models import ModelMeta, build_model
from napari_deepseg.progress import Cancelled, drain

CPU = {"device": "cpu", "precision": "fp32"}


def _unet(base=8, depth=3, in_channels=1, task="semantic", **kw):
    model = build_model("unet", in_channels=in_channels, num_classes=3, base=base, depth=depth, **kw)
    model.deepseg_meta = ModelMeta(name="t", task=task).complete(3)
    return model.eval()


def _untiled_classes(model, image):
    lo, hi = np.percentile(image, [1, 99.8])
    x = torch.from_numpy(((image.astype(np.float32) - lo) / (hi - lo)).astype(np.float32)[None, None])
    with torch.inference_mode():
        return model(x)[0].argmax(0).numpy()


def test_result_contract(tiny_unet, nuclei_image):
    image, _ = nuclei_image
    res = segment(image, tiny_unet, outputs=("classes", "instances", "probabilities"), tile=64, **CPU)
    assert isinstance(res, SegmentationResult)
    assert res.classes.shape == image.shape
    assert res.classes.dtype == np.uint8
    assert res.instances.dtype == np.uint32
    assert res.instances.shape == image.shape
    assert res.probabilities.dtype == np.float16
    assert res.probabilities.shape == (3, *image.shape)
    np.testing.assert_allclose(res.probabilities.astype(np.float32).sum(0), 1.0, atol=5e-3)
    np.testing.assert_array_equal(res.probabilities.argmax(0), res.classes)
    assert res.axes == "YX"
    assert res.meta["class_names"] == ["background", "interior", "boundary"]


@pytest.mark.slow
def test_tiled_agrees_with_untiled_700x900():
    torch.manual_seed(1)
    model = _unet(base=8, depth=3)
    image = np.random.default_rng(0).gamma(2.0, 100.0, (700, 900)).astype(np.float32)
    full = _untiled_classes(model, image)
    tiled = segment(image, model, tile=256, overlap=64, **CPU).classes
    agreement = (tiled == full).mean()
    assert agreement >= 0.999, agreement


def test_one_tile_is_identical_to_untiled():
    model = _unet(base=4, depth=2)
    image = np.random.default_rng(1).random((100, 130)).astype(np.float32)
    full = _untiled_classes(model, image)
    np.testing.assert_array_equal(segment(image, model, tile=256, **CPU).classes, full)


@pytest.mark.parametrize(
    ("axes", "shape", "out_shape"),
    [
        ("YX", (40, 50), (40, 50)),
        ("XY", (50, 40), (50, 40)),
        ("ZYX", (3, 40, 50), (3, 40, 50)),
        ("YXZ", (40, 50, 2), (40, 50, 2)),
        ("TZYX", (2, 2, 40, 50), (2, 2, 40, 50)),
        ("TCZYX", (2, 1, 2, 40, 50), (2, 2, 40, 50)),
    ],
)
def test_axes_orders(tiny_unet, axes, shape, out_shape):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    res = segment(image, tiny_unet, axes=axes, tile=32, overlap=8, **CPU)
    assert res.classes.shape == out_shape
    assert res.axes == axes.replace("C", "")
    # each plane equals segmenting that plane alone
    if axes == "XY":
        alone = segment(image.T, tiny_unet, axes="YX", tile=32, overlap=8, **CPU).classes
        np.testing.assert_array_equal(res.classes, alone.T)


def test_plane_events_and_unique_instance_ids(tiny_unet, nuclei_image):
    image, _ = nuclei_image
    stack = np.stack([image, image[::-1]])
    events = []
    res = drain(
        segment_iter(stack, tiny_unet, axes="ZYX", tile=64, outputs=("instances",), min_size=0, **CPU),
        events.append,
    )
    planes = [e for e in events if e.stage == "planes"]
    tiles = [e for e in events if e.stage == "tiles"]
    assert [p.info["index"] for p in planes] == [(0,), (1,)]
    assert tiles[-1].done == tiles[-1].total == 2 * 9
    for p in planes:
        np.testing.assert_array_equal(p.info["classes"], res.classes[p.info["index"]])
        np.testing.assert_array_equal(p.info["instances"], res.instances[p.info["index"]])
    ids0 = set(np.unique(res.instances[0])) - {0}
    ids1 = set(np.unique(res.instances[1])) - {0}
    assert not ids0 & ids1


def test_cancel_stops_within_one_batch(tiny_unet):
    image = np.random.default_rng(0).random((3, 96, 96)).astype(np.float32)
    calls = []
    hook = tiny_unet.register_forward_hook(lambda *a: calls.append(1))
    gen = segment_iter(image, tiny_unet, axes="ZYX", tile=32, overlap=0, batch_size=1, **CPU)
    first = next(gen)
    assert first.stage == "tiles"
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert len(calls) == 1
    hook.remove()
    with pytest.raises(Cancelled):
        drain(segment_iter(image, tiny_unet, axes="ZYX", tile=32, **CPU), should_stop=lambda: True)


@pytest.mark.parametrize(
    ("kwargs", "shape", "dtype", "match"),
    [
        ({}, (0, 10), np.float32, "empty"),
        ({"axes": "ZYX"}, (10, 10), np.float32, "dimensions"),
        ({"axes": "YY"}, (10, 10), np.float32, "Y and X"),
        ({"tile": 2}, (10, 10), np.float32, "tile"),
        ({"tile": 32, "overlap": 64}, (10, 10), np.float32, "overlap"),
        ({}, (10, 10), np.complex64, "numeric"),
        ({"channels": [5]}, (10, 10, 3), np.uint8, "out of range"),
        ({"axes": "CYX"}, (2, 10, 10), np.uint8, "channel"),
        ({"outputs": ("labels",)}, (10, 10), np.uint8, "outputs"),
        ({"device": "cuda:7" if torch.cuda.is_available() else "cuda"}, (10, 10), np.uint8, "cuda"),
    ],
)
def test_bad_input_is_one_line_value_error(tiny_unet, kwargs, shape, dtype, match):
    opts = {**CPU, **kwargs}
    with pytest.raises(ValueError, match=match) as info:
        segment(np.zeros(shape, dtype), tiny_unet, **opts)
    assert isinstance(info.value, DeepsegError) or "\n" not in str(info.value)
    assert "\n" not in str(info.value)


def test_object_dtype_rejected(tiny_unet):
    with pytest.raises(ValueError, match="numeric"):
        segment(np.array([["a", "b"], ["c", "d"]], dtype=object), tiny_unet, **CPU)
