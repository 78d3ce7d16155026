"""The input and output tensor descriptions of an exported bioimage.io package: axes and their
sizes, channel names, the preprocessing that reproduces the model file's normalization, and the
output (class probabilities after a softmax, or a distance model's raw maps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..errors import DeepsegError
from ..models.bioimageio import INPUT_ID, OUTPUT_ID, valid_input_size
from ..models.contract import contract_of
from ..models.modelfile import ModelMeta, has_distance, map_names


def output_descr(bio, folder: Path, meta: ModelMeta, space_out: list[Any]):
    """The output tensor: class probabilities (a softmax as postprocessing), or for a model with
    a distance output its raw maps (K class logits, then the distance logit), since one softmax
    over the channel axis cannot describe both."""
    common = dict(
        id=bio.TensorId(OUTPUT_ID),
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=map_names(meta)), *space_out],
        test_tensor=bio.FileDescr(source=folder / "test_output.npy"),
    )
    if has_distance(meta):
        return bio.OutputTensorDescr(
            description=(
                f"logits: channels 0-{len(meta.class_names) - 1} classes (softmax over them), the last "
                "the distance map (sigmoid); see the README"
            ),
            data=bio.IntervalOrRatioDataDescr(type="float32"),
            **common,
        )
    return bio.OutputTensorDescr(
        description="class probabilities (softmax over the channel axis); channel i = class i",
        data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[bio.SoftmaxDescr(kwargs=bio.SoftmaxKwargs(axis=bio.AxisId("channel")))],
        **common,
    )


def input_channel_names(arch, meta: ModelMeta) -> list[str]:
    if arch.in_channels == 1:
        return ["gray"]
    if arch.in_channels == 3 and meta.channel_mode == "rgb":
        return ["red", "green", "blue"]
    return [f"channel{i}" for i in range(arch.in_channels)]


def space_axes(net: nn.Module) -> tuple[list[Any], list[Any]]:
    """y and x input axes sized ``min + n * step`` and output axes of the same size less the margin."""
    from bioimageio.spec.model import v0_5 as bio

    step, margin = int(contract_of(net).size_multiple), int(contract_of(net).output_margin)
    smallest = valid_input_size(net, max(step, 16))
    space_in = [
        bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=smallest, step=step))
        for a in "yx"
    ]
    space_out = [
        bio.SpaceOutputAxis(
            id=bio.AxisId(a),
            size=bio.SizeReference(
                tensor_id=bio.TensorId(INPUT_ID), axis_id=bio.AxisId(a), offset=-2 * margin
            ),
        )
        for a in "yx"
    ]
    return space_in, space_out


def preprocessing(meta: ModelMeta, channels: int) -> list[Any]:
    """The bioimage.io operations that reproduce the model file's normalization."""
    from bioimageio.spec.model import v0_5 as bio

    from ..inference.inputs import check_normalization

    spec = check_normalization(meta.normalization, channels)
    steps: list[Any] = [bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32"))]
    if spec["method"] == "percentile":
        if spec["scope"] != "plane":
            raise DeepsegError("percentile normalization over a whole stack has no bioimage.io equivalent")
        kwargs = bio.ScaleRangeKwargs(
            axes=[bio.AxisId("y"), bio.AxisId("x")], min_percentile=spec["low"], max_percentile=spec["high"]
        )
        steps.append(bio.ScaleRangeDescr(kwargs=kwargs))
    elif spec["method"] == "meanstd":
        scale = spec["scale"]
        kwargs = bio.FixedZeroMeanUnitVarianceAlongAxisKwargs(
            mean=[m * scale for m in spec["mean"]],
            std=[s * scale for s in spec["std"]],
            axis=bio.AxisId("channel"),
        )
        steps.append(bio.FixedZeroMeanUnitVarianceDescr(kwargs=kwargs))
    return steps
