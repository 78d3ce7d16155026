"""Small label images, their ideal maps and a model that gives them, shared by tests."""

from __future__ import annotations

import numpy as np
import torch
from skimage.draw import disk
from torch import nn

from napari_deepseg.models import ModelMeta, build_model
from napari_deepseg.training.labels import boundary_targets, distance_target


def touching_discs() -> np.ndarray:
    """(40, 60) int32 labels: two discs of radius 10 whose outlines touch along a short chord."""
    labels = np.zeros((40, 60), np.int32)
    for i, cx in enumerate((18, 37), start=1):
        rr, cc = disk((20, cx), 10, shape=labels.shape)
        labels[rr, cc] = np.where(labels[rr, cc] == 0, i, labels[rr, cc])
    return labels


def ideal_maps(labels: np.ndarray, boundary_gap: bool) -> np.ndarray:
    """Ideal (4, H, W) maps of ``labels``: classes from the labels (without boundary pixels
    where two objects touch when ``boundary_gap`` is False), then the distance map."""
    classes = boundary_targets(labels)
    if not boundary_gap:
        classes = np.where(classes == 2, 1, classes)
    onehot = np.stack([classes == k for k in range(3)]).astype(np.float32)
    return np.concatenate([onehot, distance_target(labels)[None]])


class _Ideal(nn.Module):
    """A 'network' that returns the ideal maps' logits for the image it was made for."""

    def __init__(self, maps: np.ndarray) -> None:
        super().__init__()
        logits = np.log(np.clip(maps, 1e-4, 1 - 1e-4))
        logits[3] = np.log(np.clip(maps[3], 1e-4, 1 - 1e-4) / np.clip(1 - maps[3], 1e-4, 1))
        self.register_buffer("logits", torch.from_numpy(logits.astype(np.float32)))
        self.probabilities = maps
        self.anchor = nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[None].expand(x.shape[0], -1, -1, -1)[..., : x.shape[-2], : x.shape[-1]]


def ideal_distance_model(maps: np.ndarray) -> nn.Module:
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
