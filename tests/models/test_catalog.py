"""The one model list (bundled, ready pretrained, user models folder) and loading by name."""

from __future__ import annotations

import pytest

from napari_deepseg.cli import main
from napari_deepseg.errors import ModelFileError
from napari_deepseg.models import load_model, model_catalog, save_model, user_models_dir
from napari_deepseg.models.catalog import READY_MODELS, resolve_model_path, user_model_path


def test_catalog_lists_bundled_ready_and_user_models(user_models, tiny_unet):
    assert user_models_dir() == user_models
    before = model_catalog()
    assert [e.kind for e in before if e.kind != "pretrained"] == ["bundled"]
    assert before[0].name == "nuclei"
    assert [e.name for e in before if e.kind == "pretrained"] == []  # empty hub cache: none listed
    everything = model_catalog(include_absent=True)
    assert [e.name for e in everything if e.kind == "pretrained"] == list(READY_MODELS)
    assert not any(e.weights_cached for e in everything if e.kind == "pretrained")

    path = save_model(user_model_path("mine"), tiny_unet)  # a model saved there by anyone
    after = model_catalog()
    assert after[: len(before)] == before
    assert [(e.kind, e.name) for e in after[len(before) :]] == [("user", "mine")]
    assert load_model("mine").deepseg_source == str(path)
    assert resolve_model_path("nuclei").name == "nuclei.pt"


def test_ready_weights_cached_follows_the_hub_cache(torch_home):
    from napari_deepseg.models.catalog import ready_weights_cached
    from napari_deepseg.models.pretrained import checkpoint_path, weights_for

    name = "deeplabv3_mobilenet_v3_large_coco"
    assert ready_weights_cached(name) is False
    path = checkpoint_path(weights_for("coco", "deeplabv3", "mobilenet_v3_large"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    assert ready_weights_cached(name) is True
    listed = [e for e in model_catalog() if e.kind == "pretrained"]
    assert [(e.name, e.weights_cached) for e in listed] == [(name, True)]  # listed once present


def test_unknown_name_lists_the_known_ones(user_models, tiny_unet):
    save_model(user_models / "mine.pt", tiny_unet)
    with pytest.raises(ModelFileError, match=r"nuclei.*deeplabv3_resnet101_coco.*mine"):
        load_model("nope")


def test_deepseg_models_lists_the_catalog(user_models, tiny_unet, capsys):
    save_model(user_models / "mine.pt", tiny_unet)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "bundled model files: nuclei" in out
    assert f"your models ({user_models}): mine" in out
    assert "deeplabv3_resnet50_coco" in out
