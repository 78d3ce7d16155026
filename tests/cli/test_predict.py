"""``deepseg predict`` end to end with the real engine and a tiny model file."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from napari_deepseg.batch import MANIFEST_NAME
from napari_deepseg.cli import main


def test_predict_folder_then_resume(image_dir, tmp_path, model_file, capsys):
    out = tmp_path / "out"
    code = main(
        ["predict", str(image_dir), "-o", str(out), "--model", str(model_file), "--tile", "64", "--quiet"]
    )
    assert code == 0
    assert "3 segmented, 0 skipped" in capsys.readouterr().out
    labels = tifffile.imread(out / "a_labels.tif")
    assert labels.shape == (64, 64)
    assert labels.dtype in (np.uint16, np.float32)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["options"]["tile"] == 64
    code = main(["predict", str(image_dir / "*.tif"), "-o", str(out), "--model", str(model_file), "--quiet"])
    assert code == 0
    assert "0 segmented, 3 skipped" in capsys.readouterr().out


def test_predict_corrupt_input_exit_code(image_dir, tmp_path, model_file, capsys):
    (image_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    code = main(
        [
            "predict",
            str(image_dir),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(model_file),
            "--output",
            "classes",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert "3 segmented" in captured.out
    assert f"FAILED {image_dir / 'broken.png'}" in captured.err
    assert tifffile.imread(tmp_path / "out" / "a_labels.tif").max() <= 2


def test_predict_bad_arguments_are_one_line(image_dir, tmp_path, model_file, capsys):
    assert main(["predict", str(image_dir), "-o", str(tmp_path), "--model", str(tmp_path / "x.pt")]) == 1
    assert "not found" in capsys.readouterr().err
    code = main(
        ["predict", str(image_dir), "-o", str(tmp_path), "--model", str(model_file), "--channels", "a"]
    )
    assert code == 2  # a usage error, found before any work
    assert "comma-separated" in capsys.readouterr().err
    args = ["predict", str(image_dir), "-o", str(tmp_path), "--workers", "2", "--scheduler", "tcp://x:1"]
    assert main(args) == 2
    assert "not allowed with argument --workers" in capsys.readouterr().err
