"""``deepseg evaluate`` end to end on small label files written by the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_deepseg.cli import main
from napari_deepseg.errors import DeepsegError
from napari_deepseg.io import pairing_key


def write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, arr)
    else:
        tifffile.imwrite(path, arr)


def squares(shift=0):
    out = np.zeros((32, 32), np.uint16)
    out[2:10, 2 + shift : 10 + shift] = 1
    out[20:28, 20:28] = 2
    return out


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("a.tif", "a"),
        ("a_labels.tif", "a"),
        ("A_mask.png", "a"),
        ("img-1_pred_labels.ome.tif", "img-1"),
        ("labels.tif", "labels"),
        ("cell_gt.npy", "cell"),
    ],
)
def test_pairing_key(name, key):
    assert pairing_key(name) == key


def test_evaluate_table_and_json(tmp_path, capsys):
    truth = squares()
    write(tmp_path / "truth" / "img1.tif", truth)
    write(tmp_path / "truth" / "img2_mask.tif", truth)
    write(tmp_path / "pred" / "img1_labels.tif", truth * 3)  # perfect, other ids
    write(tmp_path / "pred" / "img2.npy", squares(shift=2))  # object 1: IoU 48/80 = 0.6
    out = tmp_path / "scores" / "s.json"
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "img1" in text
    assert "pooled" in text
    report = json.loads(out.read_text())
    img1, img2 = report["images"]
    assert img1["mean_ap"] == 1.0
    assert img2["ap@0.5"] == 1.0
    assert img2["ap@0.75"] == pytest.approx(1 / 3)  # 1 TP, 1 FP, 1 FN
    pooled = report["pooled"]
    assert pooled["ap@0.75"] == pytest.approx(3 / 5)  # TP 3, FP 1, FN 1
    assert pooled["n_true"] == 4
    assert report["mean_over_images"]["ap@0.75"] == pytest.approx((1 + 1 / 3) / 2)
    assert pooled["instance"]["tp"][0] == 4


def test_evaluate_missing_pair_and_shape_mismatch(tmp_path, capsys):
    write(tmp_path / "truth" / "a.tif", squares())
    write(tmp_path / "truth" / "b.tif", squares())
    write(tmp_path / "pred" / "a.tif", squares())
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "b.tif has no prediction" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*args, "--skip-missing", "--quiet"]) == 0
    assert "pooled" in capsys.readouterr().out
    write(tmp_path / "pred" / "b.tif", squares()[:16])
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "shape" in err
    assert "b.tif" in err


def test_evaluate_bad_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--pred", str(tmp_path / "nope"), "--truth", str(tmp_path / "empty")]) == 1
    assert "not found" in capsys.readouterr().err
    write(tmp_path / "t" / "a.tif", squares())
    assert main(["evaluate", "--pred", str(tmp_path / "empty"), "--truth", str(tmp_path / "t")]) == 1
    assert "no label images" in capsys.readouterr().err


def test_train_and_evaluate_pair_files_by_one_rule(tmp_path):
    """Folder evaluation lives in the core and pairs names as deepseg train does."""
    import tifffile

    from napari_deepseg.evaluation.folders import evaluate_folders, pair_files
    from napari_deepseg.training.files import pair_files as train_pairs

    for folder in ("pred", "truth"):
        (tmp_path / folder).mkdir()
    labels = np.zeros((8, 8), np.uint16)
    labels[2:5, 2:5] = 1
    for name in ("Cell01_mask.tif", "cell02_labels.tif"):
        tifffile.imwrite(tmp_path / "truth" / name, labels)
    for name in ("cell01.tif", "CELL02_pred.tif"):
        tifffile.imwrite(tmp_path / "pred" / name, labels)
    keys = [k for k, _, _ in pair_files(tmp_path / "pred", tmp_path / "truth")]
    pairs, unpaired = train_pairs(tmp_path / "pred", tmp_path / "truth")
    assert keys == ["cell01", "cell02"]
    assert [(p.name, t.name) for p, t in pairs] == [
        ("cell01.tif", "Cell01_mask.tif"),
        ("CELL02_pred.tif", "cell02_labels.tif"),
    ]
    assert unpaired == []
    assert evaluate_folders(tmp_path / "pred", tmp_path / "truth")["pooled"]["iou"] == 1.0
    tifffile.imwrite(tmp_path / "pred" / "cell01_pred.tif", labels)  # a second file keyed cell01
    with pytest.raises(DeepsegError, match="both pair as 'cell01'"):
        pair_files(tmp_path / "pred", tmp_path / "truth")
    with pytest.raises(DeepsegError, match="both pair as 'cell01'"):
        train_pairs(tmp_path / "pred", tmp_path / "truth")
