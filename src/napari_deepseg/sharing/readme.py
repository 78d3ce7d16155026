"""The package's documentation (README.md): use, training data, accuracy, provenance, instances."""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..models.modelfile import INSTANCE_BOUNDARY, ModelMeta, has_distance
from ..models.registry import ArchSpec

_TRAINING_KEYS = ("data", "train_data", "images", "epochs", "steps", "date", "base_model", "weights")


def _is_metric(key: str) -> bool:
    return "metric" in key or key.endswith(("ap50", "_ap", "accuracy"))


def _provenance_lines(provenance: dict[str, Any]) -> list[str]:
    known = [f"- {key}: {provenance[key]}" for key in _TRAINING_KEYS if key in provenance]
    other = [
        f"- {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}"
        for key, value in provenance.items()
        if key not in _TRAINING_KEYS and key != "command" and not _is_metric(key)
    ]
    return known + other or ["- not recorded in the model file"]


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value if value is not None else "")


def _metric_lines(provenance: dict[str, Any]) -> list[str]:
    """Accuracy figures from the provenance: per-kind tables for ``evaluate``-style results."""
    lines: list[str] = []
    for key, value in provenance.items():
        if not _is_metric(key):
            continue
        rows = value if isinstance(value, dict) else {}
        if rows and all(isinstance(v, dict) and "ap" in v for v in rows.values()):
            lines += [
                f"{key}:",
                "",
                "| images | n | AP@0.5 | mean AP | foreground IoU |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {kind} | {_fmt(v.get('images'))} | {_fmt(v['ap'].get('0.5'))} | "
                f"{_fmt(v.get('mean_ap'))} | {_fmt(v.get('fg_iou'))} |"
                for kind, v in rows.items()
            ]
            lines.append("")
        else:
            lines.append(f"- {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return lines or ["Not recorded in the model file: measure it with `deepseg evaluate` on your data."]


def readme_text(arch: ArchSpec, meta: ModelMeta, command: str | None, license: str) -> str:
    """Markdown for the package's ``documentation`` field."""
    prov = meta.provenance
    made_by = command or prov.get("command") or "not recorded (made through the Python API or napari)"
    classes = ", ".join(f"{i} = {name}" for i, name in enumerate(meta.class_names))
    lines = [
        f"# {meta.name or arch.name}",
        "",
        meta.description or f"{arch.name} network for {meta.task} segmentation, made with napari-deepseg.",
        "",
        "## Model",
        f"- architecture: `{arch.name}` with options `{json.dumps(arch.options)}`, "
        f"{arch.in_channels} input channel(s), {arch.num_classes} classes ({classes})",
        f"- task: `{meta.task}`; input normalization: `{json.dumps(meta.normalization)}`",
        f"- trained on tiles of {prov.get('patch_size') or prov.get('patch') or 'unrecorded'} pixels; "
        f"channel mode `{meta.channel_mode}`",
        f"- license: {license}; exported by napari-deepseg {__version__}",
        "",
        "## Training data",
        *_provenance_lines(prov),
        "",
        "## Measured accuracy",
        *_metric_lines(prov),
        "",
        "## How it was made",
        f"`{made_by}`",
        "",
        "## Using it",
        "- napari-deepseg: `deepseg predict IMAGES -o OUT --model THIS.zip`, or `load_model('THIS.zip')`;",
        "  the network, normalization and instance post-processing are rebuilt exactly.",
        "- any bioimage.io runner (bioimageio.core, deepImageJ, ilastik, QuPath...): input `raw`",
        "  (batch, channel, y, x), output `probabilities` (batch, class, y, x) after a softmax"
        + (" (for this distance model: the raw maps, see Instances)." if has_distance(meta) else "."),
    ]
    if meta.task == INSTANCE_BOUNDARY:
        lines += _instances_section(meta)
    return "\n".join(lines) + "\n"


def _instances_section(meta: ModelMeta) -> list[str]:
    """How instances are rebuilt from the package's output (and, for a distance model, what
    that output holds)."""
    params = json.dumps(meta.postprocess) if meta.postprocess else "the defaults"
    if has_distance(meta):
        return [
            "",
            "## Instances",
            "Classes are background, interior and boundary; a fourth output channel is the",
            "distance map. This package's output holds the network's raw maps: a softmax over",
            "channels 0-2 gives the class probabilities, the sigmoid of channel 3 the distance of",
            "each pixel to its nucleus' edge (divided by the nucleus' largest). Instances are a",
            "watershed of the distance map from its maxima inside the foreground",
            "(P(interior) + P(boundary) above the threshold), with the parameters stored in",
            f"`config.napari_deepseg.instance_postprocessing` ({params}):",
            "`napari_deepseg.inference.instances_from_probabilities(maps, **parameters)`, where",
            "`maps` stacks the 3 class probabilities and the distance map (napari-deepseg does",
            "this itself when it loads the package).",
        ]
    return [
        "",
        "## Instances",
        "Classes are background, interior and boundary. Instances are a seeded watershed of",
        "the interior and boundary probabilities, with the parameters stored in",
        f"`config.napari_deepseg.instance_postprocessing` ({params}):",
        "`napari_deepseg.inference.instances_from_probabilities(probabilities[0], **parameters)`.",
    ]
