"""Starting model and head replacement for fine-tuning.

Device and precision come from the one policy, :mod:`napari_deepseg.inference.device`
(``resolve_precision(..., mode="training")``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace

from torch import nn

from ..errors import DeepsegError
from ..models import ModelMeta, SegmentationNet, build_model, load_model, model_meta
from ..models.modelfile import PALETTE

DEFAULT_ARCH = {"base": 32, "depth": 4}
#: a new distance model's instance post-processing (tuned per model when it is made)
DISTANCE_POSTPROCESS = {
    "seed_method": "distance",
    "seed_sigma": 1.0,
    "seed_h": 0.2,
    "foreground_threshold": 0.5,
}
DEFAULT_NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8, "scope": "plane"}


def start_model(model_or_path: nn.Module | str | os.PathLike | None) -> tuple[nn.Module | None, str]:
    """A private copy of the starting model (or None to build from scratch) and where it came from."""
    if model_or_path is None:
        return None, "scratch"
    if isinstance(model_or_path, nn.Module):
        model_meta(model_or_path)  # raises if it was not made by build_model
        source = getattr(model_or_path, "deepseg_source", None) or model_meta(model_or_path).name
        model = copy.deepcopy(model_or_path).cpu()
        return model, str(source or "in-memory model")
    model = load_model(model_or_path)
    return model, str(getattr(model, "deepseg_source", model_or_path))


def scratch_model(
    *,
    in_channels: int,
    num_classes: int,
    task: str,
    arch_options: dict | None,
    name: str,
    channel_mode: str | None = None,
    object_diameter: float | None = None,
    boundary_width: int | None = None,
    distance: bool = False,
) -> nn.Module:
    """A new U-Net (``DEFAULT_ARCH`` unless ``arch_options``) with fresh metadata
    (``channel_mode`` default: gray for one input channel, else select); ``distance``: with a
    distance output after the classes (and :data:`DISTANCE_POSTPROCESS`)."""
    options = dict(DEFAULT_ARCH if arch_options is None else arch_options)
    if distance:
        options["extra_outputs"] = 1
    model = build_model("unet", in_channels=in_channels, num_classes=num_classes, **options)
    model.deepseg_meta = ModelMeta(
        name=name or "finetuned",
        task=task,  # type: ignore[arg-type]
        normalization=dict(DEFAULT_NORMALIZATION),
        channel_mode=channel_mode or ("gray" if in_channels == 1 else "select"),
        object_diameter=None if object_diameter is None else float(object_diameter),
        boundary_width=int(boundary_width or 1),
        outputs=["classes", "distance"] if distance else ["classes"],
        postprocess=dict(DISTANCE_POSTPROCESS) if distance else {},
    ).complete(num_classes)
    return model


def grow_head(model: nn.Module, num_classes: int, class_names: list[str] | None = None) -> nn.Module:
    """Give the model ``num_classes`` output classes (in place; returns ``model``).

    Every classifier layer the architecture declares (:class:`~napari_deepseg.models.SegmentationNet`:
    the final convolution, auxiliary heads, FCN's score and upsampling layers) is replaced; the
    weights of the existing classes are copied, so they keep what they learned, and the new
    classes start from PyTorch's default initialisation. Class names and colours are extended.
    """
    meta, arch = model_meta(model), model.deepseg_arch
    old_k = arch.num_classes
    if not isinstance(model, SegmentationNet):
        raise DeepsegError(f"cannot add classes to a {arch.name!r} model (no declared classifier)")
    model.replace_classifier(num_classes)
    model.deepseg_arch = replace(arch, num_classes=num_classes)
    names = list(class_names or [])
    meta.class_names = (
        names
        if len(names) == num_classes
        else [*meta.class_names, *(f"class {i}" for i in range(old_k, num_classes))]
    )
    meta.class_colors = [
        *meta.class_colors[:old_k],
        *(PALETTE[i % len(PALETTE)] for i in range(old_k, num_classes)),
    ]
    model.deepseg_meta = meta
    return model


__all__ = ["grow_head", "scratch_model", "start_model"]
