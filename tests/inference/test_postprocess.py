"""Instances from boundary-model probabilities, stack-unique ids and 3D stitching."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.inference import instances_from_probabilities, stitch_to_previous


def _probs_from_labels(labels: np.ndarray) -> np.ndarray:
    """Ideal (3, H, W) probabilities: interior inside objects, boundary on their rims."""
    from skimage.segmentation import find_boundaries

    boundary = find_boundaries(labels, mode="inner") & (labels > 0)
    interior = (labels > 0) & ~boundary
    prob = np.zeros((3, *labels.shape), np.float32)
    prob[1][interior] = 0.9
    prob[2][boundary] = 0.9
    prob[0] = 1 - prob[1] - prob[2]
    return prob


def test_touching_objects_are_split(nuclei_image):
    _, truth = nuclei_image
    labels = instances_from_probabilities(_probs_from_labels(truth), min_size=0)
    assert labels.dtype == np.uint32
    assert labels.shape == truth.shape
    # Every true object maps to one predicted object and vice versa.
    assert len(np.unique(labels)) - 1 == len(np.unique(truth)) - 1
    assert set(np.unique(labels)) == set(range(labels.max() + 1))


def test_min_size_and_empty():
    prob = np.zeros((3, 32, 32), np.float32)
    prob[0] = 1
    assert instances_from_probabilities(prob).max() == 0
    prob[:, 2:4, 2:4] = [[[0]], [[1]], [[0]]]  # a 4-pixel object
    prob[:, 10:20, 10:20] = [[[0]], [[1]], [[0]]]
    out = instances_from_probabilities(prob, min_size=16)
    assert out.max() == 1
    assert out[2, 2] == 0
    assert out[15, 15] == 1


def test_boundary_only_component_kept():
    prob = np.zeros((3, 32, 32), np.float32)
    prob[0] = 1
    prob[:, 5:15, 5:15] = [[[0.2]], [[0.3]], [[0.5]]]  # foreground without confident interior
    out = instances_from_probabilities(prob, min_size=4)
    assert out.max() == 1
    assert (out > 0).sum() == 100


def test_bad_shape():
    with pytest.raises(ValueError, match="probabilities"):
        instances_from_probabilities(np.zeros((32, 32)))


def _two_touching_discs() -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of two overlapping discs whose interiors merge through a dimmer neck."""
    yy, xx = np.mgrid[:40, :60]
    d1 = np.hypot(yy - 20, xx - 20)
    d2 = np.hypot(yy - 20, xx - 38)
    truth = np.zeros((40, 60), np.uint32)
    truth[d1 < 11] = 1
    truth[(d2 < 11) & (d2 < d1)] = 2
    # Interior confidence falls towards each rim; at the neck both discs stay above 0.5.
    interior = np.clip(np.maximum(1 - d1 / 14, 1 - d2 / 14), 0, 1) * 1.6
    interior = np.clip(interior, 0, 0.98) * (truth > 0)
    boundary = (1 - interior) * 0.95 * (truth > 0)  # the rest of each disc is confident boundary
    prob = np.stack([1 - interior - boundary, interior, boundary]).astype(np.float32)
    return prob, truth


def test_maxima_seeding_splits_touching_interiors():
    prob, truth = _two_touching_discs()
    merged = instances_from_probabilities(prob, min_size=0, seed_threshold=0.5)
    assert merged.max() == 1  # one connected confident interior: the threshold merges them
    split = instances_from_probabilities(prob, min_size=0, seed_method="maxima", seed_sigma=1.0, seed_h=0.01)
    assert split.max() == 2
    for obj in (1, 2):  # each true disc is mostly one predicted object
        _, counts = np.unique(split[truth == obj], return_counts=True)
        assert counts.max() / counts.sum() > 0.95
    assert split[20, 20] != split[20, 38]


def test_maxima_seeding_ignores_shallow_bumps():
    """A second peak only ``0.06`` above its saddle seeds an object for ``seed_h=0.01`` only."""
    x = np.arange(60, dtype=np.float32)
    profile = np.maximum.reduce(
        [
            np.full_like(x, 0.84),
            0.95 * np.exp(-((x - 18) ** 2) / 72),
            0.90 * np.exp(-((x - 42) ** 2) / 72),
        ]
    )
    interior = np.zeros((30, 60), np.float32)
    interior[8:22, 4:56] = profile[4:56]
    prob = np.stack([1 - interior, interior, np.zeros_like(interior)])
    kwargs = {"min_size": 0, "seed_method": "maxima", "seed_sigma": 0}
    assert instances_from_probabilities(prob, seed_h=0.01, **kwargs).max() == 2
    assert instances_from_probabilities(prob, seed_h=0.2, **kwargs).max() == 1


def test_unknown_seed_method():
    prob, _ = _two_touching_discs()
    with pytest.raises(ValueError, match="seed_method"):
        instances_from_probabilities(prob, seed_method="peaks")


def test_stitch_keeps_ids_of_overlapping_objects():
    prev = np.zeros((20, 20), np.uint32)
    prev[2:8, 2:8] = 7
    prev[12:18, 12:18] = 9
    cur = np.zeros((20, 20), np.uint32)
    cur[3:8, 2:8] = 1  # overlaps 7 strongly
    cur[0:2, 15:20] = 2  # new object
    out, next_id = stitch_to_previous(cur, prev, next_id=10, iou_threshold=0.5)
    assert out[4, 4] == 7
    assert out[0, 16] == 10
    assert next_id == 11


def test_model_file_postprocess_settings_reach_the_watershed(tiny_unet, tmp_path, monkeypatch):
    """``ModelMeta.postprocess`` survives the model file and reaches the watershed; ``min_size`` wins."""
    from napari_deepseg.inference import pipeline, segment
    from napari_deepseg.models import load_model, save_model

    seen = []

    def spy(prob, **kwargs):
        seen.append(kwargs)
        return instances_from_probabilities(prob, **kwargs)

    monkeypatch.setattr(pipeline, "instances_from_probabilities", spy)
    settings = {
        "seed_threshold": 0.7,
        "foreground_threshold": 0.4,
        "min_size": 5,
        "seed_method": "maxima",
        "seed_sigma": 1.5,
        "seed_h": 0.02,
    }
    tiny_unet.deepseg_meta.postprocess = dict(settings)
    model = load_model(save_model(tmp_path / "m.pt", tiny_unet))
    assert model.deepseg_meta.postprocess == settings
    image = np.random.default_rng(1).random((2, 48, 48)).astype(np.float32)
    segment(image, model, axes="ZYX", device="cpu", outputs=("instances",))
    assert seen == [settings, settings]
    segment(image[0], model, device="cpu", outputs=("instances",), min_size=0)
    assert seen[-1] == {**settings, "min_size": 0}
    tiny_unet.deepseg_meta.postprocess = {}
    segment(image[0], tiny_unet, device="cpu", outputs=("instances",))
    assert seen[-1] == {"min_size": 16}
    with pytest.raises(ValueError, match="min_size"):
        segment(image[0], model, device="cpu", outputs=("instances",), min_size=-1)
    tiny_unet.deepseg_meta.postprocess = {"seed_method": "peaks"}
    with pytest.raises(ValueError, match="seed_method 'peaks' is unknown"):
        segment(image[0], tiny_unet, device="cpu", outputs=("instances",))


def test_segment_postprocess_overrides_the_model_file(tiny_unet, monkeypatch):
    from napari_deepseg.errors import DeepsegError
    from napari_deepseg.inference import pipeline, segment

    seen = []

    def spy(prob, **kwargs):
        seen.append(kwargs)
        return instances_from_probabilities(prob, **kwargs)

    monkeypatch.setattr(pipeline, "instances_from_probabilities", spy)
    tiny_unet.deepseg_meta.postprocess = {"foreground_threshold": 0.4, "min_size": 5, "seed_threshold": 0.6}
    image = np.zeros((64, 64), np.uint8)
    segment(
        image, tiny_unet, outputs=("instances",), postprocess={"foreground_threshold": 0.7, "seed_h": 0.05}
    )
    assert seen == [{"foreground_threshold": 0.7, "min_size": 5, "seed_threshold": 0.6, "seed_h": 0.05}]
    with pytest.raises(DeepsegError, match="unknown post-processing setting"):
        segment(image, tiny_unet, postprocess={"sharpness": 2})
    with pytest.raises(DeepsegError, match="foreground_threshold must be between 0 and 1"):
        segment(image, tiny_unet, postprocess={"foreground_threshold": 1.5})
