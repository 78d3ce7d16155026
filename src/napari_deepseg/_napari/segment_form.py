"""The Segment widget's form fields (magicgui widgets, no handlers): what a person sets for a run.

The option fields take their tooltips (help and unit) from the segmentation options' one
description (:data:`napari_deepseg.inference.options.SPECS`), like the CLI's flags.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, Select, SpinBox

from ..inference.options import DIAMETER_RANGE, MAX_TILE, SPECS


def _tip(name: str, extra: str = "") -> str:
    spec = SPECS[name]
    unit = f" ({spec.unit})" if spec.unit and spec.unit != "bytes" else ""
    return f"{spec.help}{unit}; 0 = {spec.default_text}{extra}"


@dataclass
class SegmentFields:
    """The form's widgets; :meth:`build` makes them and their containers."""

    image: ComboBox
    channel_axis: ComboBox
    channel_note: Label
    channels: Select
    model: ComboBox
    device: ComboBox
    out_classes: CheckBox
    out_instances: CheckBox
    out_probabilities: CheckBox
    out_uncertainty: CheckBox
    diameter: FloatSpinBox
    estimate_button: PushButton
    diameter_note: Label
    replace: CheckBox
    tile: SpinBox
    overlap: SpinBox
    tta: CheckBox
    max_memory: SpinBox
    run_button: PushButton
    cancel_button: PushButton
    status: Label
    form: Container
    advanced_form: Container
    buttons: Container

    @classmethod
    def build(cls, images: Callable[..., Any], models: Callable[..., Any], devices: Mapping[str, bool]):
        """The fields, with ``images`` and ``models`` as the pickers' choice callbacks."""
        source = _source_fields(images, models, devices)
        outputs = _output_fields()
        sizes = _size_fields()
        advanced = _advanced_fields()
        buttons = {"run_button": PushButton(text="Run"), "cancel_button": PushButton(text="Cancel")}
        row = Container(
            label="output", layout="horizontal", labels=False,
            widgets=[outputs["out_classes"], outputs["out_instances"], outputs["out_probabilities"]],
        )  # fmt: skip
        row.margins = (0, 0, 0, 0)  # nested in the form row: its own margins clipped the boxes
        form = Container(widgets=[*source.values(), row, outputs["out_uncertainty"], *sizes.values()])
        form.append(replace := CheckBox(text="replace edited result layers", value=False))
        return cls(
            **source, **outputs, **sizes, replace=replace, **advanced, **buttons, status=Label(value="ready"),
            form=form, advanced_form=Container(widgets=list(advanced.values())),
            buttons=Container(layout="horizontal", labels=False, widgets=list(buttons.values())),
        )  # fmt: skip


def _source_fields(images: Callable[..., Any], models: Callable[..., Any], devices: Mapping[str, bool]):
    return {
        "image": ComboBox(label="image", choices=images, nullable=False),
        "channel_axis": ComboBox(label="channel axis", choices=[("none", None)]),
        "channel_note": Label(value=""),
        "channels": Select(label="channels", choices=[]),
        "model": ComboBox(label="model", choices=models),
        "device": ComboBox(label="device", choices=list(devices), value="auto"),
    }


def _output_fields() -> dict[str, CheckBox]:
    uncertainty = CheckBox(text="uncertainty: what to correct next", value=False)
    uncertainty.tooltip = (
        "an uncertainty image and a list of what to correct next (objects, least certain first)"
    )
    return {
        "out_classes": CheckBox(text="classes", value=True),
        "out_instances": CheckBox(text="instances", value=True),
        "out_probabilities": CheckBox(text="probabilities", value=False),
        "out_uncertainty": uncertainty,
    }


def _size_fields() -> dict[str, Any]:
    diameter = FloatSpinBox(
        label="object diameter px (0 = auto)", min=0, max=DIAMETER_RANGE[1], step=1, value=0
    )
    diameter.tooltip = _tip(
        "object_diameter", "; 'estimate' measures it once and fills this field (the run then reuses it)"
    )
    return {
        "diameter": diameter,
        "estimate_button": PushButton(text="estimate object diameter"),
        "diameter_note": Label(value=""),
    }


def _advanced_fields() -> dict[str, Any]:
    fields = {
        "tile": SpinBox(label="tile px (0 = auto)", min=0, max=MAX_TILE, step=32, value=0),
        "overlap": SpinBox(label="overlap px (0 = auto)", min=0, max=1024, step=8, value=0),
        "tta": CheckBox(text="test-time augmentation (flips)", value=False),
        "max_memory": SpinBox(label="max memory MB (0 = auto)", min=0, max=10**7, step=256, value=0),
    }
    for name, option in (("tile", "tile"), ("overlap", "overlap"), ("max_memory", "max_memory")):
        fields[name].tooltip = _tip(option)
    fields["tta"].tooltip = SPECS["tta"].help
    return fields
