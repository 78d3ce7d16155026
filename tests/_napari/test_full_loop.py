"""The whole loop a biologist runs, in one real viewer, with real key and mouse events.

sample -> Segment (bundled model) -> Correct: merge, split, delete with the keys on the canvas
-> mark the view reviewed -> Fine-tune 1 epoch on the reviewed region -> Re-segment with the new
model; no error notification at any step.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity, notification_manager
from qtpy.QtCore import QPoint, Qt
from scipy import ndimage as ndi

from napari_deepseg._napari.model_choices import ModelChoice
from napari_deepseg._napari.tools_widget import ToolsWidget

WAIT_MS = 240_000
SHIFT = Qt.KeyboardModifier.ShiftModifier


def _canvas(viewer):
    return viewer.window._qt_viewer.canvas.native


def _pixel(viewer, yx) -> QPoint:
    native = _canvas(viewer)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    offset = (np.asarray(yx, float) - np.asarray(camera.center[-2:], float)) * camera.zoom
    return QPoint(round(native.width() / 2 + offset[1]), round(native.height() / 2 + offset[0]))


def _errors() -> list[str]:
    return [str(n.message) for n in notification_manager.records if n.severity >= NotificationSeverity.ERROR]


def _innermost(labels: np.ndarray, label_id: int) -> tuple[int, int]:
    dist = ndi.distance_transform_edt(labels == label_id)
    return tuple(int(c) for c in np.unravel_index(np.argmax(dist), labels.shape))


@pytest.mark.slow
def test_sample_segment_correct_finetune_resegment(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    viewer.open_sample("napari-deepseg", "nuclei")
    tools = ToolsWidget(viewer)
    viewer.window.add_dock_widget(tools, name="DeepSeg tools")
    notification_manager.records.clear()

    # Segment with the bundled model
    seg = tools.segment
    seg.image.value = viewer.layers["nuclei (synthetic)"]
    seg.model.value = ModelChoice("bundled", "nuclei")
    qtbot.mouseClick(seg.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not seg.running, timeout=WAIT_MS)
    result = viewer.layers["nuclei (synthetic) nuclei instances"]
    assert viewer.layers.selection.active is result
    assert tools.correct.labels.value is result  # Correct follows the new result
    viewer.reset_view()
    qtbot.wait(50)

    # the visible area's biggest objects
    data = np.asarray(result.data)
    ids, sizes = np.unique(data[data > 0], return_counts=True)
    a, b, c = (int(i) for i in ids[np.argsort(-sizes)[:3]])
    ya, yb, yc = _innermost(data, a), _innermost(data, b), _innermost(data, c)
    canvas = _canvas(viewer)

    # merge a and b with shift-clicks and Shift-M
    for point in (ya, yb):
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, SHIFT, _pixel(viewer, point))
    assert tools.correct.selection == [a, b]
    qtbot.keyClick(canvas, Qt.Key.Key_M, SHIFT)
    assert not (result.data == b).any()

    # split them again with two seeds and Shift-S
    qtbot.keyClick(canvas, Qt.Key.Key_S, SHIFT)
    seeds = tools.correct.points.value
    seeds.data = np.array([ya, yb])
    viewer.layers.selection.active = result
    qtbot.keyClick(canvas, Qt.Key.Key_S, SHIFT)
    assert result.data[ya] != result.data[yb]

    # delete c under the cursor with Shift-D
    viewer.cursor.position = tuple(float(v) for v in yc)
    qtbot.keyClick(canvas, Qt.Key.Key_D, SHIFT)
    assert result.data[yc] == 0

    # mark the view reviewed
    qtbot.keyClick(canvas, Qt.Key.Key_R, SHIFT)
    assert result.metadata.get("deepseg_reviewed") is not None

    # fine-tune 1 epoch on the reviewed region
    fit = tools.finetune
    tools.setCurrentIndex(2)  # the Fine-tune tab
    fit.image.value = viewer.layers["nuclei (synthetic)"]
    fit.labels.value = result
    qtbot.mouseClick(fit.add_button.native, Qt.MouseButton.LeftButton)
    fit.model.value = ModelChoice("bundled", "nuclei")
    fit.epochs.value, fit.batch_size.value, fit.patch_size.value = 1, 2, 64
    fit.reviewed.value = True
    fit.output.value = tmp_path / "mine.pt"
    qtbot.mouseClick(fit.start_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not fit.running, timeout=WAIT_MS)
    assert (tmp_path / "mine.pt").is_file()

    # re-segment with the new model
    assert not fit.resegment_button.native.isHidden()
    qtbot.mouseClick(fit.resegment_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not seg.running, timeout=WAIT_MS)
    assert "nuclei (synthetic) mine instances" in viewer.layers
    assert _errors() == []
