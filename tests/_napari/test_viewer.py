"""A real napari viewer loads every contribution of the manifest."""

from __future__ import annotations

import numpy as np
from npe2 import PluginManifest

MANIFEST = PluginManifest.from_distribution("napari-deepseg")


def test_every_manifest_widget_docks(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-deepseg", "nuclei")
    names = [w.display_name for w in MANIFEST.contributions.widgets or []]
    for name in names:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-deepseg", name)
        assert widget is not None
        dock.raise_()  # docks in one area are tabbed: bring this one to the front
        qtbot.waitUntil(dock.isVisible, timeout=5000)
        assert viewer.window.dock_widgets[f"{name} (napari-deepseg)"] is widget
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3
    assert shot.shape[-1] == 4
    assert shot[..., :3].std() > 0  # something was drawn


def test_sample_data_has_image_and_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepseg", "nuclei")
    kinds = {type(layer).__name__ for layer in viewer.layers}
    assert kinds == {"Image", "Labels"}
    labels = next(layer for layer in viewer.layers if type(layer).__name__ == "Labels")
    assert labels.data.max() > 10
    image = next(layer for layer in viewer.layers if type(layer).__name__ == "Image")
    assert image.data.shape == labels.data.shape
    assert np.corrcoef(image.data.ravel(), labels.data.ravel() > 0)[0, 1] > 0.5


def test_all_tools_fit_a_small_screen_in_one_tabbed_dock(make_napari_viewer, qtbot):
    from napari_deepseg._napari.tools_widget import ToolsWidget
    from napari_deepseg._napari.train_widget import segment_widgets

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1366, 768)
    viewer.open_sample("napari-deepseg", "nuclei")
    tools = ToolsWidget(viewer)
    dock = viewer.window.add_dock_widget(tools, name="DeepSeg tools")
    qtbot.waitUntil(dock.isVisible, timeout=5000)
    assert segment_widgets(viewer) == [tools.segment]  # Fine-tune finds Segment inside the tabs
    tools.batch.status.value = "a very long summary line " * 20  # wraps, never widens the dock
    for index in range(tools.count()):
        tools.setCurrentIndex(index)
        qtbot.wait(20)
        assert dock.minimumSizeHint().height() <= 768 - 100  # each tab scrolls within the window
        assert dock.width() <= 0.45 * 1366
    tools.setCurrentIndex(2)
    qtbot.wait(20)
    assert tools.finetune.curves.width() >= 300
    assert window.width() <= 1366
    assert tools.correct.shortcuts.bound  # the Correct tab's keys are live while the dock is
