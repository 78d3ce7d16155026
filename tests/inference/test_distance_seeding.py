"""Instances of models with a distance output: seeding from the distance map, the engine's maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import segment
from napari_deepseg.inference.postprocess import instances_from_probabilities
from napari_deepseg.inference.probability import softmax
from napari_deepseg.models import ModelMeta, build_model
from napari_deepseg.training.labels import boundary_targets, distance_target
from tests._shapes import touching_discs


def _maps(labels: np.ndarray, boundary_gap: bool) -> np.ndarray:
    """Ideal (4, H, W) maps of ``labels``: classes from the labels (without boundary pixels
    where two objects touch when ``boundary_gap`` is False), then the distance map."""
    classes = boundary_targets(labels)
    if not boundary_gap:
        classes = np.where(classes == 2, 1, classes)
    onehot = np.stack([classes == k for k in range(3)]).astype(np.float32)
    return np.concatenate([onehot, distance_target(labels)[None]])


def test_distance_seeds_split_touching_objects_the_classes_merge():
    labels = touching_discs()
    maps = _maps(labels, boundary_gap=False)  # the boundary class missed the contact
    merged = instances_from_probabilities(maps[:3], seed_method="maxima", seed_h=0.05, min_size=0)
    split = instances_from_probabilities(maps, seed_method="distance", seed_h=0.2, seed_sigma=1, min_size=0)
    assert merged.max() == 1
    assert split.max() == 2
    for i in (1, 2):  # each object is one of the truth's, nearly whole
        overlap = np.bincount(split[labels == i], minlength=3)[1:]
        assert overlap.max() >= 0.9 * (labels == i).sum()


def test_distance_seeding_needs_the_map():
    maps = _maps(touching_discs(), boundary_gap=True)
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


class _Ideal(nn.Module):
    """A 'network' that returns the ideal maps' logits for the image it was made for."""

    def __init__(self, maps: np.ndarray) -> None:
        super().__init__()
        logits = np.log(np.clip(maps, 1e-4, 1 - 1e-4))
        logits[3] = np.log(np.clip(maps[3], 1e-4, 1 - 1e-4) / np.clip(1 - maps[3], 1e-4, 1))
        self.register_buffer("logits", torch.from_numpy(logits.astype(np.float32)))
        self.anchor = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[None].expand(x.shape[0], -1, -1, -1)[..., : x.shape[-2], : x.shape[-1]]


def _as_distance_model(maps: np.ndarray) -> nn.Module:
    net = build_model("unet", in_channels=1, num_classes=3, base=4, depth=1, extra_outputs=1)
    ideal = _Ideal(maps)
    net.forward = ideal.forward  # the contract and metadata of a real model, ideal outputs
    net.add_module("ideal", ideal)
    net.deepseg_meta = ModelMeta(
        name="ideal", task="instance-boundary", outputs=["classes", "distance"],
        postprocess={"seed_method": "distance", "seed_h": 0.2, "seed_sigma": 1.0},
        normalization={"method": "none"},
    ).complete(3)  # fmt: skip
    return net


def test_segment_gives_the_classes_the_distance_map_and_the_split_instances():
    labels = touching_discs()
    maps = _maps(labels, boundary_gap=False)
    model = _as_distance_model(maps)
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
