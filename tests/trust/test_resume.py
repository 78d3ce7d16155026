"""Resume trusts content, not names: only outputs the manifest records as complete with matching size
and SHA-256 are skipped; anything else is redone (our own stale output) or reported and left alone.
Killed runs leave no complete-looking output, and their hidden ``.partial`` files go on the rerun."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_deepseg.batch import MANIFEST_NAME, predict_iter
from napari_deepseg.batch.files import sha256_file
from napari_deepseg.cli import main
from napari_deepseg.models import ModelMeta, build_model, save_model

from .conftest import Workspace, checksums


def _predict(ws: Workspace, *extra: str, inputs=None, out=None) -> int:
    argv = ["predict", str(inputs or ws.images), "-o", str(out or ws.out), "--model", str(ws.model)]
    return main([*argv, "--tile", "64", "--quiet", *extra])


def _summary(capsys) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0], [line for line in captured.err.splitlines() if line.strip()]


def _entry(ws: Workspace, name: str) -> dict:
    manifest = json.loads((ws.out / MANIFEST_NAME).read_text())
    return manifest["files"][str(ws.images / name)]


def test_rerun_skips_only_verified_outputs(ws: Workspace, capsys):
    assert _predict(ws) == 0
    first, _ = _summary(capsys)
    assert first.startswith("2 segmented, 0 skipped")
    entry = _entry(ws, "a0.tif")
    out = ws.out / "a0_labels.tif"
    assert entry["output_size"] == out.stat().st_size
    assert entry["output_sha256"] == checksums(ws.out)["a0_labels.tif"]
    before = checksums(ws.out)
    assert _predict(ws) == 0
    again, _ = _summary(capsys)
    assert again.startswith("0 segmented, 2 skipped")
    after = checksums(ws.out)
    assert after["a0_labels.tif"] == before["a0_labels.tif"]
    assert after["a1_labels.tif"] == before["a1_labels.tif"]


def test_users_own_labels_file_is_reported_not_skipped_nor_overwritten(ws: Workspace, capsys):
    ws.out.mkdir()
    truth = ws.out / "a0_labels.tif"
    truth.write_bytes((ws.labels / "a0_labels.tif").read_bytes())  # a ground-truth mask
    before = checksums(ws.out)
    assert _predict(ws) == 1
    summary, errors = _summary(capsys)
    assert summary.startswith("1 segmented, 0 skipped (already done), 1 failed")
    assert len(errors) == 1
    assert str(truth) in errors[0]
    assert "does not record it" in errors[0]
    assert "--overwrite" in errors[0]
    assert checksums(ws.out)["a0_labels.tif"] == before["a0_labels.tif"]
    assert _entry(ws, "a0.tif")["status"] == "failed"
    assert main(["predict", str(ws.images), "-o", str(ws.out), "--model", str(ws.model), "--quiet",
                 "--tile", "64", "--overwrite"]) == 0  # fmt: skip
    assert checksums(ws.out)["a0_labels.tif"] != before["a0_labels.tif"]


@pytest.mark.parametrize("damage", ["truncate", "flip-bytes", "delete-manifest", "manifest-without-checksum"])
def test_changed_output_is_reported_and_left_alone(ws: Workspace, capsys, damage):
    assert _predict(ws) == 0
    capsys.readouterr()
    out = ws.out / "a0_labels.tif"
    data = out.read_bytes()
    manifest = ws.out / MANIFEST_NAME
    if damage == "truncate":
        out.write_bytes(data[:1000])
    elif damage == "flip-bytes":
        out.write_bytes(data[:-16] + bytes(b ^ 0xFF for b in data[-16:]))
    elif damage == "delete-manifest":
        manifest.unlink()
    else:
        recorded = json.loads(manifest.read_text())
        for entry in recorded["files"].values():
            entry.pop("output_sha256")
        manifest.write_text(json.dumps(recorded))
    before = checksums(ws.out)
    assert _predict(ws) == 1
    summary, errors = _summary(capsys)
    assert " skipped" in summary
    failed = [e for e in errors if str(out) in e]
    assert len(failed) == 1
    assert "--overwrite" in failed[0]
    assert checksums(ws.out)["a0_labels.tif"] == before["a0_labels.tif"], "the changed file was touched"


def test_other_model_redoes_own_outputs(ws: Workspace, capsys):
    assert _predict(ws) == 0
    capsys.readouterr()
    other = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2)
    other.deepseg_meta = ModelMeta(name="other", task="instance-boundary").complete(3)
    path = save_model(ws.root / "other.pt", other)
    argv = ["predict", str(ws.images), "-o", str(ws.out), "--model", str(path), "--tile", "64", "--quiet"]
    assert main(argv) == 0
    assert _summary(capsys)[0].startswith("2 segmented, 0 skipped")
    entry = _entry(ws, "a0.tif")
    assert entry["model_sha256"] == sha256_file(path)
    assert entry["output_sha256"] == sha256_file(ws.out / "a0_labels.tif")


def test_output_folder_equal_to_input_folder_twice(ws: Workspace, capsys):
    assert _predict(ws, out=ws.images) == 0
    assert _summary(capsys)[0].startswith("2 segmented")
    assert _predict(ws, out=ws.images) == 0
    assert _summary(capsys)[0].startswith("0 segmented, 2 skipped")
    assert sorted(p.name for p in ws.images.glob("*_labels*")) == ["a0_labels.tif", "a1_labels.tif"]


def test_killed_run_leaves_no_complete_output_and_rerun_cleans_up(ws: Workspace):
    gen = predict_iter([ws.images], ws.out, model=ws.model, tile=32)
    for event in gen:
        if event.stage == "files":  # the first file is done; stop inside the second
            break
    for event in gen:
        if event.stage == "tiles":
            break
    gen.close()  # what Ctrl-C or a killed worker leaves
    assert (ws.out / "a0_labels.tif").is_file()
    assert not (ws.out / "a1_labels.tif").exists()
    assert not list(ws.out.glob(".*partial*"))
    entry = json.loads((ws.out / MANIFEST_NAME).read_text())["files"]
    assert str(ws.images / "a1.tif") not in entry
    # a process killed hard (no cleanup) leaves hidden temporary files: the rerun removes them
    stale = [ws.out / ".a1_labels.tif.k1ll3d.partial", ws.out / f".{MANIFEST_NAME}.x9.partial"]
    for path in stale:
        path.write_bytes(b"half")
    summary = _drain(predict_iter([ws.images], ws.out, model=ws.model, tile=32))
    assert [p.name for p in summary.done] == ["a1.tif"]
    assert [p.name for p in summary.skipped] == ["a0.tif"]
    assert not any(p.exists() for p in stale)
    assert tifffile.imread(ws.out / "a1_labels.tif").shape == (64, 64)


def _drain(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def test_nan_image_in_a_batch(ws: Workspace, capsys):
    image = tifffile.imread(ws.images / "a0.tif").astype(np.float32)
    image[5:15, 5:15] = np.inf
    image[0, :] = np.nan
    tifffile.imwrite(ws.images / "a0.tif", image)
    tifffile.imwrite(ws.images / "a1.tif", np.full((64, 64), np.nan, np.float32))
    before = ws.snapshot()
    assert _predict(ws) == 1
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "a0.tif" in warnings[0]
    assert "64 NaN and 100 infinite" in warnings[0]
    failed = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert "a1.tif" in failed[0]
    assert "no finite pixel" in failed[0]
    assert not (ws.out / "a1_labels.tif").exists()
    assert "64 NaN" in _entry(ws, "a0.tif")["warnings"][0]
    ws.assert_untouched(before)


def test_train_rerun_removes_a_killed_run_s_partial_files(ws: Workspace, capsys):
    ws.out.mkdir()
    stale = [ws.out / ".m.pt.k1ll3d.partial", ws.out / ".m.pt.ckpt.x7.partial"]
    for path in stale:
        path.write_bytes(b"half a model")
    before = ws.snapshot()
    argv = ["train", "--images", str(ws.images), "--labels", str(ws.labels), "-o", str(ws.out / "m.pt")]
    argv += ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "32"]
    assert main([*argv, "--base-width", "4", "--precision", "fp32", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {ws.out / 'm.pt'}")
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in ws.out.iterdir()) == ["m.pt", "m.pt.ckpt"]
    ws.assert_untouched(before)
