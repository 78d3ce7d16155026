"""Render docs/images/finetune_widget.png: the Fine-tune widget after a short run.

Needs a display (on a headless machine: ``xvfb-run -a python docs/scripts/finetune_screenshot.py``).
Trains a small U-Net (base 8, depth 2) for a few epochs on the synthetic nuclei sample, so the
curves show real numbers; takes about a minute on 2 CPU cores.

    python docs/scripts/finetune_screenshot.py [--out docs/images] [--epochs 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_deepseg._napari import guard_triton
from napari_deepseg.models import ModelMeta, build_model, save_model
from napari_deepseg.samples import synthetic_nuclei


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "images")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    viewer = napari.Viewer(show=False)
    guard_triton()
    from napari_deepseg._napari.train_widget import FineTuneWidget

    image, labels = synthetic_nuclei((192, 192), seed=3)
    viewer.add_image(image, name="nuclei")
    viewer.add_labels(labels, name="nuclei corrected")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model("unet", in_channels=1, num_classes=3, base=8, depth=2)
        model.deepseg_meta = ModelMeta(name="small", task="instance-boundary").complete(3)
        widget = FineTuneWidget(viewer)
        widget.model.value = widget.add_model_file(save_model(Path(tmp) / "small.pt", model))
        widget.add_pair()
        widget.epochs.value = args.epochs
        widget.lr.value = 3e-3
        widget.batch_size.value, widget.patch_size.value = 4, 64
        widget.val_fraction.value, widget.device.value = 0.25, "cpu"
        widget.output.value = Path(tmp) / "nuclei-finetuned.pt"
        widget.resize(420, 760)
        widget.show()
        widget.start()
        while widget.running:
            QApplication.processEvents()
            time.sleep(0.05)
        QApplication.processEvents()
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "finetune_widget.png"
        widget.grab().save(str(path))
        print(f"wrote {path}")
    viewer.close()


if __name__ == "__main__":
    main()
