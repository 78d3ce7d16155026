"""Render the screenshots of docs/correction.md into docs/images/.

Needs a display (on a headless machine: ``xvfb-run -a python docs/scripts/correction_screenshots.py``).
The scene is the synthetic nuclei sample with a "prediction" that merged two touching nuclei.

    python docs/scripts/correction_screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_deepseg.samples import synthetic_nuclei


def touching_pair(labels: np.ndarray) -> tuple[int, int]:
    """Two objects that touch horizontally, the pair farthest from the image border."""
    a, b = labels[:, :-1], labels[:, 1:]
    touch = (a != b) & (a > 0) & (b > 0)
    pairs = sorted({(int(i), int(j)) for i, j in zip(a[touch], b[touch])})

    def margin(pair: tuple[int, int]) -> float:
        y, x = centre(labels, pair)
        return min(y, x, labels.shape[0] - y, labels.shape[1] - x)

    return max(pairs, key=margin)


def centre(labels: np.ndarray, ids: tuple[int, ...]) -> tuple[float, float]:
    """Centre (y, x) of the given objects together."""
    return tuple(float(c) for c in ndi.center_of_mass(np.isin(labels, ids)))


def main(out: Path) -> None:
    import napari
    import napari._qt.qt_main_window as main_window
    from qtpy.QtWidgets import QApplication

    main_window.SHOW_QT_WARNING = False  # keep the PyQt5 deprecation toast out of the pictures

    out.mkdir(parents=True, exist_ok=True)
    image, truth = synthetic_nuclei((256, 256), seed=7)
    a, b = touching_pair(truth)
    predicted = truth.copy()
    predicted[predicted == b] = a  # the model merged two nuclei

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 850)
    viewer.add_image(image, name="nuclei", colormap="gray")
    labels = viewer.add_labels(predicted, name="nuclei instances", opacity=0.6)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-deepseg", "Correct")
    QApplication.processEvents()

    # 1. seeds on the merged object, the widget docked
    viewer.camera.center = centre(predicted, (a,))
    viewer.camera.zoom = 12
    seeds_yx = [ndi.center_of_mass(truth == i) for i in (a, b)]
    seeds = viewer.add_points(np.array(seeds_yx), name="nuclei instances seeds", face_color="yellow", size=3)
    widget.points.value = seeds
    viewer.layers.selection.active = seeds
    QApplication.processEvents()
    viewer.screenshot(path=str(out / "correct_seeds.png"), canvas_only=False, flash=False)

    # 2. after "Split by seeds": two objects again (canvas only)
    widget.split_by_seeds()
    viewer.layers.selection.active = labels
    viewer.screenshot(path=str(out / "correct_split.png"), canvas_only=True, flash=False)

    # 3. reviewed regions: two rectangles over checked areas, the whole image in view
    viewer.reset_view()
    widget.draw_reviewed()
    shapes = viewer.layers["nuclei instances reviewed"]
    shapes.add_rectangles(np.array([[[0, 0], [127.5, 127.5]], [[150, 130], [255.5, 255.5]]]))
    shapes.mode = "pan_zoom"
    widget.status.value = widget._reviewed_status()
    QApplication.processEvents()
    viewer.screenshot(path=str(out / "correct_reviewed.png"), canvas_only=False, flash=False)
    viewer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "images")
    main(parser.parse_args().out)
