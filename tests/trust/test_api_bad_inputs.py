# ruff: noqa: E501  (a table of cases reads best one case per line)
"""Bad arguments to the public Python API (segment, load_model, build_model, finetune): the exception
type, a one-line message naming the argument and the fix, inputs unchanged, no output file left."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from napari_deepseg.errors import DeepsegError, ModelFileError
from napari_deepseg.inference import segment
from napari_deepseg.models import build_model, load_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import finetune

from .conftest import Workspace, one_line


@pytest.fixture
def data():
    image, labels = synthetic_nuclei((48, 48), seed=1)
    return {"image": image, "labels": labels.astype(np.int32), "float": image.astype(np.float32)}


def _digest(values) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for v in values]


def _fit(d, **kw):
    return {
        "epochs": 1,
        "steps_per_epoch": 1,
        "batch_size": 1,
        "patch_size": 32,
        "arch_options": {"base": 4, "depth": 2},
        **kw,
    }


@dataclass
class ApiCase:
    id: str
    call: Callable  # (model, data, workspace) -> None
    error: type[BaseException]
    says: tuple[str, ...]


CASES = [
    # ---- segment
    ApiCase("segment-model-int", lambda m, d, w: segment(d["image"], 42), TypeError, ("model", "42", "model name")),
    ApiCase("segment-model-none", lambda m, d, w: segment(d["image"], None), TypeError, ("model", "None")),
    ApiCase("segment-model-unknown-name", lambda m, d, w: segment(d["image"], "nucleii"), ModelFileError, ("nucleii", "not found", "nuclei")),
    ApiCase("segment-image-path", lambda m, d, w: segment(str(w.images / "a0.tif"), m), TypeError, ("a0.tif", "read_image")),
    ApiCase("segment-image-none", lambda m, d, w: segment(None, m), TypeError, ("image", "read_image")),
    ApiCase("segment-image-1d", lambda m, d, w: segment(np.zeros(10), m), ValueError, ("2 dimensions",)),
    ApiCase("segment-image-empty", lambda m, d, w: segment(np.zeros((0, 10)), m), ValueError, ("empty",)),
    ApiCase("segment-image-strings", lambda m, d, w: segment(np.array([["a", "b"], ["c", "d"]]), m), ValueError, ("numeric",)),
    ApiCase("segment-axes-mismatch", lambda m, d, w: segment(d["image"], m, axes="ZYX"), ValueError, ("ZYX",)),
    ApiCase("segment-channel-out-of-range", lambda m, d, w: segment(np.stack([d["image"]] * 2, -1), m, axes="YXC", channels=[5]), ValueError, ("5",)),
    ApiCase("segment-tile-fraction", lambda m, d, w: segment(d["image"], m, tile=100.5), TypeError, ("tile", "100.5")),
    ApiCase("segment-tile-text", lambda m, d, w: segment(d["image"], m, tile="512"), TypeError, ("tile", "'512'")),
    ApiCase("segment-tile-0", lambda m, d, w: segment(d["image"], m, tile=0), ValueError, ("tile=0", "tile=")),
    ApiCase("segment-overlap-negative", lambda m, d, w: segment(d["image"], m, tile=32, overlap=-1), ValueError, ("overlap=-1",)),
    ApiCase("segment-overlap-too-big", lambda m, d, w: segment(d["image"], m, tile=32, overlap=32), ValueError, ("overlap=32", "tile=32")),
    ApiCase("segment-batch-size-0", lambda m, d, w: segment(d["image"], m, batch_size=0), ValueError, ("batch_size=0", "batch_size=1")),
    ApiCase("segment-batch-size-fraction", lambda m, d, w: segment(d["image"], m, batch_size=2.5), TypeError, ("batch_size", "2.5")),
    ApiCase("segment-outputs-unknown", lambda m, d, w: segment(d["image"], m, outputs="masks"), ValueError, ("outputs", "'masks'", "instances")),
    ApiCase("segment-outputs-numbers", lambda m, d, w: segment(d["image"], m, outputs=[1]), TypeError, ("outputs", "1")),
    ApiCase("segment-min-size-negative", lambda m, d, w: segment(d["image"], m, outputs="instances", min_size=-1), ValueError, ("min_size=-1",)),
    ApiCase("segment-all-nan", lambda m, d, w: segment(np.full((32, 32), np.nan, np.float32), m), DeepsegError, ("no finite pixel",)),
    ApiCase("segment-nan-plane-in-stack", lambda m, d, w: segment(np.stack([d["float"], np.full_like(d["float"], np.inf)]), m, axes="ZYX"), DeepsegError, ("Z=1", "no finite pixel")),
    # ---- load_model
    ApiCase("load-none", lambda m, d, w: load_model(None), TypeError, ("load_model", "None", "model name")),
    ApiCase("load-int", lambda m, d, w: load_model(3), TypeError, ("load_model", "3")),
    ApiCase("load-empty-name", lambda m, d, w: load_model(""), TypeError, ("load_model", "''")),
    ApiCase("load-folder", lambda m, d, w: load_model(w.images), ModelFileError, ("images", "is a folder")),
    ApiCase("load-image-file", lambda m, d, w: load_model(w.images / "a0.tif"), ModelFileError, ("a0.tif", "not a model file")),
    # ---- build_model
    ApiCase("build-in-channels-negative", lambda m, d, w: build_model("unet", in_channels=-1), ValueError, ("in_channels=-1", "in_channels=1")),
    ApiCase("build-in-channels-fraction", lambda m, d, w: build_model("unet", in_channels=1.5), TypeError, ("in_channels", "1.5")),
    ApiCase("build-classes-0", lambda m, d, w: build_model("unet", num_classes=0), ValueError, ("num_classes=0", "num_classes=2")),
    ApiCase("build-classes-1", lambda m, d, w: build_model("unet", num_classes=1), ValueError, ("num_classes=1", "background", "num_classes=2")),
    ApiCase("build-name-none", lambda m, d, w: build_model(None), TypeError, ("None", "unet")),
    ApiCase("build-name-unknown", lambda m, d, w: build_model("unett"), ValueError, ("'unett'", "unet")),
    ApiCase("build-option-unknown", lambda m, d, w: build_model("unet", width=3), ValueError, ("width", "base")),
    # ---- finetune
    ApiCase("finetune-pairs-folder", lambda m, d, w: finetune(str(w.images), None, **_fit(d)), TypeError, ("pairs", "read_pair")),
    ApiCase("finetune-pairs-empty", lambda m, d, w: finetune([], None, **_fit(d)), ValueError, ("no training pairs",)),
    ApiCase("finetune-model-int", lambda m, d, w: finetune([(d["image"], d["labels"])], 7, **_fit(d)), TypeError, ("model_or_path", "7")),
    ApiCase("finetune-epochs-0", lambda m, d, w: finetune([(d["image"], d["labels"])], None, **_fit(d, epochs=0)), ValueError, ("epochs",)),
    ApiCase("finetune-epochs-text", lambda m, d, w: finetune([(d["image"], d["labels"])], None, **_fit(d, epochs="5")), TypeError, ("epochs", "'5'")),
    ApiCase("finetune-batch-size-0", lambda m, d, w: finetune([(d["image"], d["labels"])], None, **_fit(d, batch_size=0)), ValueError, ("batch_size",)),
    ApiCase("finetune-lr-negative", lambda m, d, w: finetune([(d["image"], d["labels"])], None, **_fit(d, lr=-1.0)), ValueError, ("lr",)),
    ApiCase("finetune-output-is-checkpoint", lambda m, d, w: finetune([(d["image"], d["labels"])], None, **_fit(d, output=w.out / "m.pt", checkpoint=w.out / "m.pt")), ValueError, ("output and checkpoint", "m.pt")),
    ApiCase("finetune-output-below-a-file", lambda m, d, w: finetune([(d["image"], d["labels"])], None, **_fit(d, output=w.images / "a0.tif" / "m.pt")), ValueError, ("a0.tif", "is a file")),
    ApiCase("finetune-all-nan-image", lambda m, d, w: finetune([(np.full((48, 48), np.nan, np.float32), d["labels"])], None, **_fit(d)), DeepsegError, ("pair 0", "no finite pixel")),
    ApiCase("finetune-labels-wrong-shape", lambda m, d, w: finetune([(d["image"], d["labels"][:32])], None, **_fit(d)), ValueError, ("pair 0", "shape")),
    ApiCase("finetune-resume-damaged", lambda m, d, w: finetune([(d["image"], d["labels"])], None, **_fit(d, resume=w.model.with_name("bad.ckpt"))), ModelFileError, ("bad.ckpt", "damaged or not a training checkpoint")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api_bad_argument(case: ApiCase, tiny_unet, data, ws: Workspace):
    ws.model.with_name("bad.ckpt").write_bytes(np.random.default_rng(1).bytes(2048))
    before_files, before_arrays = ws.snapshot(), _digest(data.values())
    before_weights = _digest(p.detach().numpy() for p in tiny_unet.parameters())
    with pytest.raises(case.error) as info:
        case.call(tiny_unet, data, ws)
    message = one_line(str(info.value))
    for part in case.says:
        assert part in message, f"{part!r} not in {message!r}"
    assert "weights_only" not in message
    ws.assert_untouched(before_files)
    assert _digest(data.values()) == before_arrays, "an input array changed"
    assert _digest(p.detach().numpy() for p in tiny_unet.parameters()) == before_weights
    ws.assert_no_output()


def test_segment_accepts_a_model_name_and_one_output_name(data):
    result = segment(data["image"], "nuclei", outputs="instances", tile=64)
    assert result.instances is not None
    assert result.instances.shape == data["image"].shape
    assert result.probabilities is None


def test_inf_patch_is_replaced_with_a_counting_warning(tiny_unet, data):
    image = data["float"].copy()
    image[10:20, 10:20] = np.inf
    image[0, 0] = np.nan
    before = image.copy()
    with pytest.warns(RuntimeWarning, match="1 NaN and 100 infinite"):
        result = segment(image, tiny_unet, tile=48)
    np.testing.assert_array_equal(image, before)  # the caller's array is not changed
    clean = data["float"].copy()
    clean[10:20, 10:20] = clean.max()
    clean[0, 0] = clean.min()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = segment(clean, tiny_unet, tile=48)
    np.testing.assert_array_equal(result.classes, expected.classes)


def test_finetune_clamps_a_patch_larger_than_the_images(data, tmp_path: Path):
    with pytest.warns(
        UserWarning, match=r"patch_size=4096 is larger than the largest training image \(48x48\)"
    ):
        result = finetune(
            [(data["image"], data["labels"])], None, **_fit(data, patch_size=4096, val_fraction=0)
        )
    assert result.model is not None
