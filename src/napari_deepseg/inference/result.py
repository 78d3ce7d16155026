"""What a segmentation run returns: :class:`SegmentationResult` and its ``meta``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models.modelfile import described


@dataclass
class SegmentationResult:
    """What :func:`segment` returns.

    Attributes:
        classes: class map, uint8 (K <= 256) or uint16, with the image's non-channel shape.
        instances: uint32 instance labels (same shape, ids unique over the whole stack), or None
            when not asked for or the model is not an instance-boundary model.
        probabilities: float16 (K, *non-channel shape) softmax probabilities, or None.
        run_probabilities: a rescaled run's probabilities on the grid the model ran on
            ((K, *non-channel shape resampled in Y and X), what its instances were made from),
            when ``probabilities`` were asked for; None for a run at the image's own scale,
            whose ``probabilities`` are those.
        axes: the axes of ``classes`` (the image's axes without C).
        meta: model name, task, class names/colours, device, precision, tile, overlap, block,
            ``outputs_stored`` (``"memory"``, or ``"disk"``: the arrays are views of scratch
            files mapped into memory, see :mod:`.outputs`), timing.
    """

    classes: np.ndarray
    instances: np.ndarray | None
    probabilities: np.ndarray | None
    axes: str
    meta: dict[str, Any] = field(default_factory=dict)
    run_probabilities: np.ndarray | None = None


def in_out_axes(result: SegmentationResult, loop: str, out_axes: str) -> SegmentationResult:
    """``result`` with its outputs, on axes ``loop`` + YX (probabilities with K first), transposed
    to the image's ``out_axes`` (a rescaled or window run works plane by plane on loop + YX)."""
    order = [(loop + "YX").index(a) for a in out_axes]
    result.classes = np.transpose(result.classes, order)
    if result.instances is not None:
        result.instances = np.transpose(result.instances, order)
    if result.probabilities is not None:
        result.probabilities = np.transpose(result.probabilities, [0, *(1 + i for i in order)])
    if result.run_probabilities is not None:
        result.run_probabilities = np.transpose(result.run_probabilities, [0, *(1 + i for i in order)])
    result.axes = out_axes
    return result


def run_meta(job: Any, seconds: float) -> dict[str, Any]:
    """A finished run's ``meta``: model, task, classes, device, precision, tiles, blocks, timing."""
    meta = described(job.model)
    return {
        "model": meta.name if meta else type(job.model).__name__,
        "task": meta.task if meta else "semantic",
        "class_names": list(meta.class_names) if meta else [],
        "class_colors": list(meta.class_colors) if meta else [],
        "device": str(job.device),
        "precision": job.precision.name,
        "tile": job.tile,
        "overlap": job.overlap,
        "batch_size": job.runner.batch_size,
        "tta": job.tta,
        "block": None if job.layout is None or job.layout.single else job.layout.block,
        "normalization": job.norm_spec,
        "outputs_stored": job.store.where if job.store is not None else "memory",
        "seconds": seconds,
    }
