"""``segment`` / ``segment_iter``: the public entry of tiled, memory-bounded segmentation.

``segment_iter`` checks its arguments, decides the object size (:mod:`.rescaled`: a model that
records its training object diameter runs the image resampled to it) and drives a
:class:`.job.Job` over the image's planes (tiles, blocks, instances; see :mod:`.job`).
Option checking lives in :mod:`.settings`.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import numpy as np
from torch import nn

from ..models.modelfile import described, makes_instances
from ..progress import Progress, drain
from . import memory
from .gridmap import GridMap
from .inputs import AxesPlan
from .job import DEFAULT_BATCH, Job, SegmentationResult
from .options import OUTPUTS, SegmentOptions, make_options
from .outputs import OutputStore
from .rescaled import WHOLE_PLANE, WholePlane, choose_scale, estimates, run_rescaled
from .runner import TileRunner
from .settings import (
    DEFAULT_TILE,
    MIN_TILE,
    POSTPROCESS_KEYS,
    as_array,
    as_model,
    check_tile,
    postprocess_settings,
)


def segment(
    image: Any,
    model: nn.Module | str | os.PathLike,
    *,
    axes: str | None = None,
    options: SegmentOptions | None = None,
    **changes: Any,
) -> SegmentationResult:
    """Segment ``image`` with ``model`` (a module, model file or model name such as ``"nuclei"``).

    The arguments are those of :func:`segment_iter`; they are checked before any work.
    """
    return drain(segment_iter(image, model, axes=axes, options=options, **changes))


def segment_iter(
    image: Any,
    model: nn.Module | str | os.PathLike,
    *,
    axes: str | None = None,
    options: SegmentOptions | None = None,
    region: tuple[slice, slice] | None = None,
    plane_normalizers: dict[tuple[int, ...], Any] | None = None,
    **changes: Any,
) -> Generator[Progress, None, SegmentationResult]:
    """Segment an image plane by plane, yielding progress; returns a :class:`SegmentationResult`.

    Args:
        image: numpy, dask or zarr array (anything with shape, dtype and basic indexing).
        model: a 2D segmentation module mapping (N, C_in, h, w) to logits (N, K, h, w), or a
            model file or model name (loaded with ``napari_deepseg.models.load_model``).
        axes: the image's axes over Y, X, C, Z, T in any order ("YX", "YXC", "TCZYX", ...);
            None guesses from the shape (the one axes rule, :func:`.axes.guess_axes`).
        options: a :class:`~.options.SegmentOptions` (default: all defaults).
        **changes: options given by name, applied over ``options`` (``tile=256``,
            ``outputs=("classes", "instances")``, ``object_diameter=24``, ...): channels, device,
            precision, tile, overlap, batch_size, outputs, tta, min_size, stitch_3d, max_memory,
            block, object_diameter, postprocess. Their defaults, ranges and units are
            :class:`~.options.SegmentOptions`'s; sizes are in pixels of ``image``.
            ``object_diameter`` (models whose file records the object diameter they were
            trained at): None or "auto" estimates it, a number gives it, "off" runs the image
            at its own scale; the image is resampled so its objects match the training size
            and the outputs are mapped back to its grid (:mod:`.gridmap`);
            ``result.meta["object_diameter"]`` reports the decision. Outputs that would take
            more than half of what ``max_memory`` leaves are kept in scratch files mapped
            into memory (``result.meta["outputs_stored"] == "disk"``).
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
    opts = make_options(options, **changes)
    model = as_model(model)
    whole = None if region is not None else _whole_plane(image, model, axes, opts)
    sizing = _sizing(image, model, axes, opts, whole)
    if region is not None:
        result = yield from _run_region(image, model, axes, region, sizing, plane_normalizers, opts)
    elif whole is not None and whole.result is not None and sizing is not None and sizing["scale"] == 1.0:
        result = _reused(whole.result, opts.outputs)
    elif sizing is not None and sizing["scale"] != 1.0:
        plan = AxesPlan.parse(tuple(image.shape), axes)
        store = OutputStore(memory.memory_limit(opts.max_memory), opts.limit_given)
        scaled_opts = opts.at_scale(sizing["scale"])

        def inner(scaled: np.ndarray, scaled_axes: str, out_grid: GridMap):
            return _job(scaled, model, scaled_axes, scaled_opts, out_grid=out_grid, store=store).run()

        result = yield from run_rescaled(image, plan, sizing["scale"], inner, store)
    else:
        result = yield from _job(image, model, axes, opts).run()
    result.meta["object_diameter"] = sizing
    return result


def object_size(
    image: Any,
    model: nn.Module | str | os.PathLike,
    *,
    axes: str | None = None,
    options: SegmentOptions | None = None,
    **changes: Any,
) -> dict[str, Any] | None:
    """THE OBJECT-SIZE DECISION a run of ``image`` makes (``options.object_diameter``: estimate,
    given or off): None for models without a training object diameter, else ``{"model_diameter",
    "object_diameter" (pixels of ``image``, None when no objects were found), "source",
    "scale"}`` (:func:`.rescaled.choose_scale`). A later run reuses it by passing
    ``object_diameter=decision["object_diameter"]`` (or ``"off"`` when it is None)."""
    return _sizing(image, as_model(model), axes, make_options(options, **changes))


def _sizing(
    image: Any, model: nn.Module, axes: str | None, opts: SegmentOptions, whole: WholePlane | None = None
) -> dict[str, Any] | None:
    """The object-size decision (:func:`.rescaled.choose_scale`), made once per run; ``whole``:
    the run at scale 1 the estimate may make and measure (:func:`_whole_plane`)."""
    meta = described(model)
    if meta is None or not makes_instances(meta):
        return None
    estimate = {"image": image, "axes": axes, "channels": opts.channels, "device": opts.device}
    estimate.update(precision=opts.precision, whole=whole)
    return choose_scale(model, meta.object_diameter, opts.object_diameter, estimate, segment)


def _whole_plane(image: Any, model: nn.Module, axes: str | None, opts: SegmentOptions) -> WholePlane | None:
    """For an estimated object size on one small plane (at most :data:`.rescaled.WHOLE_PLANE`
    pixels), the run at scale 1 with ``opts`` (instances added) that the estimate measures and a
    run decided at scale 1 reuses; else None."""
    meta = described(model)
    if meta is None or not makes_instances(meta) or not estimates(meta.object_diameter, opts.object_diameter):
        return None
    plan = AxesPlan.parse(tuple(image.shape), axes)
    if plan.loop_axes or plan.size("Y") * plan.size("X") > WHOLE_PLANE:
        return None
    outputs = tuple(dict.fromkeys((*opts.outputs, "instances")))
    return WholePlane(
        lambda: segment(image, model, axes=axes, options=opts.replace(object_diameter="off", outputs=outputs))
    )


def _reused(result: SegmentationResult, outputs: tuple[str, ...]) -> SegmentationResult:
    """The estimate's run at scale 1 as this run's result, with only the ``outputs`` asked for."""
    if "instances" not in outputs:
        result.instances = None
    return result


def region_normalizers(
    image: Any,
    model: nn.Module | str | os.PathLike,
    *,
    axes: str | None = None,
    options: SegmentOptions | None = None,
    **changes: Any,
) -> dict[tuple[int, ...], Any] | None:
    """The per-plane normalizers a whole-image run of ``image`` uses (with ``options``' object
    diameter: give the decided one, a number or "off", so no estimate runs here), for
    ``segment_iter(region=..., plane_normalizers=...)``; None for models whose normalization
    needs no statistics."""
    from .window import RunGrid, normalizers_for

    opts = make_options(options, **changes).replace(device="cpu", outputs=("classes",))
    model = as_model(model)
    sizing = _sizing(image, model, axes, opts)
    image = as_array(image)
    plan = AxesPlan.parse(tuple(image.shape), axes)
    job = Job.make(image, model, axes, opts)
    return normalizers_for(image, plan, job, RunGrid.of(plan, sizing))


def _run_region(image, model, axes, region, sizing, normalizers, opts: SegmentOptions) -> Generator:
    """segment_iter over ``region`` of each plane (:func:`.window.run_window`)."""
    from .window import RunGrid, check_region, run_window

    image = as_array(image)
    plan = AxesPlan.parse(tuple(image.shape), axes)
    region = check_region(region, (plan.size("Y"), plan.size("X")))
    run = RunGrid.of(plan, sizing)
    scale = 1.0 if sizing is None else sizing["scale"]
    job = _job(image, model, axes, opts.at_scale(scale), plane=run.size)
    return (yield from run_window(image, plan, region, run, job, normalizers))


def _job(
    image: Any,
    model: nn.Module,
    axes: str | None,
    opts: SegmentOptions,
    *,
    out_grid: GridMap | None = None,
    plane: tuple[int, int] | None = None,
    store: OutputStore | None = None,
) -> Job:
    """A configured :class:`.job.Job` (``plane``: the (H, W) its default tile fits; ``store``:
    where its outputs live, shared with a rescaled run's own arrays)."""
    job = Job.make(image, model, axes, opts, plane)
    job.postprocess = postprocess_settings(model, opts.min_size, opts.postprocess)
    job.out_grid, job.store = out_grid, store
    job.runner = TileRunner(model, job.device, job.precision, job.batch_size, job.tta)
    return job


__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_TILE",
    "MIN_TILE",
    "OUTPUTS",
    "POSTPROCESS_KEYS",
    "SegmentOptions",
    "SegmentationResult",
    "check_tile",
    "object_size",
    "postprocess_settings",
    "region_normalizers",
    "segment",
    "segment_iter",
]
