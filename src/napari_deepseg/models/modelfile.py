"""Self-describing model files: weights + architecture + classes + task + normalization + provenance.

A model file is a ``torch.save`` of a dict holding only plain types and tensors::

    {"format": "napari-deepseg-model", "schema_version": 1,
     "architecture": {"name", "in_channels", "num_classes", "options"},
     "meta": "<JSON of ModelMeta>", "state_dict": {name: tensor}}

It is read with ``torch.load(weights_only=True)``: loading never runs code.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .. import __version__
from .._files import atomic_path, guard_output
from .._torchfile import load_torch_file
from ..errors import ModelFileError
from .registry import ArchSpec, build_model

# the two tasks a model file names; only instance-boundary models can give instances
SEMANTIC = "semantic"
INSTANCE_BOUNDARY = "instance-boundary"
TASKS = (SEMANTIC, INSTANCE_BOUNDARY)
FORMAT = "napari-deepseg-model"
#: the newest schema this code reads and writes. Schema 2 adds ``object_diameter`` and the
#: ``"gray-hed"`` channel mode; schema 3 adds ``outputs`` (a distance output). A file is written
#: with the oldest schema that describes it, so older napari-deepseg versions keep reading the
#: files they can use (and refuse a newer one with "upgrade").
SCHEMA_VERSION = 3
#: the maps a model may output, in this order: ``"classes"`` (K logits, always) and
#: ``"distance"`` (one logit: sigmoid = each object pixel's distance to its object's edge,
#: divided by the object's largest, 0 on background; instance-boundary models)
OUTPUT_KINDS = ("classes", "distance")
#: channel modes this code understands (see :class:`ModelMeta`)
CHANNEL_MODES = ("gray", "rgb", "select", "gray-hed")

PALETTE = [
    "#000000",
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
    "#ffd8b1",
    "#000075",
    "#808080",
    "#ffe119",
]


@dataclass
class ModelMeta:
    """Everything needed to use a model's weights.

    Attributes:
        name: short name shown in pickers.
        description: one line.
        task: ``"semantic"`` (class map) or ``"instance-boundary"`` (classes background,
            interior, boundary; instances by seeded watershed).
        class_names: K names, index 0 = background.
        class_colors: K hex colours (index 0 is drawn transparent in napari).
        normalization: ``{"method": "percentile", "low": 1.0, "high": 99.8, "scope": "plane"}``
            or ``{"method": "meanstd", "mean": [...], "std": [...], "scale": 255.0}``.
        channel_mode: how image channels feed the model: ``"gray"`` (1 input; RGB averaged),
            ``"rgb"`` (3 inputs; gray replicated), ``"select"`` (the user picks C_in channels)
            or ``"gray-hed"`` (1 input: gray images and colourless RGB averaged, colour RGB as
            its hematoxylin optical density, for H&E histology;
            :func:`napari_deepseg.inference.inputs.hematoxylin_or_gray`).
        object_diameter: the median object diameter (pixels, equivalent-circle diameter) the
            model was trained at, or None when it was trained at the images' own scale. When
            set, :func:`~napari_deepseg.inference.segment` rescales an image so its objects
            have this size (estimated unless given) and maps the labels back.
        boundary_width: instance-boundary models: the width in pixels of the boundary rim the
            model was trained to predict (:func:`napari_deepseg.training.labels.boundary_targets`),
            so that fine-tuning makes the same targets. Inference does not depend on it, which
            is why a file that sets it stays readable by code that predates it (that code
            fine-tunes with a 1-pixel rim).
        bf16_agreement: measured fraction (0..1) of validation pixels whose bf16-autocast class
            equals the fp32 class, or None when not measured. ``precision="auto"`` runs the model
            in bf16 on CPUs with native bf16 only when it is at least 0.999 (see
            :mod:`napari_deepseg.inference.device`); the provenance says where it was measured.
        postprocess: instance post-processing settings for instance-boundary models, any of
            ``seed_method``, ``seed_threshold``, ``seed_sigma``, ``seed_h``,
            ``foreground_threshold`` and ``min_size`` (see
            ``napari_deepseg.inference.instances_from_probabilities``); tuned on validation data
            when the model is made, overridable per call.
        outputs: the maps the network gives, in order (:data:`OUTPUT_KINDS`): ``["classes"]``
            (K logits) or ``["classes", "distance"]`` (K logits, then a distance logit; the
            architecture's ``extra_outputs`` is then 1).
        provenance: training data, epochs, metrics, date, package version.
    """

    name: str = ""
    description: str = ""
    task: Literal["semantic", "instance-boundary"] = SEMANTIC  # one of TASKS
    class_names: list[str] = field(default_factory=list)
    class_colors: list[str] = field(default_factory=list)
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"method": "percentile", "low": 1.0, "high": 99.8, "scope": "plane"}
    )
    channel_mode: str = "gray"
    bf16_agreement: float | None = None
    object_diameter: float | None = None
    boundary_width: int = 1
    postprocess: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=lambda: ["classes"])

    def complete(self, num_classes: int) -> ModelMeta:
        """Fill class names and colours up to ``num_classes`` (returns self)."""
        if not self.class_names:
            if self.task == INSTANCE_BOUNDARY and num_classes == 3:
                self.class_names = ["background", "interior", "boundary"]
            else:
                self.class_names = ["background"] + [f"class {i}" for i in range(1, num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")
        if len(self.class_colors) != num_classes:
            self.class_colors = [PALETTE[i % len(PALETTE)] for i in range(num_classes)]
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def model_meta(model: nn.Module) -> ModelMeta:
    """The model's :class:`ModelMeta`, or a new default one (completed) when it has none.

    Reading never changes the model: a default is not attached (assign ``model.deepseg_meta``
    to keep changes to it; :func:`save_model` does).
    """
    meta = getattr(model, "deepseg_meta", None)
    if meta is None:
        arch = _arch_of(model)
        meta = ModelMeta(name=arch.name).complete(arch.num_classes)
    return meta


def makes_instances(model_or_meta: nn.Module | ModelMeta | None) -> bool:
    """Whether the model can give instances: the one rule (an instance-boundary model).

    Takes a model (a plain module without metadata cannot), its :class:`ModelMeta` or None.
    """
    meta = model_or_meta if isinstance(model_or_meta, ModelMeta | None) else described(model_or_meta)
    return meta is not None and meta.task == INSTANCE_BOUNDARY


def has_distance(model_or_meta: nn.Module | ModelMeta | None) -> bool:
    """Whether the model (or its :class:`ModelMeta`) has a distance output after its classes."""
    meta = model_or_meta if isinstance(model_or_meta, ModelMeta | None) else described(model_or_meta)
    return meta is not None and "distance" in meta.outputs


def map_names(meta: ModelMeta) -> list[str]:
    """Names of the maps of a result's ``probabilities``: the class names, then ``"distance"``."""
    return [*meta.class_names, *meta.outputs[1:]]


def described(model: nn.Module) -> ModelMeta | None:
    """:func:`model_meta` for a model made by ``build_model`` or ``load_model``; None for a plain module."""
    return model_meta(model) if getattr(model, "deepseg_arch", None) is not None else None


def _arch_of(model: nn.Module) -> ArchSpec:
    arch = getattr(model, "deepseg_arch", None)
    if arch is None:
        raise ValueError("this model was not made by build_model(); cannot describe it in a file")
    return arch


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    meta: ModelMeta | None = None,
    half: bool = False,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically (temporary file, then rename).

    Args:
        path: destination file, ``*.pt`` (the output guard refuses other suffixes).
        model: a module made by :func:`build_model` or :func:`load_model`.
        meta: metadata; defaults to the model's own (``model.deepseg_meta``).
        half: store floating-point weights as float16 (half the size; loaded back as float32).
        overwrite: replace an existing file (else refused, and nothing is written).
    """
    guard_output(path, what="model file", suffixes=(".pt",), overwrite=overwrite)
    arch = _arch_of(model)
    meta = (meta or model_meta(model)).complete(arch.num_classes)
    meta.provenance.setdefault("package_version", __version__)
    state = {
        k: (v.detach().to("cpu", torch.float16) if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "schema_version": schema_of(meta),
        "architecture": arch.to_dict(),
        "meta": json.dumps(asdict(meta)),
        "state_dict": state,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    model.deepseg_meta = meta
    return path


def schema_of(meta: ModelMeta) -> int:
    """The oldest schema that can describe ``meta`` (3 with a distance output, 2 when it uses a
    schema-2 field, else 1)."""
    if list(meta.outputs) != ["classes"]:
        return 3
    return 2 if meta.object_diameter is not None or meta.channel_mode == "gray-hed" else 1


def read_model_file(path: Path) -> dict[str, Any]:
    """Read and validate a model file's payload without building the model."""
    payload = load_torch_file(path, "model file", "re-save it with save_model or re-download it")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(
            f"{path} is not a napari-deepseg model file (no '{FORMAT}' header); "
            "convert plain state dicts with save_model(path, build_model(...), meta)"
        )
    version = payload.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{path} uses model-file schema {version}, newer than this napari-deepseg "
            f"({__version__}, schema {SCHEMA_VERSION}) reads; upgrade napari-deepseg"
        )
    return payload


def load_model_file(path: Path) -> nn.Module:
    """Load the model file ``path`` into a module in eval mode on the CPU.

    The module carries ``model.deepseg_meta`` (:class:`ModelMeta`), ``model.deepseg_arch`` and
    ``model.deepseg_source``. Names of bundled, ready and user models are resolved by
    :func:`napari_deepseg.models.load_model` (in :mod:`.catalog`). Raises
    :class:`~napari_deepseg.errors.ModelFileError` with a one-line reason on any problem.
    """
    payload = read_model_file(path)
    arch = payload["architecture"]
    try:
        model = build_model(
            arch["name"],
            in_channels=int(arch["in_channels"]),
            num_classes=int(arch["num_classes"]),
            **dict(arch.get("options", {})),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: cannot rebuild its architecture ({_first_line(err)})") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, KeyError) as err:
        raise ModelFileError(
            f"{path}: weights do not fit architecture {arch['name']!r} ({_first_line(err)})"
        ) from None
    try:
        meta = ModelMeta.from_dict(json.loads(payload.get("meta") or "{}"))
        model.deepseg_meta = meta.complete(int(arch["num_classes"]))
    except (ValueError, TypeError) as err:
        raise ModelFileError(f"{path}: unreadable metadata ({_first_line(err)})") from None
    _check_meta(path, model.deepseg_meta)
    if getattr(model, "extra_outputs", 0) != len(model.deepseg_meta.outputs) - 1:
        raise ModelFileError(
            f"{path}: its network gives {getattr(model, 'extra_outputs', 0)} map(s) after the classes but "
            f"its outputs say {model.deepseg_meta.outputs}; fix or re-save the file"
        )
    model.deepseg_source = str(path)
    return model.eval()


def _check_meta(path: Path, meta: ModelMeta) -> None:
    """One-line ModelFileError for metadata values this version cannot use."""
    if meta.channel_mode not in CHANNEL_MODES:
        raise ModelFileError(
            f"{path}: channel mode {meta.channel_mode!r} is unknown to napari-deepseg {__version__} "
            f"(it knows {', '.join(CHANNEL_MODES)}); upgrade napari-deepseg"
        )
    outputs = list(meta.outputs) if isinstance(meta.outputs, list | tuple) else None
    if (
        not outputs
        or outputs[0] != "classes"
        or not set(outputs) <= set(OUTPUT_KINDS)
        or len(set(outputs)) != len(outputs)
    ):
        raise ModelFileError(
            f"{path}: outputs {meta.outputs!r} are not ones napari-deepseg {__version__} knows "
            f'("classes", then optionally "distance"); upgrade napari-deepseg or fix the file'
        )
    w = meta.boundary_width
    if not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 8:
        raise ModelFileError(
            f"{path}: boundary_width {w!r} is not a rim width in pixels (1 to 8); fix or re-save the file"
        )
    d = meta.object_diameter
    if d is not None and (not isinstance(d, int | float) or not 1 <= d <= 10000):
        raise ModelFileError(
            f"{path}: object_diameter {d!r} is not a diameter in pixels (1 to 10000); fix or re-save the file"
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
