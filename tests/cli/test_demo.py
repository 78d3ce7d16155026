"""``deepseg demo`` end to end with a tiny model file (the bundled model is tested in CI too)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_deepseg.cli import main
from napari_deepseg.models import bundled_models, save_model


def test_demo_writes_labels_and_overlay(tmp_path, tiny_unet, capsys):
    model_file = save_model(tmp_path / "tiny.pt", tiny_unet)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--model", str(model_file), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "objects:" in text
    assert "MPix/s" in text
    labels = tifffile.imread(out / "nuclei_sample_labels.tif")
    image = tifffile.imread(out / "nuclei_sample.tif")
    assert labels.shape == image.shape == (512, 512)
    png = out / "nuclei_sample_overlay.png"
    assert png.stat().st_size > 1000


@pytest.mark.skipif("nuclei" not in bundled_models(), reason="bundled model not shipped")
def test_demo_with_bundled_model_finds_the_nuclei(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    ap = float(text.split("AP@0.5 against the sample's ground truth: ")[1].split()[0])
    assert ap > 0.7, text
    labels = tifffile.imread(tmp_path / "nuclei_sample_labels.tif")
    assert len(np.unique(labels)) > 100


def test_demo_missing_model_is_one_line_error(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path), "--model", str(tmp_path / "nope.pt")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "not found" in err[0]
