"""``segment`` / ``segment_iter``: the public entry of tiled, memory-bounded segmentation.

``segment_iter`` checks its arguments, decides the object size (:mod:`.rescaled`: a model that
records its training object diameter runs the image resampled to it) and drives a
:class:`.job.Job` over the image's planes (tiles, blocks, instances; see :mod:`.job`).
Option checking lives in :mod:`.settings`.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _checks
from ..errors import DeepsegError
from ..models.modelfile import described, makes_instances
from ..progress import Progress, drain
from . import memory
from .gridmap import GridMap
from .inputs import AxesPlan
from .job import DEFAULT_BATCH, OUTPUTS, Job, SegmentationResult
from .outputs import OutputStore
from .rescaled import choose_scale, run_rescaled
from .runner import TileRunner
from .settings import (
    DEFAULT_TILE,
    MIN_TILE,
    POSTPROCESS_KEYS,
    as_array,
    as_model,
    check_block,
    check_tile,
    postprocess_settings,
    stitch_threshold,
)


def segment(image: Any, model: nn.Module | str | os.PathLike, **options: Any) -> SegmentationResult:
    """Segment ``image`` with ``model`` (a module, model file or model name such as ``"nuclei"``).

    The options are those of :func:`segment_iter`; they are checked before any work.
    """
    return drain(segment_iter(image, model, **options))


def segment_iter(
    image: Any,
    model: nn.Module | str | os.PathLike,
    *,
    axes: str | None = None,
    channels: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    outputs: Sequence[str] = ("classes",),
    tta: bool = False,
    min_size: int | None = None,
    stitch_3d: bool | float = False,
    max_memory: int | str | None = None,
    block: int | None = None,
    object_diameter: float | str | None = None,
    postprocess: dict[str, Any] | None = None,
    region: tuple[slice, slice] | None = None,
    plane_normalizers: dict[tuple[int, ...], Any] | None = None,
) -> Generator[Progress, None, SegmentationResult]:
    """Segment an image plane by plane, yielding progress; returns a :class:`SegmentationResult`.

    Args:
        image: numpy, dask or zarr array (anything with shape, dtype and basic indexing).
        model: a 2D segmentation module mapping (N, C_in, h, w) to logits (N, K, h, w), or a
            model file or model name (loaded with ``napari_deepseg.models.load_model``).
        axes: the image's axes over Y, X, C, Z, T in any order ("YX", "YXC", "TCZYX", ...);
            None guesses from the shape.
        channels: image channel indices feeding the model (default: all, mapped by the model's
            channel_mode: RGB -> gray for 1-channel models, gray replicated for 3-channel ones).
        device: "auto" (CUDA, MPS, CPU), "cpu", "cuda", "cuda:N", "mps" or a torch.device.
        precision: "auto", "fp32", "bf16" or "fp16" (see :mod:`.device`; "auto" runs bf16 on
            CPUs with native bf16 only for models whose file records bf16/fp32 agreement >= 99.9%).
        tile: output tile size in pixels (default 512); overlap: pixels shared by neighbouring
            tiles (default tile // 8); batch_size: tiles per forward pass (default 2 CPU, 4 GPU).
        outputs: one or several of "classes", "instances", "probabilities" (classes are always made).
        tta: average the 8 flips/rotations (8x slower).
        min_size: instances with fewer pixels are dropped (default: the model file's
            ``postprocess`` setting, else 16). The model file's other ``postprocess`` settings
            (seed and foreground thresholds) also apply.
        postprocess: overrides of the model file's instance post-processing, any of
            ``foreground_threshold``, ``seed_method``, ``seed_threshold``, ``seed_sigma``,
            ``seed_h``, ``min_size`` (see ``instances_from_probabilities``).
        stitch_3d: join instances of consecutive Z planes by IoU (True = 0.5, or a threshold).
        max_memory: memory the run aims to stay under (bytes or "2G"; default: half the available
            memory, at most 2 GiB); it sets the block size (:mod:`.memory`). Outputs that would
            take more than half of what the limit leaves are kept in scratch files mapped into
            memory (:mod:`.outputs`; ``result.meta["outputs_stored"]`` says ``"disk"``); they
            are ordinary numpy arrays to the caller.
        block: block side in pixels, overriding the memory policy. A plane larger than a block
            (plus its halo) is segmented block by block with halos and joined seams.
        object_diameter: for a model whose file records the object diameter it was trained at
            (``ModelMeta.object_diameter``): None or ``"auto"`` estimates the median diameter of
            the image's objects (:func:`.rescaled.estimate_diameter`), a number gives it in
            pixels, ``"off"`` runs the image at its own scale. The image is resampled so its
            objects match the training size and the outputs are mapped back to the image's
            grid (classes by nearest neighbour, probabilities bilinearly, instances with their
            outlines from the resampled foreground probability: :mod:`.gridmap`);
            ``result.meta["object_diameter"]`` reports the decision.
            A rescaled run holds the resampled image (in memory or, past the memory limit, in
            a scratch file like the outputs). Ignored for other models.
        region: ``(rows, cols)`` slices: segment only these rows and columns of every plane, as
            the whole-image run segments them (its tile grid, resampling and normalization;
            :mod:`.window`), reading only the part of the image they need; the outputs have the
            region's size. Instances are made on the region: give it a halo and keep its core.
        plane_normalizers: with ``region``, the image's per-plane normalizers from
            :func:`region_normalizers` (computed once for many regions of one image; default:
            each call reads the planes in bands to compute them).

    Yields:
        ``Progress("tiles", done, total)`` after each tile batch and ``Progress("planes", done,
        total, info={"index": plane index over the T/Z axes, "classes": 2D map, "instances": 2D
        labels or None})`` after each plane; for a plane run in blocks also
        ``Progress("blocks", done, total, info={"index", "y", "x": the core's slices, "classes",
        "instances": the plane's 2D outputs, filled up to this block})`` after each block.
        Closing the generator cancels within one tile batch.
    """
    model = as_model(model)
    options = dict(
        channels=channels, device=device, precision=precision, tile=tile, overlap=overlap,
        batch_size=batch_size, outputs=outputs, tta=tta, min_size=min_size, stitch_3d=stitch_3d,
        max_memory=max_memory, block=block, postprocess=postprocess,
    )  # fmt: skip
    sizing = _sizing(image, model, axes, object_diameter, options)
    if region is not None:
        result = yield from _run_region(image, model, axes, region, sizing, plane_normalizers, options)
        result.meta["object_diameter"] = sizing
        return result
    if sizing is not None and sizing["scale"] != 1.0:
        plan = AxesPlan.parse(tuple(image.shape), axes)

        store = OutputStore(memory.memory_limit(max_memory), max_memory is not None)

        def inner(scaled: np.ndarray, scaled_axes: str, out_grid: GridMap):
            return _run(scaled, model, scaled_axes, out_grid=out_grid, store=store, **options)

        result = yield from run_rescaled(image, plan, sizing["scale"], inner, store)
        result.meta["object_diameter"] = sizing
        return result
    result = yield from _run(image, model, axes, **options)
    result.meta["object_diameter"] = sizing
    return result


def _sizing(
    image: Any, model: nn.Module, axes: str | None, object_diameter: Any, options: dict[str, Any]
) -> dict[str, Any] | None:
    """The object-size decision (:func:`.rescaled.choose_scale`) after checking the argument."""
    if object_diameter not in (None, "auto", "off") and not (
        isinstance(object_diameter, int | float) and not isinstance(object_diameter, bool)
        and 0 <= object_diameter <= 10000
    ):  # fmt: skip
        raise DeepsegError(
            f"object_diameter must be None, 'auto', 'off' or a diameter in pixels, not {object_diameter!r}"
        )
    meta = described(model)
    if meta is None or not makes_instances(meta):
        return None
    estimate = {"image": image, "axes": axes}
    estimate.update({k: options[k] for k in ("channels", "device", "precision")})
    return choose_scale(model, meta.object_diameter if meta else None, object_diameter, estimate)


def region_normalizers(
    image: Any,
    model: nn.Module | str | os.PathLike,
    *,
    axes: str | None = None,
    channels: Any = None,
    object_diameter: float | str | None = None,
) -> dict[tuple[int, ...], Any] | None:
    """The per-plane normalizers a whole-image run of ``image`` uses (``object_diameter`` as
    ``segment_iter``'s, a number or "off" for speed), for ``segment_iter(region=...,
    plane_normalizers=...)``; None for models whose normalization needs no statistics."""
    from .window import RunGrid, normalizers_for

    model = as_model(model)
    sizing = _sizing(
        image, model, axes, object_diameter, {"channels": channels, "device": "cpu", "precision": "auto"}
    )
    image = as_array(image)
    plan = AxesPlan.parse(tuple(image.shape), axes)
    job = Job.make(image, model, axes, channels, "cpu", "auto", None, None, None, ("classes",))
    run = RunGrid.of(plan, sizing)
    return normalizers_for(image, plan, job, run)


def _run_region(image, model, axes, region, sizing, normalizers, options) -> Generator:
    """segment_iter over ``region`` of each plane (:func:`.window.run_window`)."""
    from .window import RunGrid, check_region, run_window

    image = as_array(image)
    plan = AxesPlan.parse(tuple(image.shape), axes)
    region = check_region(region, (plan.size("Y"), plan.size("X")))
    run = RunGrid.of(plan, sizing)
    job = _job(image, model, axes, plane=run.size, **options)
    return (yield from run_window(image, plan, region, run, job, normalizers))


def _run(image: Any, model: nn.Module, axes: str | None, **options: Any) -> Generator:
    """segment_iter at the image's own scale, or on a resampled image whose instances go on the
    ``out_grid`` (:mod:`.gridmap`; classes and probabilities stay on the run's grid)."""
    return (yield from _job(image, model, axes, **options).run())


def _job(
    image: Any,
    model: nn.Module,
    axes: str | None,
    *,
    channels: Sequence[int] | None,
    device: str | torch.device,
    precision: str,
    tile: int | None,
    overlap: int | None,
    batch_size: int | None,
    outputs: Sequence[str],
    tta: bool,
    min_size: int | None,
    stitch_3d: bool | float,
    max_memory: int | str | None,
    block: int | None,
    postprocess: dict[str, Any] | None,
    out_grid: GridMap | None = None,
    plane: tuple[int, int] | None = None,
    store: OutputStore | None = None,
) -> Job:
    """A checked, configured :class:`.job.Job` (``plane``: the (H, W) its default tile fits;
    ``store``: where its outputs live, shared with a rescaled run's own arrays)."""
    tile = _checks.integer(tile, "tile", optional=True)
    overlap = _checks.integer(overlap, "overlap", optional=True)
    batch_size = _checks.integer(batch_size, "batch_size", minimum=1, optional=True)
    outputs = _checks.names(outputs, "outputs", OUTPUTS)
    min_size = _checks.integer(min_size, "min_size", minimum=0, optional=True)
    job = Job.make(image, model, axes, channels, device, precision, tile, overlap, batch_size, outputs, plane)
    job.tta, job.stitch = bool(tta), stitch_threshold(stitch_3d)
    job.postprocess = postprocess_settings(model, min_size, postprocess)
    job.limit, job.block = memory.memory_limit(max_memory), check_block(block)
    job.out_grid, job.limit_given, job.store = out_grid, max_memory is not None, store
    job.runner = TileRunner(model, job.device, job.precision, job.batch_size, job.tta)
    return job


__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_TILE",
    "MIN_TILE",
    "OUTPUTS",
    "POSTPROCESS_KEYS",
    "SegmentationResult",
    "check_tile",
    "postprocess_settings",
    "region_normalizers",
    "segment",
    "segment_iter",
]
