"""``deepseg predict --diameter``: per-image estimates for models trained at one object size,
recorded in the manifest and the summary; one estimate for every chunk of a large image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_deepseg.batch import MANIFEST_NAME
from napari_deepseg.cli import main
from napari_deepseg.inference.scale import resize_plane
from napari_deepseg.models import load_model, save_model
from napari_deepseg.samples import synthetic_nuclei


@pytest.fixture
def sized_model_file(tmp_path):
    model = load_model("nuclei")
    model.deepseg_meta.object_diameter = 16.0
    return save_model(tmp_path / "sized.pt", model)


@pytest.fixture
def big_nuclei(tmp_path):
    """A folder with one 256x256 image whose nuclei are about 32 px across."""
    folder = tmp_path / "images"
    folder.mkdir()
    image = synthetic_nuclei((128, 128), radius=(7, 9), seed=0)[0]
    big = resize_plane(image[None].astype(np.float32), (256, 256))[0].astype(np.uint16)
    tifffile.imwrite(folder / "big.tif", big)
    return folder


def _entry(out):
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    return next(iter(manifest["files"].values()))


def test_auto_diameter_is_estimated_and_reported(big_nuclei, sized_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["predict", str(big_nuclei), "-o", str(out), "--model", str(sized_model_file), "--quiet"]) == 0
    )
    line = capsys.readouterr().out
    sizing = _entry(out)["object_diameter"]
    assert sizing["source"] == "estimated"
    assert 26 < sizing["object_diameter"] < 42
    assert sizing["scale"] < 0.7
    assert "object diameter" in line
    assert "model trained at 16 px" in line
    labels = tifffile.imread(out / "big_labels.tif")
    assert labels.shape == (256, 256)
    assert labels.max() >= 5


def test_given_and_bad_diameters(big_nuclei, sized_model_file, tmp_path, capsys):
    out = tmp_path / "given"
    args = ["predict", str(big_nuclei), "-o", str(out), "--model", str(sized_model_file), "--quiet"]
    assert main([*args, "--diameter", "32"]) == 0
    assert _entry(out)["object_diameter"]["source"] == "given"
    assert main([*args, "--diameter", "off", "--overwrite"]) == 0
    assert _entry(out)["object_diameter"] is None
    capsys.readouterr()
    assert main([*args, "--diameter", "huge"]) == 2
    assert "'huge' is not valid; give 'auto', 'off' or a diameter in pixels from 2" in capsys.readouterr().err


def test_chunks_of_a_large_image_share_one_estimate(big_nuclei, sized_model_file, tmp_path):
    plane = tifffile.imread(big_nuclei / "big.tif")
    stack = tmp_path / "stack"
    stack.mkdir()
    planes = np.stack([plane, plane[::-1], plane[:, ::-1]])
    tifffile.imwrite(stack / "stack.tif", planes, photometric="minisblack")  # 3 planes, not RGB
    out = tmp_path / "zarr"
    code = main([
        "predict", str(stack), "-o", str(out), "--model", str(sized_model_file), "--quiet",
        "--axes", "ZYX", "--zarr-threshold", "1K", "--chunk-size", "32K",
    ])  # fmt: skip
    assert code == 0
    entry = _entry(out)
    assert entry["chunks"] > 1
    assert entry["object_diameter"]["source"] == "estimated"
    given = tmp_path / "zarr_given"  # a given diameter is recorded for a chunked image too
    code = main([
        "predict", str(stack), "-o", str(given), "--model", str(sized_model_file), "--quiet",
        "--axes", "ZYX", "--zarr-threshold", "1K", "--chunk-size", "32K", "--diameter", "32",
    ])  # fmt: skip
    assert code == 0
    sizing = _entry(given)["object_diameter"]
    assert sizing["source"] == "given"
    assert sizing["object_diameter"] == 32
    assert sizing["scale"] == pytest.approx(0.5)


def test_uncertainty_csv_beside_the_labels(big_nuclei, sized_model_file, tmp_path):
    import csv

    out = tmp_path / "unc"
    args = ["predict", str(big_nuclei), "-o", str(out), "--model", str(sized_model_file), "--quiet"]
    assert main([*args, "--uncertainty"]) == 0
    rows = list(csv.DictReader((out / "big_uncertainty.csv").open()))
    labels = tifffile.imread(out / "big_labels.tif")
    objects = [r for r in rows if r["kind"] == "object"]
    assert sorted(int(r["id"]) for r in objects) == sorted(set(np.unique(labels)) - {0})
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    scores = [float(r["score"]) for r in objects]
    assert scores == sorted(scores, reverse=True)
    assert _entry(out)["uncertainty_csv"] == str(out / "big_uncertainty.csv")
