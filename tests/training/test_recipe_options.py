"""The training core's recipe options: sampling weights, scale augmentation, a time budget,
snapshots, a training object diameter and the H&E channel mode (tiny models, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepseg.inference.scale import median_diameter, resize_labels, resize_plane
from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import finetune, finetune_iter
from napari_deepseg.training.data import PatchSampler, Region

TINY = {"arch_options": {"base": 8, "depth": 2}, "patch_size": 48, "batch_size": 2, "lr": 3e-3}


def _region(value: float, name: str, weight: float | None) -> Region:
    image = np.full((1, 64, 64), value, np.float32)
    target = np.zeros((64, 64), np.int16)
    return Region(image, target, name, np.flatnonzero(target >= 0), weight)


def test_sampling_follows_pair_weights():
    regions = [_region(0.0, "a", 0.9), _region(1.0, "b", 0.1)]
    sampler = PatchSampler(regions, 32, 32)
    x, _ = sampler.sample(400, np.random.default_rng(0), augment=False)
    share_b = float((x[:, 0, 0, 0] == 1.0).mean())
    assert 0.05 < share_b < 0.16
    unweighted = PatchSampler([_region(0.0, "a", None), _region(1.0, "b", None)], 32, 32)
    assert unweighted.weights == pytest.approx([0.5, 0.5])


def test_zoom_windows_keep_their_size_and_vary_the_scale():
    image, labels = synthetic_nuclei((128, 128), radius=(6, 8), seed=0)[:2]
    region = Region(image[None].astype(np.float32), (labels > 0).astype(np.int16), "n",
                    np.arange(128 * 128))  # fmt: skip
    sampler = PatchSampler([region], 48, 48, zoom=2.0)
    rng = np.random.default_rng(1)
    fractions = []
    for _ in range(40):
        x, y = sampler.sample(1, rng, augment=False)
        assert x.shape == (1, 1, 48, 48)
        assert y.shape == (1, 48, 48)
        fractions.append(y.mean())
    assert np.std(fractions) > 0.02


def _pairs(scale: float = 1.0, n: int = 2):
    out = []
    for seed in range(n):
        image, labels = synthetic_nuclei((96, 96), radius=(5, 6), seed=seed)[:2]
        if scale != 1:
            shape = (round(96 * scale), round(96 * scale))
            image, labels = (
                resize_plane(image[None].astype(np.float32), shape)[0],
                resize_labels(labels, shape),
            )
        out.append({"image": image, "labels": labels, "weight": 1.0 + seed})
    return out


def test_new_model_with_diameter_hed_budget_and_snapshots(tmp_path):
    pairs = _pairs(scale=2.0)
    assert median_diameter(pairs[0]["labels"]) > 18
    events = list_events(
        finetune_iter(
            pairs,
            None,
            output=tmp_path / "m.pt",
            epochs=3,
            steps_per_epoch=4,
            object_diameter=11.0,
            channel_mode="gray-hed",
            zoom=1.25,
            snapshots=True,
            val_fraction=0.2,
            **TINY,
        )
    )
    result = events[-1]
    assert sorted(p.name for p in tmp_path.glob("m.epoch*.pt")) == [f"m.epoch00{i}.pt" for i in (1, 2, 3)]
    model = load_model(result.path)
    meta = model.deepseg_meta
    assert (meta.object_diameter, meta.channel_mode) == (11.0, "gray-hed")
    assert meta.provenance["rescaled_pairs"] == 2
    assert meta.provenance["object_diameter"] == 11.0
    assert torch.load(result.path, weights_only=True)["schema_version"] == 2


def test_time_budget_ends_the_run_validated_and_saved(tmp_path):
    result = finetune(
        _pairs(), None, output=tmp_path / "m.pt", epochs=50, steps_per_epoch=20, minutes=0.02, **TINY
    )
    prov = load_model(result.path).deepseg_meta.provenance
    assert prov["stopped_by_time_budget"] is True
    assert prov["steps"] < 50 * 20
    assert result.history[-1]["epoch"] >= 1  # the partial epoch was validated


def test_finetuning_a_sized_model_rescales_sparse_pairs_with_its_own_estimate(tmp_path):
    model = load_model("nuclei")
    model.deepseg_meta.object_diameter = 8.0
    image, labels = synthetic_nuclei((128, 128), radius=(7, 8), seed=4)[:2]
    scribbles = np.zeros_like(labels)
    scribbles[labels == 1] = 2
    scribbles[:4, :] = 1  # painted background
    result = finetune(
        [(image, scribbles)], model, sparse=True, epochs=1, steps_per_epoch=2, patch_size=48,
        batch_size=2, val_fraction=0.0,
    )  # fmt: skip
    assert result.model.deepseg_meta.provenance["rescaled_pairs"] == 1


def list_events(gen):
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        events.append(stop.value)
    return events
