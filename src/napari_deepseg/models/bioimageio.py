"""Reading bioimage.io model packages (spec 0.5; 0.4 packages are converted by ``bioimageio.spec``).

:func:`load_package` (called by ``load_model`` for any ``*.zip`` or ``rdf.yaml`` that is a
bioimage.io package) gives a module the inference engine runs like any other model:

- a package exported by napari-deepseg (``config.napari_deepseg``): the network is rebuilt
  from its architecture and its PyTorch state dict (loaded with ``weights_only=True``), with the
  model file's metadata (classes, normalization, instance post-processing): an exact round trip;
- another tool's 2D semantic-segmentation package: its TorchScript weights run through
  ``bioimageio.core``'s model adapter (:class:`PackagedNetwork`); its preprocessing must map to a
  napari-deepseg normalization and its output must be per-class scores or probabilities.

Anything else gets a :class:`~napari_deepseg.errors.ModelFileError` whose one line says why.
Packages never run Python code from the package: architectures given as source files are refused.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelFileError
from .contract import SegmentationNet, contract_of
from .modelfile import ModelMeta
from .registry import ArchSpec, build_model

CONFIG_KEY = "napari_deepseg"
INPUT_ID = "raw"
OUTPUT_ID = "probabilities"
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")


def build_network(
    name: str, in_channels: int, num_classes: int, options: dict[str, Any] | None = None
) -> nn.Module:
    """The architecture callable named in exported packages (bioimage.io ``pytorch_state_dict``)."""
    return build_model(name, in_channels=in_channels, num_classes=num_classes, **dict(options or {}))


def valid_input_size(net: nn.Module, near: int) -> int:
    """The smallest input side >= ``near`` that ``net`` takes: a multiple of its size multiple
    (and a size its valid-padding layers map exactly)."""
    contract = contract_of(net)
    multiple = int(contract.size_multiple)
    size = -(-int(near) // multiple) * multiple
    while contract.valid_input_size(size) != size:
        size += multiple
    return size


def is_package(path: str | os.PathLike) -> bool:
    """True for a bioimage.io package: a zip with ``rdf.yaml``/``bioimageio.yaml`` at its root,
    such a YAML file itself, or a folder holding one."""
    p = Path(path)
    if p.is_dir():
        return any((p / name).is_file() for name in RDF_NAMES)
    if p.name.endswith(RDF_NAMES) and p.is_file():
        return True
    if p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as archive:
            return any(name in RDF_NAMES for name in archive.namelist())
    return False


def read_description(path: str | os.PathLike) -> Any:
    """The package's ``bioimageio.spec`` model description (latest format), validated offline."""
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_5

    name = Path(path).name
    try:
        descr = load_description(Path(path), format_version="latest")
    except Exception as err:  # YAML syntax, missing members, zip damage: the library's text is not one line
        reason = (
            f"{type(err).__name__}: {_first_line(err)}"
            if "yaml" in type(err).__module__
            else _first_line(err)
        )
        raise ModelFileError(
            f"{name} is not a readable bioimage.io package ({reason[:160]}); re-export or re-download it"
        ) from None
    if isinstance(descr, InvalidDescr):
        errors = descr.validation_summary.errors if descr.validation_summary else []
        first = _reason(errors[0]) if errors else "invalid"
        raise ModelFileError(
            f"{name} is not a valid bioimage.io package ({first[:200]}); re-export or re-download it"
        )
    if not isinstance(descr, v0_5.ModelDescr):
        raise ModelFileError(f"{Path(path).name} describes a {descr.type}, not a model")
    return descr


def load_package(path: str | os.PathLike) -> nn.Module:
    """A module (eval mode, CPU) for the bioimage.io package at ``path``; see the module docstring."""
    path = Path(path)
    descr = read_description(path)
    own = (descr.config.model_extra or {}).get(CONFIG_KEY)
    model = _load_own(path, descr, own) if own else _load_foreign(path, descr)
    model.deepseg_source = str(path)
    return model.eval()


def _load_own(path: Path, descr: Any, config: dict[str, Any]) -> nn.Module:
    weights = descr.weights.pytorch_state_dict
    if weights is None:
        raise ModelFileError(
            f"{path.name} has no PyTorch state-dict weights; re-export it with napari-deepseg"
        )
    arch = config.get("architecture", {})
    try:
        model = build_network(
            arch["name"], int(arch["in_channels"]), int(arch["num_classes"]), arch.get("options")
        )
        data = io.BytesIO(weights.get_reader().read())
        state = torch.load(data, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        meta = ModelMeta.from_dict(config.get("meta", {})).complete(int(arch["num_classes"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(
            f"{path.name}: cannot rebuild its napari-deepseg network ({_first_line(err)})"
        ) from None
    model.deepseg_meta = meta
    return model


def _reason(error: Any) -> str:
    """A validation error in words ("not NoneType" is a file the description names but lacks)."""
    if "not NoneType" in error.msg:
        return "a file it names is missing from the package"
    return f"{'.'.join(map(str, error.loc))}: {error.msg}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


class PackagedNetwork(SegmentationNet, nn.Module):
    """Another tool's bioimage.io network behind napari-deepseg's model contract.

    ``forward`` takes normalized (N, C, h, w) float tensors and returns (N, K, h, w) logits: the
    package's raw output when it ends in a softmax (or has none), ``[0, s]`` per pixel for a
    one-channel output followed by a sigmoid (so that softmax gives the sigmoid). It runs the
    package's weights through ``bioimageio.core``'s adapter on the CPU, one batch at a time.
    """

    def __init__(self, descr: Any, adapter: Any, axes: tuple[str, ...], sigmoid: bool) -> None:
        super().__init__()
        self.descr, self.adapter, self.axes, self.sigmoid = descr, adapter, axes, sigmoid
        self.input_id, self.output_id = str(descr.inputs[0].id), str(descr.outputs[0].id)

    def __deepcopy__(self, memo: dict[int, Any]) -> PackagedNetwork:
        return self  # the adapter holds the loaded weights; copies would share them anyway

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from bioimageio.core import Tensor

        data = x.detach().float().cpu().numpy()
        order = [("batch", "channel", "y", "x").index(a) for a in self.axes]
        tensor = Tensor.from_numpy(np.transpose(data, order), dims=self.axes)
        out = self.adapter.forward({self.input_id: tensor})[self.output_id]
        result = torch.from_numpy(np.ascontiguousarray(out.transpose(("batch", "channel", "y", "x")).data))
        if self.sigmoid:
            result = torch.cat([torch.zeros_like(result), result], dim=1)
        return result.to(x.device)


def _load_foreign(path: Path, descr: Any) -> nn.Module:
    from bioimageio.core import create_model_adapter

    name = path.name
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise ModelFileError(
            f"{name}: {len(descr.inputs)} inputs and {len(descr.outputs)} outputs; only one of each runs here"
        )
    axes, channels, step = _input_layout(name, descr.inputs[0])
    classes, sigmoid = _output_layout(name, descr.outputs[0])
    normalization = _normalization(name, descr.inputs[0].preprocessing, channels)
    if descr.weights.torchscript is None:
        formats = ", ".join(
            f
            for f in ("pytorch_state_dict", "onnx", "keras_hdf5", "tensorflow_saved_model_bundle")
            if getattr(descr.weights, f, None)
        )
        raise ModelFileError(
            f"{name} has no TorchScript weights (only {formats or 'none'}); napari-deepseg runs "
            "TorchScript only (it never runs Python code from a package): ask its authors for TorchScript"
        )
    try:
        adapter = create_model_adapter(descr, weight_format_priority_order=["torchscript"], devices=["cpu"])
    except Exception as err:  # any loader failure: the package cannot run here
        raise ModelFileError(f"{name}: its TorchScript weights do not load ({_first_line(err)})") from None
    model = PackagedNetwork(descr, adapter, axes, sigmoid)
    model.size_multiple, model.output_margin, model.in_channels = step, 0, channels
    model.deepseg_arch = ArchSpec("bioimageio", channels, len(classes), {"package": str(path)})
    model.deepseg_meta = ModelMeta(
        name=str(descr.name),
        description=f"bioimage.io package {name}",
        task="semantic",
        class_names=classes,
        normalization=normalization,
        channel_mode="gray" if channels == 1 else "rgb" if channels == 3 else "select",
        provenance={"bioimageio": name, "authors": [a.name for a in descr.authors]},
    ).complete(len(classes))
    return model


def _input_layout(name: str, tensor: Any) -> tuple[tuple[str, ...], int, int]:
    """Axis order, channel count and size step of a 2D input; one-line errors otherwise."""
    from bioimageio.spec.model import v0_5

    ids = tuple(str(a.id) for a in tensor.axes)
    if sorted(ids) not in (
        ["batch", "channel", "x", "y"],
        ["batch", "x", "y"],
        ["channel", "x", "y"],
        ["x", "y"],
    ):
        raise ModelFileError(
            f"{name}: input axes {','.join(ids)} are not a 2D image (batch, channel, y, x); "
            "only 2D models run here"
        )
    if "batch" not in ids or "channel" not in ids:
        raise ModelFileError(
            f"{name}: input axes {','.join(ids)} lack a batch or channel axis; napari-deepseg needs both"
        )
    channel = next(a for a in tensor.axes if str(a.id) == "channel")
    steps = []
    for axis in tensor.axes:
        if str(axis.id) in "yx":
            size = axis.size
            if not isinstance(size, v0_5.ParameterizedSize):
                raise ModelFileError(
                    f"{name}: input axis {axis.id} has a fixed size; "
                    "only models taking any tile size run here"
                )
            steps.append(max(int(size.step), 1))
    return ids, len(channel.channel_names), max(steps)


def _output_layout(name: str, tensor: Any) -> tuple[list[str], bool]:
    """Class names and whether a one-channel output is read through a sigmoid."""
    ids = tuple(str(a.id) for a in tensor.axes)
    if sorted(ids) != ["batch", "channel", "x", "y"]:
        raise ModelFileError(
            f"{name}: output axes {','.join(ids)} are not per-class maps (batch, channel, y, x)"
        )
    ops = [str(p.id) for p in tensor.postprocessing if str(p.id) != "ensure_dtype"]
    names = list(next(a for a in tensor.axes if str(a.id) == "channel").channel_names)
    if len(names) == 1:
        if ops != ["sigmoid"]:
            raise ModelFileError(
                f"{name}: a one-channel output needs a sigmoid to read as foreground "
                f"(postprocessing: {ops or 'none'})"
            )
        return ["background", str(names[0])], True
    if ops not in ([], ["softmax"]):
        raise ModelFileError(
            f"{name}: output postprocessing {', '.join(ops)} is not a class map (softmax or none); "
            "it cannot run here"
        )
    return [str(n) for n in names], False


def _normalization(name: str, steps: list[Any], channels: int) -> dict[str, Any]:
    """The napari-deepseg normalization equal to the package's preprocessing."""
    ops = [s for s in steps if str(s.id) != "ensure_dtype"]
    if not ops:
        return {"method": "none"}
    if len(ops) == 1 and str(ops[0].id) == "scale_range":
        kw = ops[0].kwargs
        if kw.axes is not None and set(map(str, kw.axes)) == {"y", "x"} and kw.reference_tensor is None:
            return {
                "method": "percentile",
                "low": float(kw.min_percentile),
                "high": float(kw.max_percentile),
                "scope": "plane",
            }
    if len(ops) == 1 and str(ops[0].id) == "fixed_zero_mean_unit_variance":
        kw = ops[0].kwargs
        mean = np.broadcast_to(np.asarray(kw.mean, float), (channels,)).tolist()
        std = np.broadcast_to(np.asarray(kw.std, float), (channels,)).tolist()
        return {"method": "meanstd", "mean": mean, "std": std, "scale": 1.0}
    described = ", ".join(str(s.id) for s in ops)
    raise ModelFileError(
        f"{name}: its preprocessing ({described}) has no napari-deepseg equivalent (percentile per image, "
        "fixed mean/std or none); it cannot run here"
    )
