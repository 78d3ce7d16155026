"""finetune / finetune_iter end to end on tiny models and synthetic nuclei (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference.inputs import normalize_plane, to_model_input
from napari_deepseg.models import build_model, load_model, save_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import finetune, finetune_iter
from napari_deepseg.training.checkpoints import load_checkpoint

TINY = {"arch_options": {"base": 8, "depth": 2}, "patch_size": 64, "batch_size": 4, "lr": 3e-3}


def _foreground_iou(model, image, labels) -> float:
    meta = model.deepseg_meta
    x = normalize_plane(to_model_input(image, 1, meta.channel_mode), meta.normalization)
    with torch.no_grad():
        pred = model.eval()(torch.from_numpy(x)[None]).argmax(1)[0].numpy() > 0
    truth = labels > 0
    return (pred & truth).sum() / (pred | truth).sum()


def _drive(gen, stop_after_steps: int | None = None):
    events = []
    try:
        while True:
            event = next(gen)
            events.append(event)
            if stop_after_steps is not None and event.stage == "step" and event.done >= stop_after_steps:
                gen.close()
                return events, None
    except StopIteration as stop:
        return events, stop.value


@pytest.mark.slow
def test_tiny_model_learns_synthetic_nuclei(nuclei_image, tmp_path):
    image, labels = nuclei_image
    out = tmp_path / "ft.pt"
    events, result = _drive(
        finetune_iter([(image, labels)], epochs=4, steps_per_epoch=10, val_fraction=0.25, output=out, **TINY)
    )
    steps = [e for e in events if e.stage == "step"]
    epochs = [e for e in events if e.stage == "epoch"]
    assert len(steps) == 40
    assert {"loss", "epoch", "lr"} <= set(steps[0].info)
    assert [e.done for e in epochs] == [0, 1, 2, 3, 4]
    assert set(epochs[-1].info["val_iou"]) == {"background", "interior", "boundary"}
    assert sum(e.info["best"] for e in epochs) >= 1
    assert _foreground_iou(result.model, image, labels) > 0.7
    loaded = load_model(out)
    prov = loaded.deepseg_meta.provenance
    assert prov["epochs"] == 4
    assert prov["best_epoch"] == result.best_epoch
    assert prov["annotated_pixels"]["interior"] > 0
    assert prov["sources"] == ["pair 0"]
    assert "package_version" in prov
    assert "date" in prov


def test_finetune_from_model_keeps_normalization_and_grows_head(tmp_path):
    image, labels = synthetic_nuclei((64, 64), seed=1)
    base = build_model("unet", in_channels=1, num_classes=2, base=4, depth=2)
    from napari_deepseg.models import ModelMeta

    norm = {"method": "percentile", "low": 2.0, "high": 99.0, "scope": "plane"}
    base.deepseg_meta = ModelMeta(name="base", task="semantic", normalization=norm).complete(2)
    save_model(tmp_path / "base.pt", base)
    semantic = (labels > 0).astype(np.uint8)
    semantic[labels % 3 == 0] *= 2  # a third class
    result = finetune(
        [(image, semantic)],
        tmp_path / "base.pt",
        epochs=1,
        steps_per_epoch=2,
        patch_size=32,
        batch_size=2,
        class_names=["background", "nucleus", "other"],
        val_fraction=0,
    )
    meta = result.model.deepseg_meta
    assert meta.normalization == norm
    assert meta.class_names == ["background", "nucleus", "other"]
    assert result.model.deepseg_arch.num_classes == 3
    assert result.model(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    # the old classes kept their head weights (only 2 steps of training since)
    old_w = base.head[-1].weight
    assert torch.allclose(result.model.head[-1].weight[:2], old_w, atol=0.05)


def test_cancel_leaves_valid_model_and_checkpoint(tmp_path):
    image, labels = synthetic_nuclei((64, 64), seed=2)
    out, ckpt = tmp_path / "m.pt", tmp_path / "run.ckpt"
    gen = finetune_iter(
        [(image, labels)],
        epochs=3,
        steps_per_epoch=4,
        output=out,
        checkpoint=ckpt,
        **{**TINY, "patch_size": 32},
    )
    events, result = _drive(gen, stop_after_steps=6)
    assert result is None
    assert [e.done for e in events if e.stage == "epoch"] == [0, 1]
    model = load_model(out)
    assert model.deepseg_meta.provenance["stopped_early"] is True
    assert model.deepseg_meta.provenance["steps"] == 6
    assert load_checkpoint(ckpt)["step"] == 6
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_continues_from_saved_step_and_matches_uninterrupted_run(tmp_path):
    image, labels = synthetic_nuclei((64, 64), seed=4)
    kw = {
        **TINY,
        "patch_size": 32,
        "epochs": 2,
        "steps_per_epoch": 3,
        "precision": "fp32",
        "val_fraction": 0.25,
    }
    _, full = _drive(finetune_iter([(image, labels)], **kw))
    ckpt = tmp_path / "run.ckpt"
    _drive(finetune_iter([(image, labels)], checkpoint=ckpt, **kw), stop_after_steps=4)
    assert load_checkpoint(ckpt)["step"] == 4
    events, resumed = _drive(finetune_iter([(image, labels)], resume=ckpt, checkpoint=ckpt, precision="fp32"))
    steps = [e.done for e in events if e.stage == "step"]
    assert steps == [5, 6]
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.best_epoch == full.best_epoch
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_same_seed_same_run():
    image, labels = synthetic_nuclei((64, 64), seed=5)
    kw = {**TINY, "patch_size": 32, "epochs": 1, "steps_per_epoch": 2, "precision": "fp32", "val_fraction": 0}
    a, b = (finetune([(image, labels)], seed=7, **kw) for _ in range(2))
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros((32, 33), np.uint16), "does not match labels shape"),
        (np.zeros((32, 32), np.float32), "floating point"),
        (np.zeros((32, 32), np.uint16), "only one class"),
    ],
)
def test_bad_input_is_reported_before_training(labels, message):
    image = np.zeros((32, 32), np.uint16)
    gen = finetune_iter([(image, labels)], **TINY)
    with pytest.raises(DeepsegError, match=message):
        next(gen)


def test_sparse_without_annotations_is_an_error():
    image = np.zeros((32, 32), np.uint16)
    with pytest.raises(DeepsegError, match="no annotated pixels"):
        finetune([(image, np.zeros((32, 32), np.uint8))], sparse=True, **TINY)


def test_sparse_training_runs_on_scribbles():
    image, labels = synthetic_nuclei((64, 64), seed=6)
    scribbles = np.zeros_like(labels)
    scribbles[:4] = 1  # background strip
    first = np.unique(labels[labels > 0])[:3]
    for i in first:
        scribbles[labels == i] = i + 1
    result = finetune([(image, scribbles)], sparse=True, epochs=1, steps_per_epoch=2, val_fraction=0, **TINY)
    counts = result.model.deepseg_meta.provenance["annotated_pixels"]
    assert counts["background"] > 0
    assert counts["interior"] > 0
    assert sum(counts.values()) == int((scribbles > 0).sum())


@pytest.mark.gpu
def test_cuda_finetune_uses_autocast_and_releases_memory(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    image, labels = synthetic_nuclei((64, 64), seed=8)
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    gen = finetune_iter(
        [(image, labels)], device="cuda", epochs=2, steps_per_epoch=3, output=tmp_path / "g.pt", **TINY
    )
    events, _ = _drive(gen, stop_after_steps=4)
    assert events[-1].info["loss"] > 0
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= baseline + 2**20
    model = load_model(tmp_path / "g.pt")
    assert model.deepseg_meta.provenance["precision"] in ("bfloat16", "float16")
    assert model.deepseg_meta.provenance["device"] == "cuda"


def test_val_pairs_onecycle_and_stack_planes(tmp_path):
    image, labels = synthetic_nuclei((64, 64), seed=9)
    stack, stack_labels = np.stack([image, image[::-1]]), np.stack([labels, labels[::-1]])
    val_image, val_labels = synthetic_nuclei((48, 48), seed=10)
    events, _ = _drive(
        finetune_iter(
            [(stack, stack_labels)],
            val_pairs=[{"image": val_image, "labels": val_labels, "name": "held out"}],
            schedule="onecycle",
            epochs=2,
            steps_per_epoch=2,
            output=tmp_path / "v.pt",
            **{**TINY, "patch_size": 32},
        )
    )
    assert [e.done for e in events if e.stage == "epoch"] == [0, 1, 2]
    assert all(e.info["val_loss"] is not None for e in events if e.stage == "epoch")
    prov = load_model(tmp_path / "v.pt").deepseg_meta.provenance
    assert prov["sources"] == ["pair 0[0]", "pair 0[1]"]
    assert prov["validation"] == ["held out"]
    assert prov["config"]["schedule"] == "onecycle"


def test_one_options_object_holds_the_defaults():
    """FinetuneConfig is the one place for defaults: finetune_iter, deepseg train and the widget."""
    import argparse
    import inspect

    from napari_deepseg.cli import train as cli_train
    from napari_deepseg.training import FinetuneConfig, finetune_iter

    defaults = FinetuneConfig()
    signature = inspect.signature(finetune_iter).parameters
    assert not set(signature) & {f for f in vars(defaults) if f != "config"}  # no second copy
    parser = argparse.ArgumentParser()
    cli_train.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--images", "i", "--labels", "l", "-o", "m.pt"])
    assert cli_train._config(args) == defaults
    changed = FinetuneConfig.from_options(defaults, epochs=3, channels=(0, 2), class_weights=(1, 2))
    assert (changed.epochs, changed.channels, changed.class_weights) == (3, [0, 2], [1.0, 2.0])
    assert changed.lr == defaults.lr
    with pytest.raises(TypeError, match=r"unknown fine-tuning option.*epoch\b"):
        FinetuneConfig.from_options(epoch=3)


def test_trains_on_a_multichannel_cyx_image_from_scratch():
    """axes="CYX" as for segment(): a 2-channel image makes a 2-channel model that segments it."""
    from napari_deepseg._napari.train_run import check_pair, snapshot_pair
    from napari_deepseg.inference import segment

    nuclei, labels = synthetic_nuclei((64, 64), seed=4)
    cyx = np.stack([nuclei, nuclei[::-1]])  # (C, Y, X): a second, unrelated channel
    kw = {**TINY, "patch_size": 32, "epochs": 1, "steps_per_epoch": 1, "precision": "fp32", "val_fraction": 0}
    model = finetune([(cyx, labels)], axes="CYX", **kw).model
    assert model.deepseg_arch.in_channels == 2
    assert model.deepseg_meta.channel_mode == "select"
    assert segment(cyx, model, axes="CYX", device="cpu").classes.shape == (64, 64)
    # the Fine-tune widget's layer data (channel axis first, as napari holds it) becomes the same pair
    check_pair(cyx, labels, "cells / labels")
    pair = snapshot_pair(cyx, labels, "cells / labels")
    assert pair.image.shape == (64, 64, 2)
    assert np.array_equal(pair.image[..., 1], nuclei[::-1])
