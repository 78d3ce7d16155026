"""Inputs, output names, manifest, resume and failure handling of the batch (fake engine)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_deepseg import __version__
from napari_deepseg.batch import MANIFEST_NAME
from napari_deepseg.batch.files import output_path, parse_size, sha256_file
from napari_deepseg.errors import DeepsegError
from napari_deepseg.io import expand_inputs
from napari_deepseg.progress import Cancelled, drain

from . import fakes
from .conftest import expected_classes
from .fakes import predict, predict_iter


def test_expand_inputs_files_folders_globs_and_missing(image_dir, tmp_path):
    (image_dir / "notes.txt").write_text("x")
    np.save(tmp_path / "d.npy", np.zeros((8, 8)))
    found, problems = expand_inputs(
        [image_dir, str(tmp_path / "*.npy"), image_dir / "a.tif", tmp_path / "missing.tif", "nomatch*.png"]
    )
    assert [p.name for p in found] == ["a.tif", "b.tif", "c.tif", "d.npy"]
    assert [(p.name, r) for p, r in problems] == [
        ("missing.tif", "not found"),
        ("nomatch*.png", "no image matches this pattern"),
    ]


def test_output_names(tmp_path):
    assert output_path(tmp_path / "x.ome.tif", tmp_path / "o", "tiff").name == "x_labels.tif"
    assert output_path(tmp_path / "y.zarr", tmp_path / "o", "zarr").name == "y_labels.zarr"


def test_same_stem_twice_is_refused(tmp_path, model_file, fake):
    for sub in ("p", "q"):
        (tmp_path / sub).mkdir()
        tifffile.imwrite(tmp_path / sub / "a.tif", np.zeros((16, 16), np.uint8))
    with pytest.raises(DeepsegError, match="separate output folders"):
        predict([tmp_path / "p", tmp_path / "q"], tmp_path / "out", model=model_file, segment_fn=fake)


@pytest.mark.parametrize(("text", "value"), [("512M", 512 * 2**20), ("2G", 2 * 2**30), ("1.5GB", 3 * 2**29)])
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_parse_size_rejects_junk():
    with pytest.raises(DeepsegError, match="512M"):
        parse_size("lots")


def test_batch_writes_labels_and_manifest(image_dir, tmp_path, model_file, fake):
    out = tmp_path / "out"
    events = []
    summary = drain(predict_iter([image_dir], out, model=model_file, segment_fn=fake), events.append)
    assert summary.exit_code == 0
    assert [p.name for p in summary.done] == ["a.tif", "b.tif", "c.tif"]
    for name in "abc":
        labels = tifffile.imread(out / f"{name}_labels.tif")
        assert labels.dtype == np.uint16  # instances of the instance-boundary model, ImageJ type
        assert labels.max() > 0
        assert ((labels > 0) == expected_classes(tifffile.imread(image_dir / f"{name}.tif"))).all()
    files_events = [e for e in events if e.stage == "files"]
    assert [(e.done, e.total) for e in files_events] == [(1, 3), (2, 3), (3, 3)]
    assert any(e.stage == "planes" for e in events)  # the engine's own events pass through
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["package_version"] == __version__
    assert manifest["model"]["sha256"] == sha256_file(model_file)
    assert manifest["options"]["output"] == "instances"
    entry = manifest["files"][str(image_dir / "a.tif")]
    assert entry["status"] == "done"
    assert entry["output"] == str(out / "a_labels.tif")
    assert entry["seconds"] >= 0
    assert entry["shape"] == [64, 64]
    assert entry["axes"] == "YX"
    assert manifest["runs"][-1]["done"] == 3


def test_second_run_skips_completed(image_dir, tmp_path, model_file, fake):
    out = tmp_path / "out"
    predict([image_dir], out, model=model_file, segment_fn=fake)
    fakes.CALLS.clear()
    summary = predict([image_dir], out, model=model_file, segment_fn=fake)
    assert len(summary.skipped) == 3
    assert not summary.done
    assert fakes.CALLS == []
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert len(manifest["runs"]) == 2
    assert manifest["runs"][-1]["skipped"] == 3
    redo = predict([image_dir], out, model=model_file, segment_fn=fake, overwrite=True)
    assert len(redo.done) == 3


def test_other_output_mode_is_redone(image_dir, tmp_path, model_file, fake):
    out = tmp_path / "out"
    predict([image_dir], out, model=model_file, segment_fn=fake)
    summary = predict([image_dir], out, model=model_file, segment_fn=fake, output="classes")
    assert len(summary.done) == 3
    assert tifffile.imread(out / "a_labels.tif").max() == 1


def test_half_written_output_is_not_complete(image_dir, tmp_path, model_file, fake):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a_labels.tif.x1.partial").write_bytes(b"half")  # a crash mid-write leaves this
    gen = predict_iter([image_dir], out, model=model_file, segment_fn=fake)
    with pytest.raises(Cancelled):  # cancelled in the middle of the second file
        drain(gen, should_stop=lambda: len(fakes.CALLS) >= 2)
    assert (out / "a_labels.tif").exists()
    assert not (out / "b_labels.tif").exists()
    summary = predict([image_dir], out, model=model_file, segment_fn=fake)
    assert [p.name for p in summary.skipped] == ["a.tif"]
    assert [p.name for p in summary.done] == ["b.tif", "c.tif"]


def test_corrupt_input_is_reported_and_skipped(image_dir, tmp_path, model_file, fake):
    (image_dir / "bad.tif").write_bytes(b"II*\x00not a tiff at all")
    summary = predict([image_dir, tmp_path / "gone.png"], tmp_path / "out", model=model_file, segment_fn=fake)
    assert summary.exit_code == 1
    failed = {p.name: reason for p, reason in summary.failed}
    assert set(failed) == {"bad.tif", "gone.png"}
    assert "cannot read" in failed["bad.tif"]
    assert len(summary.done) == 3
    text = summary.text()
    assert "3 segmented" in text
    assert f"FAILED {image_dir / 'bad.tif'}" in text
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert manifest["files"][str(image_dir / "bad.tif")]["status"] == "failed"


def test_engine_error_fails_file_not_batch(image_dir, tmp_path, model_file):
    summary = predict([image_dir], tmp_path / "out", model=model_file, segment_fn=fakes.failing_segment_iter)
    assert len(summary.failed) == 3
    assert summary.failed[0][1] == "RuntimeError: boom"
    assert not list((tmp_path / "out").glob("*.tif"))


def test_probabilities_and_bad_output(image_dir, tmp_path, model_file, fake):
    predict(
        [image_dir / "a.tif"], tmp_path / "out", model=model_file, segment_fn=fake, output="probabilities"
    )
    with tifffile.TiffFile(tmp_path / "out" / "a_labels.tif") as tif:
        assert tif.series[0].axes == "CYX"
        assert tif.asarray().dtype == np.float32
    with pytest.raises(DeepsegError, match="choose one of"):
        predict([image_dir], tmp_path / "out", model=model_file, output="blobs")


def test_missing_model_and_no_inputs(image_dir, tmp_path, model_file):
    with pytest.raises(DeepsegError, match="not found"):
        predict([image_dir], tmp_path / "out", model=tmp_path / "none.pt")
    with pytest.raises(DeepsegError, match="no input images"):
        predict([tmp_path / "nothing"], tmp_path / "out", model=model_file)
