"""Object size: diameters, resampling round trips, the estimate and rescaled segment() runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepseg.errors import DeepsegError, ModelFileError
from napari_deepseg.inference import segment, segment_iter
from napari_deepseg.inference.inputs import hematoxylin_or_gray
from napari_deepseg.inference.rescaled import estimate_diameter, first_guess
from napari_deepseg.inference.scale import (
    median_diameter,
    resize_labels,
    resize_plane,
    scale_factor,
    scaled_shape,
)
from napari_deepseg.models import build_model, load_model, save_model
from napari_deepseg.models.modelfile import SCHEMA_VERSION, map_names
from napari_deepseg.samples import synthetic_nuclei


def _disks(radius: float, n: int = 12, size: int = 256) -> np.ndarray:
    labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[:size, :size]
    step = size // 4
    k = 0
    for cy in range(step // 2, size, step):
        for cx in range(step // 2, size, step):
            if k < n:
                k += 1
                labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return labels


def test_median_diameter_of_disks():
    for r in (5, 10, 20):
        assert median_diameter(_disks(r)) == pytest.approx(2 * r, rel=0.05)
    assert median_diameter(_disks(10, n=2)) is None  # too few objects to say


def test_border_objects_can_be_left_out():
    labels = _disks(10)
    labels[:3, :3] = 99  # a sliver cut by the border
    assert median_diameter(labels, exclude_border=True) == pytest.approx(20, rel=0.05)


@pytest.mark.parametrize("scale", [2.0, 3.0, 0.5])
def test_rescaling_round_trip_keeps_shape_and_ids(scale):
    labels = _disks(12)
    small = resize_labels(labels, scaled_shape(labels.shape, scale))
    back = resize_labels(small, labels.shape)
    assert back.shape == labels.shape
    assert back.dtype == labels.dtype
    assert set(np.unique(back)) == set(np.unique(labels))
    if scale >= 1:  # upsampling then downsampling by nearest is exact
        np.testing.assert_array_equal(back, labels)
    else:
        assert (back == labels).mean() > 0.98


def test_scale_factor_policy():
    assert scale_factor(16, 32) == pytest.approx(0.5)
    assert scale_factor(16, 16.5) == 1.0  # inside the dead band
    assert scale_factor(16, 1000) == 0.25  # clamped


@pytest.mark.parametrize("shape", [(146, 132), (75, 70), (232, 163), (49, 39)])
def test_banded_resize_equals_the_whole_plane_resize(shape):
    """resize_into (bands of 37 rows, up and down, antialiased when shrinking) gives
    resize_plane's values; integer outputs rounded, off by at most one on .5 ties."""
    from napari_deepseg.inference.scale import resize_into

    x = np.random.default_rng(0).random((2, 100 if shape[0] < 140 else 301, 90)).astype(np.float32) * 255
    ref = resize_plane(x, shape)
    out = resize_into(x, np.empty((2, *shape), np.float32), band=37)
    np.testing.assert_allclose(out, ref, atol=0.01)
    as_u8 = resize_into(x.astype(np.uint8), np.empty((2, *shape), np.uint8), band=37)
    ref_u8 = np.clip(np.rint(resize_plane(x.astype(np.uint8), shape)), 0, 255)
    assert np.abs(as_u8.astype(int) - ref_u8).max() <= 1
    assert (as_u8 == ref_u8).mean() > 0.99


def test_resize_plane_keeps_channels_and_range():
    plane = np.random.default_rng(0).random((3, 40, 60)).astype(np.float32)
    out = resize_plane(plane, (80, 120))
    assert out.shape == (3, 80, 120)
    assert out.min() >= 0
    assert out.max() <= 1


@pytest.mark.parametrize("zoom", [1.0, 2.0, 3.0])
def test_estimate_finds_the_size_of_synthetic_nuclei(zoom):
    image, labels = synthetic_nuclei((384, 384), radius=(7, 9), seed=3)[:2]
    truth = median_diameter(labels)
    if zoom != 1:
        shape = scaled_shape(image.shape, zoom)
        image = resize_plane(image[None].astype(np.float32), shape)[0]
        truth = median_diameter(resize_labels(labels, shape))
    model = load_model("nuclei")
    estimate = estimate_diameter(image, model, 16.0, segment)
    assert estimate == pytest.approx(truth, rel=0.15)


def test_first_guess_interpolates_the_coarsest_crossing():
    scale, estimate = first_guess({0.25: 8.0, 0.5: 12.0, 1.0: 24.0}, 16.0)
    assert scale == pytest.approx(0.5 * 2 ** (np.log(16 / 12) / np.log(2)))
    assert estimate == pytest.approx(16.0 / scale)
    assert estimate == pytest.approx(24.0, rel=0.01)  # the sizes grow linearly with scale here


def test_first_guess_does_not_trust_fragments_of_enlarged_objects():
    # objects of 40 px: at scale 1 the model cuts them into ~16 px pieces
    scale, estimate = first_guess({0.25: 10.0, 0.5: 20.0, 1.0: 16.5}, 16.0)
    assert 0.25 < scale < 0.5
    assert 32 < estimate < 64


def test_first_guess_ignores_a_large_blob_at_a_coarse_scale_only():
    # tiny nuclei shrunk 4x merge into blobs; finer scales show them small
    assert first_guess({0.25: 20.0, 0.5: 7.0, 1.0: 12.0}, 16.0) == (1.0, 12.0)
    assert first_guess({0.25: 20.0, 0.5: 24.0, 1.0: 17.0}, 16.0) == (0.25, 80.0)  # large objects
    assert first_guess({0.25: None, 0.5: None, 1.0: None}, 16.0) is None


def test_estimate_without_objects_is_none():
    model = load_model("nuclei")
    assert estimate_diameter(np.zeros((128, 128), np.uint8), model, 16.0, segment) is None


@pytest.fixture
def sized_model():
    model = load_model("nuclei")
    model.deepseg_meta.object_diameter = 16.0
    return model


def test_segment_rescales_enlarged_images_and_maps_back(sized_model):
    image, _labels = synthetic_nuclei((256, 256), radius=(7, 9), seed=5)[:2]
    big = resize_plane(image[None].astype(np.float32), (512, 512))[0]
    native = segment(image, sized_model, outputs=("instances",), object_diameter="off")
    result = segment(big, sized_model, outputs=("classes", "instances", "probabilities"))
    sizing = result.meta["object_diameter"]
    assert sizing["source"] == "estimated"
    assert sizing["scale"] == pytest.approx(0.5, rel=0.2)
    assert result.classes.shape == big.shape
    assert result.instances.shape == big.shape
    assert result.probabilities.shape == (len(map_names(sized_model.deepseg_meta)), *big.shape)
    n_native, n_big = len(np.unique(native.instances)) - 1, len(np.unique(result.instances)) - 1
    assert abs(n_big - n_native) <= max(2, 0.1 * n_native)


def test_given_diameter_and_off(sized_model):
    image = synthetic_nuclei((128, 128), seed=1)[0]
    given = segment(image, sized_model, object_diameter=32.0)
    assert given.meta["object_diameter"]["source"] == "given"
    assert given.meta["object_diameter"]["scale"] == pytest.approx(0.5)
    assert given.classes.shape == image.shape
    assert segment(image, sized_model, object_diameter="off").meta["object_diameter"] is None
    with pytest.raises(DeepsegError, match="object_diameter"):
        segment(image, sized_model, object_diameter="big")


def test_models_without_a_diameter_run_at_the_image_scale():
    image = synthetic_nuclei((128, 128), seed=1)[0]
    model = load_model("nuclei")
    model.deepseg_meta.object_diameter = None
    result = segment(image, model, object_diameter=40.0, outputs=("instances",))
    assert result.meta["object_diameter"] is None
    assert result.instances.shape == image.shape


def test_rescaled_stack_reports_planes_on_the_original_grid(sized_model):
    image = synthetic_nuclei((128, 128), seed=2)[0]
    stack = np.stack([image, image])
    events = []
    gen = segment_iter(stack, sized_model, axes="ZYX", outputs=("instances",), object_diameter=32.0)
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    planes = [e for e in events if e.stage == "planes"]
    assert len(planes) == 2
    assert all(e.info["instances"].shape == image.shape for e in planes)
    np.testing.assert_array_equal(planes[1].info["instances"], result.instances[1])
    assert result.instances.shape == stack.shape


def test_hematoxylin_for_colour_and_mean_for_colourless():
    rng = np.random.default_rng(0)
    white = np.full((3, 32, 32), 240.0, np.float32)
    he = white.copy()
    he[:, 8:16, 8:16] = np.array([80, 60, 160], np.float32)[:, None, None]  # purple nucleus
    he[:, 20:28, 20:28] = np.array([230, 150, 190], np.float32)[:, None, None]  # pink eosin
    h = hematoxylin_or_gray(he + rng.random(he.shape).astype(np.float32))
    nucleus, eosin, background = h[8:16, 8:16].mean(), h[20:28, 20:28].mean(), h[0:4, 0:4].mean()
    assert nucleus > 0.3
    assert nucleus > eosin + 0.3
    assert nucleus > background + 0.3
    gray = np.repeat(rng.random((1, 32, 32)).astype(np.float32), 3, axis=0)
    np.testing.assert_allclose(hematoxylin_or_gray(gray), gray[0], rtol=1e-6)


def test_model_file_schema_follows_the_fields_used(tmp_path):
    model = build_model("unet", in_channels=1, num_classes=3, base=8, depth=2)
    old = save_model(tmp_path / "old.pt", model)
    assert torch.load(old, weights_only=True)["schema_version"] == 1
    assert load_model(old).deepseg_meta.object_diameter is None
    model.deepseg_meta.object_diameter, model.deepseg_meta.channel_mode = 16.0, "gray-hed"
    new = save_model(tmp_path / "new.pt", model)
    assert torch.load(new, weights_only=True)["schema_version"] == 2  # schema 3 only with a distance output
    assert SCHEMA_VERSION == 3
    loaded = load_model(new).deepseg_meta
    assert (loaded.object_diameter, loaded.channel_mode) == (16.0, "gray-hed")


def test_unsupported_new_fields_are_one_line_errors(tmp_path):
    import json

    model = build_model("unet", in_channels=1, num_classes=3, base=8, depth=2)
    path = save_model(tmp_path / "m.pt", model)
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["channel_mode"] = "spectral-unmix"
    payload["meta"] = json.dumps(meta)
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match=r"channel mode 'spectral-unmix' is unknown.*upgrade") as info:
        load_model(path)
    assert "\n" not in str(info.value)
    meta["channel_mode"], meta["object_diameter"] = "gray", -3
    payload["meta"] = json.dumps(meta)
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="object_diameter"):
        load_model(path)


def _count_runs(monkeypatch) -> list[tuple[int, ...]]:
    """The shapes of the planes every Job runs (the estimate's passes and the run itself)."""
    from napari_deepseg.inference.job import Job

    seen: list[tuple[int, ...]] = []
    run = Job.run

    def counted(self):
        seen.append(tuple(self.image.shape))
        return (yield from run(self))

    monkeypatch.setattr(Job, "run", counted)
    return seen


def test_a_small_image_at_its_own_scale_reuses_the_estimates_run(sized_model, monkeypatch):
    """Issue 36: the estimate's pass at scale 1 segments a small plane whole with the run's
    options; a run decided at scale 1 returns that run instead of segmenting again, and its
    outputs equal a run at the image's own scale."""
    image = synthetic_nuclei((300, 260), radius=(7, 9), seed=4)[0]
    off = segment(
        image, sized_model, outputs=("classes", "instances", "probabilities"), object_diameter="off"
    )
    seen = _count_runs(monkeypatch)
    result = segment(image, sized_model, outputs=("classes", "instances", "probabilities"))
    assert result.meta["object_diameter"]["scale"] == 1.0
    assert [s for s in seen if s[-2:] == (300, 260)] == [(300, 260)]  # the whole plane ran once, reused
    np.testing.assert_array_equal(result.classes, off.classes)
    np.testing.assert_array_equal(result.instances, off.instances)
    np.testing.assert_array_equal(result.probabilities, off.probabilities)
    only_classes = segment(image, sized_model)  # instances made for the estimate, not returned
    assert only_classes.instances is None
    assert only_classes.probabilities is None
    np.testing.assert_array_equal(only_classes.classes, off.classes)


def test_rescaled_images_and_stacks_are_run_after_the_estimate(sized_model, monkeypatch):
    """Nothing is reused where the run is not the estimate's pass at scale 1: an enlarged image
    is segmented resampled after the estimate, a stack plane by plane after crops of one plane."""
    image, _labels = synthetic_nuclei((256, 256), radius=(7, 9), seed=5)[:2]
    big = resize_plane(image[None].astype(np.float32), (512, 512))[0]  # objects 2x: run at ~0.5
    seen = _count_runs(monkeypatch)
    result = segment(big, sized_model, outputs=("instances",))
    assert result.meta["object_diameter"]["scale"] < 0.9
    assert seen[-1][-2:] == scaled_shape((512, 512), result.meta["object_diameter"]["scale"])
    assert len(seen) >= 3  # two first-pass crops at least, then the run
    seen.clear()
    stack = np.stack([image, image])
    segment(stack, sized_model, axes="ZYX", outputs=("instances",))
    assert seen[-1] == (2, 256, 256)
    assert all(len(s) == 3 and s[0] == 1 for s in seen[:-1])  # the estimate's (C, h, w) crops
