"""The Batch dock widget runs a tiny batch end to end in a real viewer with a real worker."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_deepseg._napari.batch_widget import FILE_MODEL, BatchWidget
from napari_deepseg.batch import MANIFEST_NAME
from napari_deepseg.models import save_model
from napari_deepseg.samples import synthetic_nuclei


@pytest.fixture
def folders(tmp_path, tiny_unet):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        tifffile.imwrite(src / f"n{i}.tif", synthetic_nuclei((48, 48), seed=i)[0])
    return src, tmp_path / "out", save_model(tmp_path / "tiny.pt", tiny_unet)


def _widget(viewer, folders):
    src, out, model = folders
    widget = BatchWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Batch")
    widget.input_dir.value = src
    widget.output_dir.value = out
    widget.model.value = FILE_MODEL
    widget.model_file.value = model
    return widget


def test_batch_widget_runs_end_to_end(make_napari_viewer, qtbot, folders, progress_log):
    viewer = make_napari_viewer()
    widget = _widget(viewer, folders)
    widget.start()
    assert widget.running
    assert not widget.start_button.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    _, out, _ = folders
    assert widget.summary is not None
    assert widget.summary.exit_code == 0
    assert "2 segmented" in widget.status.value
    assert widget.files_bar.value == 2
    files = progress_log.advanced("Batch: files")
    assert files  # napari's activity panel shows the files done
    assert progress_log.values[id(files[-1])][-1] == 2
    assert progress_log.open() == []
    for i in range(2):
        assert tifffile.imread(out / f"n{i}_labels.tif").shape == (48, 48)
    assert json.loads((out / MANIFEST_NAME).read_text())["runs"][-1]["done"] == 2
    assert widget.start_button.enabled


def test_batch_widget_checks_its_fields(make_napari_viewer, folders, monkeypatch):
    from napari_deepseg._napari import workers

    started = []
    monkeypatch.setattr(workers, "start_worker", lambda *a, **k: started.append(a))
    viewer = make_napari_viewer()
    widget = _widget(viewer, folders)
    widget.output_dir.value = widget.input_dir.value
    widget.start()
    assert "output folder" in widget.status.value
    widget.output_dir.value = folders[1]
    widget.model_file.value = folders[0] / "none.pt"
    widget.start()
    assert "model file" in widget.status.value
    assert started == []
    assert np.isscalar(widget.workers.value)


def test_batch_widget_cancel_keeps_finished_files(make_napari_viewer, qtbot, folders):
    src, out, _ = folders
    for i in range(2, 8):
        tifffile.imwrite(src / f"n{i}.tif", synthetic_nuclei((48, 48), seed=i)[0])
    viewer = make_napari_viewer()
    widget = _widget(viewer, folders)
    seen = []
    widget.start()
    widget._worker.yielded.connect(
        lambda e: e.stage == "files" and not seen and (seen.append(e), widget.cancel())
    )
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    assert widget.summary is None
    assert widget.status.value == "cancelled"
    assert widget.start_button.enabled
    done = sorted(p.name for p in out.glob("*_labels.tif"))
    assert 1 <= len(done) < 8
    assert not list(out.glob(".*partial"))
