"""``deepseg train`` end to end on tiny files, and file pairing by name."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_deepseg.cli import main
from napari_deepseg.errors import DeepsegError
from napari_deepseg.io import pairing_key
from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training.files import pair_files, read_pair


def _write_pairs(tmp_path, n=2, size=48):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(n):
        image, labels = synthetic_nuclei((size, size), seed=10 + i)
        tifffile.imwrite(tmp_path / "img" / f"cell{i}.tif", image)
        tifffile.imwrite(tmp_path / "lab" / f"cell{i}_labels.tif", labels)


def test_pairing_key_tolerates_label_suffixes():
    assert pairing_key("a/cell01.tif") == pairing_key("b/cell01_labels.tif") == "cell01"
    assert pairing_key("Cell01_Mask.png") == "cell01"
    assert pairing_key("x.ome.tif") == pairing_key("x-seg.tiff") == "x"


def test_pair_files_reports_unpaired_and_errors(tmp_path):
    _write_pairs(tmp_path)
    tifffile.imwrite(tmp_path / "img" / "lonely.tif", np.zeros((8, 8), np.uint8))
    pairs, unpaired = pair_files(tmp_path / "img", str(tmp_path / "lab" / "*.tif"))
    assert [p[0].name for p in pairs] == ["cell0.tif", "cell1.tif"]
    assert [p.name for p in unpaired] == ["lonely.tif"]
    pair = read_pair(*pairs[0])
    assert pair.image.shape == pair.labels.shape == (48, 48)
    with pytest.raises(DeepsegError, match="no image files"):
        pair_files(tmp_path / "nothing", tmp_path / "lab")
    with pytest.raises(DeepsegError, match="no image in"):
        pair_files(tmp_path / "img" / "lonely.tif", tmp_path / "lab")


def test_cli_train_end_to_end(tmp_path, capsys):
    _write_pairs(tmp_path)
    out = tmp_path / "model.pt"
    args = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "-o", str(out)]
    args += ["--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "32"]
    args += ["--base-width", "4", "--val-fraction", "0.25", "--precision", "fp32"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mean IoU" in printed
    assert "wrote" in printed
    rows = [line for line in printed.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3  # epochs 0 (starting model), 1, 2
    model = load_model(out)
    assert model.deepseg_meta.provenance["epochs"] == 2
    assert (tmp_path / "model.pt.ckpt").exists()
    # resume a finished run: nothing left to do, same model written again
    assert main([*args, "--resume", str(tmp_path / "model.pt.ckpt")]) == 0


def test_cli_train_makes_a_distance_model_and_predict_uses_its_seeds(tmp_path, capsys):
    _write_pairs(tmp_path)
    out = tmp_path / "dist.pt"
    args = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "-o", str(out)]
    args += ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "32"]
    args += ["--base-width", "4", "--distance", "--distance-weight", "2", "--precision", "fp32"]
    assert main(args) == 0
    model = load_model(out)
    assert model.deepseg_meta.outputs == ["classes", "distance"]
    assert model.deepseg_meta.provenance["config"]["distance_weight"] == 2
    assert main(["predict", str(tmp_path / "img"), "-o", str(tmp_path / "pred"), "--model", str(out)]) == 0
    assert len(list((tmp_path / "pred").glob("*.tif"))) == 2
    capsys.readouterr()
    assert main([*args[:-4], "--distance-weight", "-1"]) == 2  # the option's range, one line
    assert "--distance-weight: give a number in [0, 100]" in capsys.readouterr().err


def test_cli_train_bad_input_is_one_line(tmp_path, capsys):
    _write_pairs(tmp_path, n=1)
    tifffile.imwrite(tmp_path / "lab" / "cell0_labels.tif", np.zeros((48, 48), np.float32))
    code = main(["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "-o", "x.pt"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert last.startswith("deepseg: error: labels of ")
    assert "floating point" in last


def test_cli_train_save_as_writes_into_the_user_models_folder(tmp_path, user_models, capsys):
    _write_pairs(tmp_path)
    args = [
        "train",
        "--images",
        str(tmp_path / "img"),
        "--labels",
        str(tmp_path / "lab"),
        "--save-as",
        "mine",
    ]
    args += ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--patch-size", "32"]
    assert main([*args, "--base-width", "4", "--val-fraction", "0", "--precision", "fp32"]) == 0
    assert (user_models / "mine.pt").is_file()
    assert load_model("mine").deepseg_source == str(user_models / "mine.pt")  # listed by name
    capsys.readouterr()
    assert main(["models"]) == 0
    assert f"your models ({user_models}): mine" in capsys.readouterr().out
    bad = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab")]
    assert main([*bad, "--save-as", "sub/mine"]) == 1
    assert "--save-as 'sub/mine': give a plain name" in capsys.readouterr().err


def test_cli_train_mixes_replay_pairs_and_guards_their_files(tmp_path, capsys):
    _write_pairs(tmp_path)
    old = tmp_path / "old"
    old.mkdir()
    _write_pairs(old, n=1)
    out = tmp_path / "model.pt"
    args = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "-o", str(out)]
    args += ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "32"]
    args += ["--base-width", "4", "--precision", "fp32", "--replay", "0.4"]
    replay = ["--replay-images", str(old / "img"), "--replay-labels", str(old / "lab")]
    assert main([*args, *replay]) == 0
    assert load_model(out).deepseg_meta.provenance["replay"] == {"regions": 1, "share": 0.4}
    capsys.readouterr()
    assert main([*args, "--replay-images", str(old / "img")]) == 1
    assert "--replay-labels together" in capsys.readouterr().err
    target = old / "lab" / "cell0_labels.tif"
    before = target.read_bytes()
    assert main([*args, *replay, "--checkpoint", str(target)]) == 1  # an input: refused up front
    assert "is an input of this run" in capsys.readouterr().err
    assert target.read_bytes() == before
