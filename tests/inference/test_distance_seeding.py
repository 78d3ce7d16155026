"""Instances of models with a distance output: seeding from the distance map, the engine's maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import segment
from napari_deepseg.inference.postprocess import instances_from_probabilities
from napari_deepseg.inference.probability import softmax
from napari_deepseg.models import ModelMeta, build_model
from tests._shapes import ideal_distance_model, ideal_maps, touching_discs


def test_distance_seeds_split_touching_objects_the_classes_merge():
    labels = touching_discs()
    maps = ideal_maps(labels, boundary_gap=False)  # the boundary class missed the contact
    merged = instances_from_probabilities(maps[:3], seed_method="maxima", seed_h=0.05, min_size=0)
    split = instances_from_probabilities(maps, seed_method="distance", seed_h=0.2, seed_sigma=1, min_size=0)
    assert merged.max() == 1
    assert split.max() == 2
    for i in (1, 2):  # each object is one of the truth's, nearly whole
        overlap = np.bincount(split[labels == i], minlength=3)[1:]
        assert overlap.max() >= 0.9 * (labels == i).sum()


def test_distance_seeding_needs_the_map():
    maps = ideal_maps(touching_discs(), boundary_gap=True)
    with pytest.raises(ValueError, match="distance map"):
        instances_from_probabilities(maps[:3], seed_method="distance")


def test_blended_maps_are_a_softmax_of_the_classes_and_a_sigmoid_of_the_distance():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 6)).astype(np.float32)
    weights = rng.uniform(0.5, 2, size=(5, 6)).astype(np.float32)
    out = softmax(logits * weights, weights, classes=3)
    expected = torch.from_numpy(logits)
    assert np.allclose(out[:3], expected[:3].softmax(0).numpy(), atol=1e-6)
    assert np.allclose(out[3], expected[3].sigmoid().numpy(), atol=1e-6)


def test_segment_gives_the_classes_the_distance_map_and_the_split_instances():
    labels = touching_discs()
    maps = ideal_maps(labels, boundary_gap=False)
    model = ideal_distance_model(maps)
    image = (labels > 0).astype(np.float32)
    result = segment(image, model, outputs=("classes", "instances", "probabilities"), tile=64, min_size=0)
    assert result.probabilities.shape == (4, *labels.shape)  # 3 classes, then the distance map
    assert np.allclose(result.probabilities[3], maps[3], atol=2e-3)
    assert np.array_equal(result.classes, maps[:3].argmax(0))
    assert result.instances.max() == 2


def test_distance_seeding_is_refused_for_a_model_without_the_map():
    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=1)
    model.deepseg_meta = ModelMeta(name="plain", task="instance-boundary").complete(3)
    with pytest.raises(DeepsegError, match="needs a model with a distance output"):
        segment(np.zeros((32, 32), np.float32), model, postprocess={"seed_method": "distance"})
