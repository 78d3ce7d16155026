"""The Fine-tune widget's recipe fields (magicgui widgets, no handlers), from the one set of
fine-tuning defaults (:class:`~napari_deepseg.training.FinetuneConfig`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from magicgui.widgets import CheckBox, FileEdit, FloatSpinBox, RadioButtons, SpinBox

from ..training.config import FinetuneConfig


def recipe_fields(defaults: FinetuneConfig) -> dict[str, Any]:
    """The fields by attribute name: epochs, minutes, lr, mode, background_label, corrections,
    reviewed, output, batch_size, patch_size, val_fraction, seed."""
    f = SimpleNamespace()
    f.epochs = SpinBox(label="epochs", min=1, max=1000, value=defaults.epochs)
    f.minutes = FloatSpinBox(label="train for at most (min, 0 = no limit)", min=0, max=10000, value=0)
    f.minutes.tooltip = "a time budget: when it is spent the run ends, validated and saved"
    f.lr = FloatSpinBox(label="learning rate", min=1e-6, max=1.0, step=1e-4, value=defaults.lr)
    f.lr.native.setDecimals(6)
    f.mode = RadioButtons(
        label="labels are", choices=["dense", "sparse"], value="dense", orientation="horizontal"
    )
    f.mode.native.setToolTip("dense: every pixel counts (0 = background); sparse: 0 = not annotated")
    f.background_label = SpinBox(label="background label", min=1, max=65535, value=defaults.background_label)
    f.corrections = FloatSpinBox(label="weight of corrected pixels", min=1.0, max=20.0, step=0.5, value=1.0)
    f.corrections.tooltip = (
        "pixels you corrected in a Segment result (merged, split, deleted, drawn) count this "
        "many times in the loss (1 = like the others)"
    )
    f.reviewed = CheckBox(text="use reviewed regions only", value=False)
    f.reviewed.tooltip = "train only on regions marked as reviewed in the Correct widget"
    f.output = FileEdit(label="save model as", mode="w", filter="*.pt")
    f.batch_size = SpinBox(label="batch size", min=1, max=256, value=defaults.batch_size)
    f.patch_size = SpinBox(label="patch size", min=32, max=2048, step=32, value=defaults.patch_size)
    f.val_fraction = FloatSpinBox(
        label="validation fraction", min=0.0, max=0.5, step=0.05, value=defaults.val_fraction
    )
    f.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=defaults.seed)
    return vars(f)
