"""Readable pickers and labelled curves, in real widgets drawn by Qt."""

from __future__ import annotations

import numpy as np
from qtpy.QtGui import QColor

from napari_deepseg._napari.compact import shown_text
from napari_deepseg._napari.curves import CurvesWidget
from napari_deepseg._napari.train_widget import FineTuneWidget
from napari_deepseg.progress import Progress


def test_long_model_names_elide_in_the_middle_with_the_full_name_as_tooltip(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = FineTuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    combo = widget.model.native
    full = max((combo.itemText(i) for i in range(combo.count())), key=len)
    combo.setCurrentIndex(combo.findText(full))
    combo.setFixedWidth(150)  # a narrow dock
    qtbot.wait(20)
    shown = shown_text(combo)
    assert len(full) > 25
    assert shown != full
    assert "\u2026" in shown  # elided in the middle: the start and the end stay
    head, tail = shown.split("\u2026")
    assert full.startswith(head)
    assert full.endswith(tail)
    assert head
    assert tail
    assert combo.toolTip().startswith(full)
    image = combo.grab().toImage()  # Qt paints the field (through the eliding filter) without error
    assert image.width() == 150


def _ink(image, x0, x1, y0, y1) -> int:
    """Pixels drawn in the label colour (light grey text) inside a box of the image."""
    count = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            c = QColor(image.pixel(x, y))
            count += c.red() > 120 and abs(c.red() - c.green()) < 30 and abs(c.green() - c.blue()) < 30
    return count


def test_curve_axes_are_labelled_with_units(qtbot):
    curves = CurvesWidget()
    qtbot.addWidget(curves)
    curves.resize(320, 300)
    curves.setStyleSheet("background: black")
    curves.show()
    curves.add(Progress("epoch", 0, 2, info={"epoch": 0, "val_loss": 1.0, "mean_iou": 0.2, "val_ap50": 0.3}))
    for step in (1, 2, 3, 4):
        curves.add(Progress("step", step, 4, info={"loss": 1.0 / step, "steps_per_epoch": 2}))
    curves.add(Progress("epoch", 1, 2, info={"epoch": 1, "val_loss": 0.5, "mean_iou": 0.4, "val_ap50": 0.5}))
    loss, scores = curves.data.panels
    assert (loss.x_label, loss.y_label) == ("optimizer step", "loss (CE + Dice)")
    assert scores.x_label.startswith("epoch")
    assert "AP@0.5" in scores.y_label
    assert curves.data.ap50.y == [0.3, 0.5]  # AP@0.5 is drawn with the IoUs
    image = curves.grab().toImage()
    half = image.height() // 2
    for top in (0, half):
        assert _ink(image, 0, 14, top + 40, top + half - 40) > 20  # the y label, up the left side
        assert _ink(image, 60, image.width() - 10, top + half - 15, top + half) > 20  # the x label
    assert np.isfinite(curves.data.loss.y).all()


def test_the_classes_follow_the_previewed_objects():
    import numpy as np

    from napari_deepseg._napari.postprocess_controls import following_classes

    classes = np.array([[0, 1, 2], [0, 0, 1]], np.uint8)
    objects = np.array([[0, 3, 3], [4, 4, 0]], np.uint32)
    np.testing.assert_array_equal(following_classes(classes, objects), [[0, 1, 2], [1, 1, 0]])
