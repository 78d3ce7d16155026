"""A model with a distance output in the Segment widget: Run clicked, its distance map shown, the
live post-processing preview seeded from the distance map."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt

from napari_deepseg._napari.segment_widget import SegmentWidget
from napari_deepseg.models import save_model
from tests._shapes import ideal_distance_model, ideal_maps, touching_discs

WAIT_MS = 60_000


def test_a_distance_model_runs_from_the_widget_and_previews_from_its_map(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    labels = touching_discs()
    image = (labels > 0).astype(np.float32)
    viewer.add_image(image, name="cells")
    model = ideal_distance_model(ideal_maps(labels, boundary_gap=False))  # no boundary where they touch
    choice = widget.models.add(save_model(tmp_path / "dist.pt", model))
    widget.model.value = choice
    widget._remember(choice, model)  # the ideal maps, not a network
    widget.out_probabilities.value = True
    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cells dist probability distance" in viewer.layers, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT_MS)
    assert "cells dist probability boundary" in viewer.layers  # the distance map comes after the classes
    np.testing.assert_allclose(
        viewer.layers["cells dist probability distance"].data, model.ideal.probabilities[3], atol=2e-3
    )
    layer = viewer.layers["cells dist instances"]
    assert layer.data.max() == 2  # split by the distance map, where the classes would merge them
    widget.post.seed_h.value = 0.95  # a dynamic no valley reaches: one seed, one object
    qtbot.waitUntil(lambda: layer.data.max() == 1, timeout=WAIT_MS)
    assert (layer.data > 0).sum() == (labels > 0).sum()
