"""Layer <-> array helpers and the model picker's list (no dock widget needed)."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from napari_deepseg._napari.layers import (
    SourceSnapshot,
    channel_axis_choices,
    is_edited,
    labels_kwargs,
    mark_result,
)
from napari_deepseg._napari.model_choices import FILE_ENTRY, ModelChoice, ModelChoices
from napari_deepseg.models import ModelMeta, save_model


def test_snapshot_drops_channel_axis_from_transform():
    affine = np.eye(4)
    affine[1, 3] = 7.0  # a shift along Y in the extra affine
    data = np.zeros((2, 16, 20), np.uint16)
    layer = Image(data, name="cells", scale=(1, 0.5, 0.25), translate=(0, 3, 4), affine=affine)
    assert channel_axis_choices(layer) == [0]
    snap = SourceSnapshot.from_layer(layer, channel_axis=0)
    assert snap.axes == "CYX"
    assert snap.spatial_shape == (16, 20)
    assert snap.transform["scale"] == (0.5, 0.25)
    assert snap.transform["translate"] == (3, 4)
    np.testing.assert_array_equal(snap.transform["affine"], [[1, 0, 7], [0, 1, 0], [0, 0, 1]])
    labels = Labels(np.zeros(snap.spatial_shape, np.uint8), **labels_kwargs(snap, "x"))
    np.testing.assert_allclose(labels.scale, (0.5, 0.25))


def test_rgb_snapshot_keeps_layer_transform():
    layer = Image(np.zeros((16, 20, 3), np.uint8), rgb=True, scale=(2, 3), rotate=30)
    snap = SourceSnapshot.from_layer(layer)
    assert snap.axes == "YXC"
    assert snap.spatial_shape == (16, 20)
    labels = Labels(np.zeros(snap.spatial_shape, np.uint8), **labels_kwargs(snap, "x"))
    np.testing.assert_allclose(labels.scale, (2, 3))
    np.testing.assert_allclose(labels.rotate, layer.rotate)


def test_labels_kwargs_carry_class_names_and_colours():
    layer = Image(np.zeros((8, 8)), name="img")
    meta = ModelMeta(name="m", task="instance-boundary").complete(3)
    labels = Labels(np.zeros((8, 8), np.uint8), **labels_kwargs(SourceSnapshot.from_layer(layer), "r", meta))
    assert list(labels.features["class"]) == ["background", "interior", "boundary"]
    green = [0x3C / 255, 0xB4 / 255, 0x4B / 255]  # "#3cb44b", class 2 in the default palette
    np.testing.assert_allclose(labels.colormap.map([2])[0, :3], green, atol=1e-3)
    assert labels.colormap.map([0])[0, 3] == 0  # background transparent


def test_edit_detection_by_paint_and_by_content():
    painted = Labels(np.zeros((8, 8), np.uint8))
    mark_result(painted, output="classes")
    assert not is_edited(painted)
    painted.paint((4, 4), 1)  # brush through napari's API (emits events.paint)
    assert is_edited(painted)
    changed = Labels(np.zeros((8, 8), np.uint8))
    mark_result(changed)
    changed.data[0, 0] = 2  # a change behind napari's back
    assert is_edited(changed)
    assert is_edited(Labels(np.zeros((4, 4), np.uint8)))  # not ours: the user's


def test_model_choices_list_and_add(tmp_path, tiny_unet):
    choices = ModelChoices()
    seen = []
    choices.on_change(lambda: seen.append(1))
    assert choices.choices()[-1] == (FILE_ENTRY, FILE_ENTRY)
    path = save_model(tmp_path / "my model.pt", tiny_unet)
    choice = choices.add(path)
    assert choices.add(path) == choice  # no duplicates
    assert seen == [1]
    assert (choice.label, choice) in choices.choices()
    assert choice.short_name == "my model"
    model = choice.load()
    assert model.deepseg_meta.task == "instance-boundary"
    key = choice.cache_key()
    save_model(path, tiny_unet, overwrite=True)  # re-saved (e.g. fine-tuned): new cache key
    assert choice.cache_key() != key


def test_bundled_default_leads(monkeypatch, tmp_path):
    import napari_deepseg.models.catalog as catalog

    fake = {"a": tmp_path / "a.pt", "nuclei": tmp_path / "n.pt"}
    monkeypatch.setattr(catalog, "bundled_models", lambda: fake)
    monkeypatch.setattr(catalog, "ready_weights_cached", lambda name: True)
    entries = ModelChoices().entries()
    assert entries[0] == ModelChoice("bundled", "nuclei")
    assert entries[0].label == "nuclei (bundled)"  # an unreadable file: no description to show
    assert entries[1] == ModelChoice("bundled", "a")
    pretrained = [e for e in entries if e.kind == "pretrained"]
    assert ModelChoice("pretrained", "deeplabv3_resnet50_coco") in pretrained


def test_bundled_models_are_named_by_the_images_they_fit():
    from napari_deepseg.models import bundled_description

    entry = ModelChoice("bundled", "nuclei")
    fits = bundled_description("nuclei")
    assert fits  # the shipped file describes itself
    assert entry.label.startswith("nuclei (")
    assert entry.label != "nuclei (bundled)"
    assert "fluorescence" in entry.label.lower()
