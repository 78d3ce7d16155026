"""Held-out validation in instance terms (AP@0.5) and the one-line verdict on the starting model."""

from __future__ import annotations

import numpy as np

from napari_deepseg.cli import main
from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import finetune
from napari_deepseg.training.validation import BETTER_MARGIN, is_new_best, verdict


def _pairs(n=2, size=128):
    return [synthetic_nuclei((size, size), radius=(6, 8), seed=s)[:2] for s in range(n)]


def test_a_wrecked_fine_tune_keeps_the_start_and_says_so(tmp_path):
    result = finetune(
        _pairs(), "nuclei", output=tmp_path / "m.pt", epochs=1, steps_per_epoch=3, lr=3.0,
        patch_size=64, batch_size=2, val_fraction=0.3, precision="fp32",
    )  # fmt: skip
    start, tuned = result.history[0], result.history[1]
    assert start["val_ap50"] > 0.5  # the bundled model finds synthetic nuclei on the held-out strips
    assert tuned["val_ap50"] < start["val_ap50"]
    assert result.best_epoch == 0
    assert result.verdict.startswith("not better than the starting model on the held-out data (AP@0.5")
    assert "Correct more objects" in result.verdict
    assert load_model(tmp_path / "m.pt").deepseg_meta.provenance["verdict"] == result.verdict


def test_held_out_strip_is_never_trained_on_and_scored_in_instances(tmp_path):
    from napari_deepseg.training.config import FinetuneConfig
    from napari_deepseg.training.loop import _prepare

    cfg = FinetuneConfig.from_options(patch_size=48, val_fraction=0.25)
    start = load_model("nuclei")
    start.deepseg_meta.object_diameter = None  # keep the image's own size: the strip's rows are known
    _model, data = _prepare(start, _pairs(1), None, cfg, fresh=True)
    (train,), (val,) = data.train, data.val
    m = (data.in_size - data.out_size) // 2
    strip_rows = 32  # the last quarter of 128 rows
    assert (train.target[m + 128 - strip_rows : m + 128, m : m + 128] == -1).all()
    assert val.labels is not None
    assert val.labels.shape == (strip_rows, 128)


def test_verdict_lines():
    history = [
        {"epoch": 0, "val_ap50": 0.60, "mean_iou": 0.7},
        {"epoch": 1, "val_ap50": 0.72, "mean_iou": 0.75},
    ]
    assert verdict(history, 1) == (
        "better than the starting model on the held-out data: AP@0.5 0.600 -> 0.720 "
        "(epoch 1; better means at least +0.005)"
    )
    tie = [{"epoch": 0, "val_ap50": 0.846}, {"epoch": 1, "val_ap50": 0.846}]
    assert verdict(tie, 1).startswith("not better than the starting model")  # an older run's tie
    assert verdict(tie, 0).startswith("not better than the starting model")
    sparse = [
        {"epoch": 0, "val_ap50": None, "mean_iou": 0.7},
        {"epoch": 1, "val_ap50": None, "mean_iou": 0.6},
    ]
    assert verdict(sparse, 0).startswith("not better than the starting model on the held-out data (mean IoU")
    assert verdict([{"epoch": 1, "val_ap50": 0.7}], 1) is None  # no starting-model score


def _pair_folders(tmp_path) -> None:
    """``_pairs()`` written as ``img/p<i>.tif`` and ``lab/p<i>.tif`` for ``deepseg train``."""
    import tifffile

    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "lab").mkdir(exist_ok=True)
    for i, (image, labels) in enumerate(_pairs()):
        tifffile.imwrite(tmp_path / "img" / f"p{i}.tif", image)
        tifffile.imwrite(tmp_path / "lab" / f"p{i}.tif", labels.astype(np.uint16))


def test_cli_prints_the_verdict(tmp_path, capsys):

    _pair_folders(tmp_path)
    code = main([
        "train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "--from", "nuclei",
        "--epochs", "1", "--lr", "3", "--patch-size", "64", "--batch-size", "2", "--precision", "fp32",
        "-o", str(tmp_path / "m.pt"), "--quiet",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "(best: epoch 0)" in out
    assert "Not better than the starting model on the held-out data" in out


def test_cli_minutes_is_a_time_budget(tmp_path):
    import tifffile

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    image, labels = _pairs(1)[0]
    tifffile.imwrite(tmp_path / "img" / "a.tif", image)
    tifffile.imwrite(tmp_path / "lab" / "a.tif", labels.astype(np.uint16))
    code = main([
        "train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "--base-width", "4",
        "--epochs", "500", "--steps-per-epoch", "10", "--patch-size", "48", "--batch-size", "2",
        "--minutes", "0.02", "--precision", "fp32", "-o", str(tmp_path / "m.pt"), "--quiet",
    ])  # fmt: skip
    assert code == 0
    prov = load_model(tmp_path / "m.pt").deepseg_meta.provenance
    assert prov["config"]["minutes"] == 0.02
    assert prov["steps"] < 500 * 10  # the budget, not the 500 epochs, ended the run
    assert prov["epochs_planned"] < 500


def test_the_best_epoch_rule_needs_the_margin_over_the_start():
    assert BETTER_MARGIN == 0.005
    assert is_new_best(0.2, None, None)  # the first score is the best
    assert not is_new_best(0.846, 0.846, 0)  # a tie keeps the starting model
    assert not is_new_best(0.8499, 0.846, 0)  # below the margin
    assert is_new_best(0.851, 0.846, 0)
    assert not is_new_best(0.851, 0.851, 2)  # a tie between fine-tuned epochs keeps the earlier
    assert is_new_best(0.8511, 0.851, 2)


def stuck_model(path):
    """A tiny instance model that sees background everywhere and cannot learn in a few steps:
    its held-out scores are 0 before and after fine-tuning (a tie)."""
    import torch

    from napari_deepseg.models import ModelMeta, build_model, save_model

    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="stuck", task="instance-boundary").complete(3)
    head = model.classifiers()[0]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([100.0, -100.0, -100.0]))
    return save_model(path, model)


def test_a_tie_is_not_better_and_keeps_the_start(tmp_path, capsys):
    """deepseg train on a model whose held-out score cannot move: 'Not better', the start kept."""
    import torch

    start = stuck_model(tmp_path / "stuck.pt")
    _pair_folders(tmp_path)
    code = main([
        "train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"), "--from", str(start),
        "--epochs", "2", "--steps-per-epoch", "2", "--lr", "1e-6", "--patch-size", "48", "--batch-size", "2",
        "--precision", "fp32", "-o", str(tmp_path / "m.pt"), "--quiet",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "(best: epoch 0)" in out
    assert "Not better than the starting model on the held-out data" in out
    assert "Better than" not in out
    kept, begun = load_model(tmp_path / "m.pt").state_dict(), load_model(start).state_dict()
    assert all(torch.equal(kept[k], begun[k]) for k in begun)  # the starting weights, unchanged


def test_a_run_from_scratch_keeps_its_first_trained_epoch_over_the_random_start():
    assert is_new_best(0.0, 0.0, 0, from_scratch=True)  # trained weights replace a random init
    assert not is_new_best(0.0, 0.0, 0)  # a fine-tune's tie keeps the starting model
    assert not is_new_best(0.5, 0.5, 1, from_scratch=True)  # later ties keep the earlier epoch
