"""Render the screenshots of docs/usage.md (the Segment widget after a run) into docs/images/.

Needs a display (on a headless machine: ``xvfb-run -a python docs/scripts/segment_screenshots.py``).
The model is the bundled ``nuclei`` model, or ``--model FILE``; where neither exists, a small
U-Net is first trained for a minute on synthetic nuclei (``--train-steps``) so the pictures show
a real result. The scenes are the synthetic nuclei sample (2D) and a 3-plane stack.

    python docs/scripts/segment_screenshots.py [--model nuclei|FILE] [--out docs/images]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_deepseg.models import bundled_models
from napari_deepseg.samples import synthetic_nuclei


def quick_model(path: Path, steps: int) -> Path:
    """Train a small instance-boundary U-Net on synthetic nuclei and save it to ``path``."""
    from napari_deepseg.training import finetune

    pairs = [synthetic_nuclei((256, 256), seed=s) for s in range(100, 104)]
    finetune(
        pairs,
        None,
        arch_options={"base": 16, "depth": 3},
        task="instance-boundary",
        name="nuclei-quick",
        epochs=1,
        steps_per_epoch=steps,
        batch_size=4,
        patch_size=128,
        seed=0,
        output=path,
    )
    return path


def shot(viewer, path: Path) -> None:
    """Save a screenshot of the whole window as a 256-colour PNG (a third of the size)."""
    from PIL import Image

    pixels = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(pixels[..., :3]).quantize(256).save(path, optimize=True)


def wait(app, widget, timeout: float = 600.0) -> None:
    """Process Qt events until the widget's run ends."""
    end = time.monotonic() + timeout
    while widget.running:
        if time.monotonic() > end:
            raise TimeoutError("segmentation did not finish")
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()


def main(model: str, out: Path, train_steps: int) -> None:
    import napari
    import napari._qt.qt_main_window as main_window
    from qtpy.QtWidgets import QApplication

    main_window.SHOW_QT_WARNING = False  # keep the PyQt5 deprecation toast out of the pictures
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="deepseg-shots-"))
    if model == "nuclei" and "nuclei" not in bundled_models():
        model = str(quick_model(tmp / "nuclei-quick.pt", train_steps))

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 850)
    viewer.open_sample("napari-deepseg", "nuclei")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-deepseg", "Segment")
    app = QApplication.instance()
    if model != "nuclei":
        widget.model.value = widget.models.add(model)
    widget.image.value = viewer.layers["nuclei (synthetic)"]
    widget.advanced.expand(animate=False)
    viewer.reset_view()
    app.processEvents()
    shot(viewer, out / "segment_widget.png")

    # 1. a 2D run: classes and instances over the image
    widget.run()
    wait(app, widget)
    viewer.layers[-1].visible = True
    viewer.layers.selection.active = viewer.layers[-1]
    viewer.reset_view()
    app.processEvents()
    shot(viewer, out / "segment_result.png")

    # 2. a stack: the plane slider, the result layer with the source's Z scale
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    stack = np.stack([synthetic_nuclei((256, 256), seed=s)[0] for s in (11, 12, 13)])
    viewer.add_image(stack, name="stack", colormap="gray", scale=(2.0, 1.0, 1.0))
    widget.image.value = viewer.layers["stack"]
    widget.out_classes.value = False
    widget.run()
    wait(app, widget)
    viewer.dims.set_current_step(0, 1)
    viewer.reset_view()
    viewer.status = "Ready"  # not the last hover text of the run
    app.processEvents()
    shot(viewer, out / "segment_stack.png")
    viewer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nuclei", help="bundled model name or model file")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "images")
    parser.add_argument("--train-steps", type=int, default=60, help="steps of the fallback model")
    args = parser.parse_args()
    main(args.model, args.out, args.train_steps)
