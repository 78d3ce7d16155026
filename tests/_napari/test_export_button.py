"""Fine-tune widget: "Export to bioimage.io…" after a real (tiny) training; Segment opens the .zip."""

from __future__ import annotations

import pytest
import torch
from qtpy.QtCore import Qt

from napari_deepseg._napari import segment_widget as sw
from napari_deepseg._napari import train_widget as tw
from napari_deepseg._napari.model_choices import FILE_ENTRY
from napari_deepseg.models import load_model

from .test_train_widget import WAIT_MS, _wait_idle, _widget, model_file, shown, viewer  # noqa: F401

pytest.importorskip("bioimageio.core", reason="bioimageio.core not installed: pip install -e '.[testing]'")


@pytest.mark.slow
def test_export_button_writes_the_trained_model(viewer, qtbot, model_file, tmp_path, shown, monkeypatch):  # noqa: F811
    widget = _widget(viewer, qtbot, model_file, tmp_path, epochs=1)
    assert not widget.export_button.visible  # nothing trained yet
    assert widget.add_pair()
    widget.start()
    _wait_idle(qtbot, widget)
    assert shown["error"] == []
    assert widget.export_button.visible
    target = tmp_path / "shared" / "cells.zip"
    asked = []
    monkeypatch.setattr(
        tw.QFileDialog, "getSaveFileName", lambda *args: asked.append(args[2]) or (str(target), "")
    )
    qtbot.mouseClick(widget.export_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget._export_worker is None and target.exists(), timeout=WAIT_MS)
    assert asked == [str(tmp_path / "finetuned.zip")]  # offered beside the trained model file
    assert shown["error"] == []
    assert any("bioimage.io package written" in msg for msg in shown["info"])
    trained, exported = load_model(tmp_path / "finetuned.pt"), load_model(target)
    for a, b in zip(trained.state_dict().values(), exported.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert exported.deepseg_meta == trained.deepseg_meta

    # the Segment widget's "model file…" picker takes the package
    _, seg = viewer.window.add_plugin_dock_widget("napari-deepseg", "Segment")
    assert "*.zip" in sw.MODEL_FILE_FILTER
    monkeypatch.setattr(sw.QFileDialog, "getOpenFileName", lambda *args: (str(target), ""))
    seg.model.value = FILE_ENTRY
    assert seg.model.value.ref == str(target.resolve())
    seg.image.value = viewer.layers["cells"]
    seg.run()
    qtbot.waitUntil(lambda: not seg.running, timeout=WAIT_MS)
    assert any(layer.name.endswith("classes") and "cells" in layer.name for layer in viewer.layers)
