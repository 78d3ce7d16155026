"""Render docs/images/tools_tabs.png: all four tools in one tabbed dock on a 1366x768 window.

Needs a display (on a headless machine: ``xvfb-run -a python docs/scripts/tools_screenshot.py``).
Segments the sample with the bundled model, selects two objects (outlined on the canvas) and
shows the Correct tab.

    python docs/scripts/tools_screenshot.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_deepseg._napari import guard_triton


def _wait(app, until, timeout: float = 600.0) -> None:
    end = time.time() + timeout
    while not until() and time.time() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "images")
    args = parser.parse_args()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    guard_triton()
    from napari_deepseg._napari.model_choices import ModelChoice
    from napari_deepseg._napari.tools_widget import ToolsWidget

    app = QApplication.instance()
    viewer.open_sample("napari-deepseg", "nuclei")
    tools = ToolsWidget(viewer)
    viewer.window.add_dock_widget(tools, name="DeepSeg tools")
    tools.segment.model.value = ModelChoice("bundled", "nuclei")
    tools.segment.run()
    _wait(app, lambda: not tools.segment.running)
    result = viewer.layers["nuclei (synthetic) nuclei instances"]
    ids, sizes = np.unique(result.data[result.data > 0], return_counts=True)
    tools.correct._set_selection([int(i) for i in ids[np.argsort(-sizes)[:2]]])
    tools.setCurrentIndex(1)
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    args.out.mkdir(parents=True, exist_ok=True)
    from skimage.io import imsave

    imsave(args.out / "tools_tabs.png", shot, check_contrast=False)
    print(f"wrote {args.out / 'tools_tabs.png'} {shot.shape}")
    viewer.close()


if __name__ == "__main__":
    main()
