"""scripts/train_default_model.py, the recipe of the bundled model, with tiny settings: on the
CPU with batch workers (the GPU path's data loading), and on a GPU (``gpu`` marker)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import tifffile
import torch

from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "train_default_model", ROOT / "scripts" / "train_default_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_dsb(root: Path) -> Path:
    """A DSB2018-shaped folder: index.json and train images/masks of the three kinds."""
    index = []
    for i, kind in enumerate(["fluorescence"] * 4 + ["histology"] * 2 + ["brightfield"] * 2):
        image, labels = synthetic_nuclei((96, 96), seed=i)
        name = f"img{i}"
        for sub, data in (("images", image), ("masks", labels.astype("uint16"))):
            (root / "train" / sub).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / "train" / sub / f"{name}.tif", data)
        index.append(
            {"id": name, "split": "train", "kind": kind, "shape": [96, 96], "nuclei": int(labels.max())}
        )
    (root / "index.json").write_text(json.dumps(index))
    return root


TINY = [
    "--base",
    "4",
    "--depth",
    "2",
    "--patch",
    "64",
    "--batch",
    "2",
    "--epochs",
    "2",
    "--steps-per-epoch",
    "3",
]


def _run(tmp_path: Path, *extra: str) -> Path:
    data = _fake_dsb(tmp_path / "dsb")
    out = tmp_path / "run"
    assert _script().main(["--data", str(data), "--out", str(out), *TINY, "--distance", *extra]) == 0
    return out


def test_the_recipe_trains_a_distance_model_with_batch_workers_and_checkpoints(tmp_path):
    out = _run(tmp_path, "--device", "cpu", "--workers", "2")
    model = load_model(out / "nuclei.pt")
    assert model.deepseg_meta.outputs == ["classes", "distance"]
    prov = model.deepseg_meta.provenance
    assert prov["config"]["loader_workers"] == 2
    assert prov["steps"] == 6
    assert (out / "checkpoint.pt").is_file()
    assert sorted(p.name for p in out.glob("nuclei.epoch*.pt")) == [
        "nuclei.epoch001.pt",
        "nuclei.epoch002.pt",
    ]


@pytest.mark.gpu
def test_the_gpu_recipe_runs_in_mixed_precision(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    out = _run(tmp_path, "--device", "cuda")
    prov = load_model(out / "nuclei.pt").deepseg_meta.provenance
    assert prov["device"] == "cuda"
    assert prov["precision"] in ("bfloat16", "float16")
