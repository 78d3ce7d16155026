"""Models with a distance output: targets, sampling, loss, training, fine-tuning, model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepseg.errors import DeepsegError, ModelFileError
from napari_deepseg.models import build_model, load_model, save_model
from napari_deepseg.models.modelfile import SCHEMA_VERSION, has_distance, read_model_file
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import finetune
from napari_deepseg.training.data import PatchSampler, pad_region
from napari_deepseg.training.labels import IGNORE, boundary_targets, distance_target
from napari_deepseg.training.losses import distance_loss, training_loss
from tests._shapes import touching_discs

TINY = {"arch_options": {"base": 8, "depth": 2}, "patch_size": 64, "batch_size": 4, "lr": 3e-3}


def test_distance_target_is_one_at_each_centre_and_low_where_objects_touch():
    labels = touching_discs()
    d = distance_target(labels)
    assert d.dtype == np.float32
    assert d.shape == labels.shape
    assert np.all(d[labels == 0] == 0)
    assert np.all(d[labels > 0] > 0)
    for i in (1, 2):
        assert d[labels == i].max() == pytest.approx(1.0)
    contact = [
        (20, x)
        for x in range(26, 30)
        if labels[20, x] and labels[20, x + 1] and labels[20, x] != labels[20, x + 1]
    ]
    assert contact, "the discs must touch"
    y, x = contact[0]
    assert d[y, x] < 0.2  # the valley between the two hills
    assert d[y, x + 1] < 0.2


def test_the_sampler_moves_distance_targets_with_the_image_and_classes():
    labels = touching_discs()
    target = boundary_targets(labels).astype(np.int16)
    image = np.random.default_rng(0).random((1, *labels.shape)).astype(np.float32)
    region = pad_region(image, target, "a", margin=0, min_size=32, distance=distance_target(labels))
    for zoom in (1.0, 1.5):
        batch = PatchSampler([region], 32, 32, fg_fraction=1.0, zoom=zoom).sample(
            16, np.random.default_rng(1), augment=True
        )
        assert batch.x.shape == (16, 1, 32, 32)
        assert batch.distance.shape == (16, 32, 32)
        objects = batch.y >= 1
        assert (batch.distance[~objects & (batch.y >= 0)] < 0.35).all()  # background stays low
        assert batch.distance[objects].mean() > 0.3
    plain = pad_region(image, target, "a", margin=0, min_size=32)
    assert PatchSampler([plain], 32, 32).sample(2, np.random.default_rng(1)).distance is None


def test_the_distance_loss_ignores_unannotated_pixels_and_the_class_loss_ignores_the_map():
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :4] = IGNORE
    dist = torch.rand(2, 8, 8)
    loss = training_loss(logits, target, classes=3, distance=dist, distance_weight=2.0)
    loss.backward()
    grad = logits.grad
    assert grad[:, 3, :4].abs().max() == 0  # ignored rows teach the map nothing
    assert grad[:, 3, 4:].abs().max() > 0
    other = dist.clone()
    other[:, :4] = 1 - other[:, :4]  # changing ignored targets changes nothing
    valid = target != IGNORE
    assert float(distance_loss(logits[:, 3].detach(), dist, valid)) == pytest.approx(
        float(distance_loss(logits[:, 3].detach(), other, valid))
    )
    classes_only = training_loss(logits, target, classes=3, distance=None)
    assert float(loss.detach()) > float(classes_only.detach())


def _data(n: int = 2):
    return [synthetic_nuclei((96, 96), seed=s) for s in range(n)]


def test_a_new_distance_model_trains_saves_and_records_its_outputs(tmp_path):
    result = finetune(
        _data(), None, distance=True, epochs=2, steps_per_epoch=4, val_fraction=0.25,
        output=tmp_path / "d.pt", **TINY,
    )  # fmt: skip
    model = load_model(result.path)
    assert has_distance(model)
    assert model.deepseg_meta.outputs == ["classes", "distance"]
    assert model.deepseg_arch.num_classes == 3
    assert model.extra_outputs == 1
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 4, 64, 64)
    assert model.deepseg_meta.postprocess["seed_method"] == "distance"
    assert read_model_file(result.path)["schema_version"] == 3 == SCHEMA_VERSION
    assert result.history[-1]["val_ap50"] is not None  # validated with distance seeding


def test_fine_tuning_a_distance_model_keeps_its_output_and_trains_the_map(tmp_path):
    first = finetune(
        _data(), None, distance=True, epochs=1, steps_per_epoch=3, output=tmp_path / "a.pt", **TINY
    )
    before = {k: v.clone() for k, v in first.model.state_dict().items()}
    again = finetune(_data(1), str(first.path), epochs=1, steps_per_epoch=3, val_fraction=0, **TINY)
    assert has_distance(again.model)
    head = again.model.head[0].weight
    assert head.shape[0] == 4
    assert not torch.equal(head[3], before["head.0.weight"][3])  # the distance filter learned too
    with pytest.raises(DeepsegError, match="has a distance output"):
        finetune(_data(1), str(first.path), distance=False, epochs=1, **TINY)


def test_distance_is_refused_where_it_cannot_apply(tmp_path):
    plain = build_model("unet", in_channels=1, num_classes=3, base=8, depth=2)
    with pytest.raises(DeepsegError, match="has no distance output"):
        finetune(_data(1), _with_meta(plain), distance=True, epochs=1, **TINY)
    with pytest.raises(DeepsegError, match="instance-boundary models only"):
        finetune(_data(1), None, distance=True, task="semantic", epochs=1, **TINY)
    with pytest.raises(DeepsegError, match="distance_weight"):
        finetune(_data(1), None, distance=True, distance_weight=-1, epochs=1, **TINY)


def _with_meta(model):
    from napari_deepseg.models import ModelMeta

    model.deepseg_meta = ModelMeta(name="plain", task="instance-boundary").complete(3)
    return model


def test_model_files_check_their_outputs_and_old_files_stay_schema_1(tmp_path):
    plain = _with_meta(build_model("unet", in_channels=1, num_classes=3, base=8, depth=2))
    path = save_model(tmp_path / "plain.pt", plain)
    assert read_model_file(path)["schema_version"] == 1  # unchanged for models without a map
    assert load_model(path).deepseg_meta.outputs == ["classes"]
    wrong = _with_meta(build_model("unet", in_channels=1, num_classes=3, base=8, depth=2))
    wrong.deepseg_meta.outputs = ["classes", "distance"]  # but the network gives no fourth map
    save_model(tmp_path / "wrong.pt", wrong)
    with pytest.raises(ModelFileError, match="map\\(s\\) after the classes"):
        load_model(tmp_path / "wrong.pt")
    odd = _with_meta(build_model("unet", in_channels=1, num_classes=3, base=8, depth=2, extra_outputs=1))
    odd.deepseg_meta.outputs = ["classes", "flow"]
    save_model(tmp_path / "odd.pt", odd)
    with pytest.raises(ModelFileError, match="upgrade napari-deepseg"):
        load_model(tmp_path / "odd.pt")


def test_an_older_reader_refuses_a_distance_file_with_upgrade(tmp_path, monkeypatch):
    from napari_deepseg.models import modelfile

    model = _with_meta(build_model("unet", in_channels=1, num_classes=3, base=8, depth=2, extra_outputs=1))
    model.deepseg_meta.outputs = ["classes", "distance"]
    path = save_model(tmp_path / "d.pt", model)
    monkeypatch.setattr(modelfile, "SCHEMA_VERSION", 2)  # the reader before distance outputs
    with pytest.raises(ModelFileError, match=r"schema 3, newer .* upgrade napari-deepseg"):
        load_model(path)


def test_growing_the_classes_keeps_the_distance_map_last():
    model = build_model("unet", in_channels=1, num_classes=3, base=8, depth=2, extra_outputs=1)
    old = model.head[0].weight.detach().clone()
    model.replace_classifier(5)
    new = model.head[0].weight
    assert new.shape[0] == 6
    assert torch.equal(new[:3], old[:3])
    assert torch.equal(new[5], old[3])
