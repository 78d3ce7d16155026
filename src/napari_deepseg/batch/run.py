"""The batch generator: :func:`predict_iter` drives the CLI, the napari widget and the tests.

For each input it writes ``OUT_DIR/<stem>_labels.tif`` or, above ``zarr_threshold``, an
OME-Zarr store ``OUT_DIR/<stem>_labels.zarr`` filled chunk by chunk. It yields
``Progress("files", done, total)`` after each file, ``Progress("chunks", ...)`` within large
files and, in-process, the engine's own ``"tiles"``/``"planes"`` events; it returns a
:class:`BatchSummary`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import FileSet, check_writable_dir, guard_output, remove_partials
from ..errors import DeepsegError
from ..inference.device import resolve_device
from ..inference.engine import check_tile
from ..inference.memory import batch_sizes, memory_limit
from ..inference.options import SegmentOptions, make_options
from ..io import OmeZarrLabelsWriter, expand_inputs, is_complete, labels_beside, read_image
from ..io.physical import physical_sizes
from ..models import class_count
from ..progress import Progress
from . import dask as dask_backend
from .files import (
    Manifest,
    check_outputs_not_inputs,
    check_unique_outputs,
    output_path,
    parse_size,
)
from .options import (
    BatchSummary,
    check_uncertainty,
    model_ref,
    policy_sizes,
    resolve_output,
)
from .state import InputJob, RunContext, failure_reason
from .work import (
    Options,
    image_normalization,
    image_sizing,
    plan_chunks,
    run_chunk_task,
    run_file_task,
    segment_chunk_iter,
    segment_file_iter,
)

OUTPUTS = ("auto", "classes", "instances", "probabilities")
__all__ = ["OUTPUTS", "BatchSummary", "predict_iter"]


def predict_iter(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model: str | os.PathLike = "nuclei",
    output: str = "auto",
    axes: str | None = None,
    options: SegmentOptions | None = None,
    zarr_threshold: int | str | None = None,
    chunk_bytes: int | str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    overwrite: bool = False,
    uncertainty: bool = False,
    **changes: Any,
) -> Generator[Progress, None, BatchSummary]:
    """Segment every image of ``inputs`` into ``out_dir``, resumably.

    Args:
        inputs: files, folders (their images) and glob patterns.
        out_dir: output folder (created); holds the outputs and ``deepseg_manifest.json``.
        model: a model file or the name of a bundled model.
        output: ``"instances"`` (instance-boundary models), ``"classes"``, ``"probabilities"``
            or ``"auto"`` (instances where the model predicts boundaries, else classes).
        axes: the inputs' axes (letters of TZCYX, e.g. ``"ZYX"``); default: each file's own.
        options: the segmentation options (:class:`~napari_deepseg.inference.SegmentOptions`);
            ``**changes`` set any of them by name (``tile=``, ``device=``, ``max_memory=``,
            ``object_diameter=``, ...). ``max_memory`` is what each process aims to stay under;
            it sets the defaults of ``zarr_threshold`` and ``chunk_bytes`` and the block size
            (:mod:`napari_deepseg.inference.memory`), all recorded in the manifest.
            ``object_diameter`` None estimates each image's (recorded per file in the manifest).
        zarr_threshold: inputs larger than this (bytes or ``"2G"``) are read lazily, segmented
            chunk by chunk and written as OME-Zarr (default: from the memory limit, per input).
        chunk_bytes: input bytes per chunk of a large image (default: from the memory limit).
        workers: run on a new LocalCluster of this many processes (127.0.0.1).
        scheduler: run on an existing dask cluster (``tcp://HOST:PORT``).
        client: run on this existing ``distributed.Client``.
        overwrite: redo inputs whose outputs are complete.
        uncertainty: also write ``<stem>_uncertainty.csv`` beside each image's labels: its
            objects and possible misses ranked from the least certain
            (:mod:`napari_deepseg.inference.uncertainty`); instance models, images held in memory.

    Returns:
        A :class:`BatchSummary`. Failed inputs are recorded and skipped, never raised.
    """
    seg = make_options(options, **changes)
    if output not in OUTPUTS:
        raise DeepsegError(f"output {output!r} unknown; choose one of {', '.join(OUTPUTS)}")
    t_start = time.perf_counter()
    out = check_writable_dir(out_dir, "output folder")
    sizes = {
        "zarr_threshold": None if zarr_threshold is None else parse_size(zarr_threshold),
        "chunk_bytes": None if chunk_bytes is None else parse_size(chunk_bytes),
    }
    sources, problems, manifest = _inputs(inputs, out)
    ref, mdl = model_ref(model)  # before anything is created: a failed load leaves no folder
    opts = _run_options(seg, output, axes, uncertainty, mdl)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [manifest.path] + [output_path(s, out, "tiff") for s in sources]:
        remove_partials(stale)  # a killed run's hidden temporary files
    record = {**opts.record(), **sizes, "workers": workers, "scheduler": scheduler}
    manifest.start_run({"name": ref.name, "path": ref.path, "sha256": ref.sha256}, record)
    summary = BatchSummary(manifest=manifest.path)
    ctx = RunContext(ref, opts, manifest, summary, sizes["chunk_bytes"], limit_given=seg.limit_given)
    ctx.num_classes = class_count(mdl) or 3
    ctx.zarr_threshold = sizes["zarr_threshold"]
    for path, reason in problems:
        ctx.record(path, None, "failed", reason)
    jobs = yield from _plan(sources, out, ctx, overwrite)
    if client is not None:
        yield from _run_distributed(client, jobs, ctx)
    elif workers is not None or scheduler is not None:
        with dask_backend.open_client(workers, scheduler) as new_client:
            yield from _run_distributed(new_client, jobs, ctx)
    else:
        yield from _run_in_process(jobs, ctx)
    summary.seconds = time.perf_counter() - t_start
    manifest.finish_run(
        {"done": len(summary.done), "skipped": len(summary.skipped), "failed": len(summary.failed)}
    )
    return summary


def _inputs(inputs: Sequence[str | os.PathLike], out: Path) -> tuple[list[Path], list, Manifest]:
    """The input images (less this folder's own outputs), the inputs that cannot be read and
    why, and the output folder's manifest; refuses outputs that collide or land on inputs."""
    sources, problems = expand_inputs(inputs)
    manifest = Manifest.load(out)
    sources = _without_outputs(sources, manifest)
    if not sources and problems:
        raise DeepsegError(
            f"no input images: {problems[0][0]}: {problems[0][1]}; give image files, folders or glob patterns"
        )
    check_unique_outputs(sources, out)
    check_outputs_not_inputs(sources, out)
    return sources, problems, manifest


def _run_options(
    seg: SegmentOptions, output: str, axes: str | None, uncertainty: bool, model: Any
) -> Options:
    """The options every unit of work runs with: the memory limit and the block it gives made
    explicit; what depends on the model (output, tile, uncertainty) checked before any work."""
    limit = memory_limit(seg.max_memory)
    output = resolve_output(output, model)
    block = seg.block or policy_sizes(limit, 1, model, output, seg.limit_given).block
    check_tile(model, seg.tile, seg.overlap)
    resolve_device(seg.device)
    seg_run = seg.replace(block=block, max_memory=limit)  # units of work run under this limit
    return Options(output, seg_run, axes and axes.upper(), check_uncertainty(uncertainty, model))


def _without_outputs(sources: list[Path], manifest: Manifest) -> list[Path]:
    """Drop inputs that this output folder's manifest records as outputs (``-o`` = input folder)."""
    outputs = {str(Path(p).resolve()) for p in manifest.recorded_outputs()}
    return [s for s in sources if str(s.resolve()) not in outputs]


def _sizes(ctx: RunContext, shape: tuple[int, ...], axes: str, dtype: np.dtype) -> tuple[int, int]:
    """(zarr threshold, chunk bytes) for an input: the options given, else the memory policy's."""
    channels = dict(zip(axes, shape)).get("C", 1)
    policy = batch_sizes(
        ctx.opts.segment.max_memory,
        dtype.itemsize * channels,
        ctx.num_classes,
        ctx.opts.output == "instances",
        limit_given=ctx.limit_given,
    )
    threshold = policy.zarr_threshold if ctx.zarr_threshold is None else ctx.zarr_threshold
    return threshold, policy.chunk_bytes if ctx.chunk_bytes is None else ctx.chunk_bytes


def _plan(sources, out, ctx: RunContext, overwrite: bool):
    """Probe every input (header only), decide output kind and skip; yields ``"scan"`` events."""
    jobs: list[InputJob] = []
    inputs = FileSet(sources)  # every output is guarded against every input: identities once
    for i, src in enumerate(sources):
        try:
            image, guessed = read_image(src, lazy=True)
            axes = ctx.opts.axes or guessed
            if len(axes) != len(image.shape):
                raise DeepsegError(f"axes {axes!r} do not fit shape {tuple(image.shape)}; fix --axes")
            dtype = np.dtype(image.dtype)
            zarr_threshold, chunk_bytes = _sizes(ctx, tuple(image.shape), axes, dtype)
            kind = "zarr" if int(np.prod(image.shape)) * dtype.itemsize > zarr_threshold else "tiff"
            beside = labels_beside(src, f"{ctx.ref.name}_{ctx.opts.output}")
            if beside is not None and ctx.opts.output != "probabilities":  # OME-Zarr in: labels go in it
                kind = "zarr"
            else:
                beside = None
            job = InputJob(src, beside or output_path(src, out, kind), kind, tuple(image.shape), dtype, axes)
            job.chunk_bytes = chunk_bytes
        except Exception as err:  # unreadable input: recorded as failed, the batch goes on
            ctx.record(src, None, "failed", failure_reason(err))
            job = None
        yield Progress("scan", i + 1, len(sources), message=src.name)
        if job is None:
            continue
        action, reason = (
            ("run", None)
            if overwrite
            else ctx.manifest.resume_decision(src, job.dst, kind, ctx.ref.sha256, ctx.opts.output)
        )
        if action == "skip":
            old = ctx.manifest.files[str(src)]
            kept = {k: old[k] for k in ("output_size", "output_sha256") if k in old}
            ctx.record(src, job, "skipped", extra=kept)
        elif action == "refuse":
            ctx.record(src, job, "failed", f"{reason}; move it away or rerun with --overwrite to replace it")
        elif (problem := _guard(job, inputs)) is not None:
            ctx.record(src, job, "failed", problem)
        else:
            jobs.append(job)
    ctx.files_total = len(jobs)
    return jobs


def _guard(job: InputJob, sources: FileSet) -> str | None:
    """The output guard (:func:`~napari_deepseg._files.guard_output`) on a TIFF output the resume
    rules let this run write (a new file, one this folder's manifest records, or --overwrite):
    never onto an input, a ``.tif`` name, a writable place. None when it may be written, else
    the one-line reason. (OME-Zarr stores resume chunk by chunk under the manifest's rules.)"""
    if job.kind != "tiff":
        return None
    try:
        guard_output(
            job.dst, what="labels output", suffixes=(".tif", ".tiff"), inputs=sources, ours=(job.dst,)
        )
    except DeepsegError as err:
        return str(err)
    return None


def _create_store(job: InputJob, ctx: RunContext) -> set[int]:
    """Create the OME-Zarr output of a large input, or resume its unfinished store made for the
    same plan; returns the indices of the chunks already written."""
    spatial = job.axes.replace("C", "")
    if spatial[-2:] != "YX":
        raise DeepsegError(f"axes {job.axes!r}: Y and X must be the last spatial axes for chunked output")
    shape = [n for n, a in zip(job.shape, job.axes) if a != "C"]
    output, k = ctx.opts.output, ctx.num_classes
    if output == "probabilities":
        dtype, shape, spatial = np.float16, [k, *shape], "C" + spatial
    elif output == "instances":
        dtype = np.uint64 if int(np.prod(shape)) >= 2**32 else np.uint32
    else:
        dtype = np.uint8 if k <= 256 else np.uint16
    plan = {"options": ctx.opts.record(), "chunk_bytes": job.chunk_bytes}
    attrs = {"source": str(job.src), "model": ctx.ref.name, "model_sha256": ctx.ref.sha256, "output": output}
    if is_complete(job.dst):  # complete but redone (--overwrite, other model): replace it
        shutil.rmtree(job.dst)
    scale, units = physical_sizes(job.src)  # carried over from OME-Zarr, OME-TIFF or ImageJ inputs
    writer = OmeZarrLabelsWriter(
        job.dst,
        shape,
        dtype,
        spatial,
        attrs={**attrs, "plan": plan},
        scale=scale,
        units=units,
        image_label=output != "probabilities",
        resume=True,
    )
    return writer.done_chunks()


def _chunks(job: InputJob, ctx: RunContext):
    halo = ctx.opts.segment.halo  # the one halo rule (blocks use the same)
    return plan_chunks(job.shape, job.axes, job.dtype.itemsize, job.chunk_bytes, halo)


def _prepare_chunks(job: InputJob, ctx: RunContext) -> tuple[set[int], Options, dict[str, Any] | None]:
    """A large input's output store and chunk plan (``job.chunks``) and the options its chunks
    run with (one object-size decision, the planes' normalizers for the chunks still to run);
    returns (chunks already written, options, object-size decision)."""
    done = _create_store(job, ctx)
    job.chunks = _chunks(job, ctx)
    opts, sizing = image_sizing(job.src, job.axes, ctx.ref, ctx.opts)
    todo = [c for c in job.chunks if c.index not in done]
    return done, image_normalization(job.src, job.axes, ctx.ref, opts, todo), sizing


def _run_in_process(jobs: list[InputJob], ctx: RunContext):
    for job in jobs:
        t0 = time.perf_counter()
        try:
            if job.kind == "tiff":
                job.info = yield from segment_file_iter(job.src, job.dst, ctx.ref, ctx.opts)
            else:
                done, opts, sizing = _prepare_chunks(job, ctx)
                chunks = job.chunks
                job.info = {"chunks": len(chunks), "pid": os.getpid(), "chunk_bytes": job.chunk_bytes}
                job.info.update(resumed_chunks=len(done), object_diameter=sizing)
                for k, chunk in enumerate(chunks):
                    if chunk.index in done:  # written by an earlier, interrupted run
                        continue
                    args = (job.src, job.dst, chunk, job.axes, ctx.ref, opts)
                    yield from segment_chunk_iter(*args)
                    yield Progress("chunks", k + 1, len(chunks), message=job.src.name)
        except Exception as err:  # this input failed: recorded with its reason, the batch goes on
            job.error = failure_reason(err)
        yield ctx.finish(job, time.perf_counter() - t0)


def _run_distributed(client: Any, jobs: list[InputJob], ctx: RunContext):
    """Submit one task per small file and per chunk of a large one; collect as they finish."""
    futures: dict[Any, tuple[InputJob, Any]] = {}
    try:
        for job in jobs:
            job.started = time.perf_counter()
            try:
                if job.kind == "tiff":
                    args = (str(job.src), str(job.dst), ctx.ref, ctx.opts)
                    futures[dask_backend.submit(client, run_file_task, *args)] = (job, None)
                    continue
                done, opts, sizing = _prepare_chunks(job, ctx)
                chunks = job.chunks
            except Exception as err:  # could not prepare this input's output: recorded
                job.error = failure_reason(err)
                yield ctx.finish(job, 0.0)
                continue
            todo = [c for c in chunks if c.index not in done]
            job.pending = len(todo)
            job.info = {"chunks": len(chunks), "chunk_bytes": job.chunk_bytes, "resumed_chunks": len(done)}
            job.info["object_diameter"] = sizing
            if not todo:  # every chunk was written by an earlier run: only the finishing is left
                yield ctx.finish(job, 0.0)
            for chunk in todo:
                args = (str(job.src), str(job.dst), chunk, job.axes, ctx.ref, opts)
                futures[dask_backend.submit(client, run_chunk_task, *args)] = (job, chunk)
        yield from _collect(futures, ctx)
    finally:
        client.cancel(list(futures))


def _collect(futures: dict[Any, tuple[InputJob, Any]], ctx: RunContext):
    """Record files as their tasks finish; a Zarr output is finalized after its last chunk."""
    n_chunks = sum(1 for _, chunk in futures.values() if chunk is not None)
    chunks_done = 0
    for future, result, err in dask_backend.iter_completed(list(futures)):
        job, chunk = futures[future]
        if err is not None and job.error is None:
            job.error = failure_reason(err)
        if chunk is not None:
            chunks_done += 1
            job.pending -= 1
            yield Progress("chunks", chunks_done, n_chunks, message=job.src.name)
            if job.pending:
                continue
        elif result is not None:
            job.info = result
        yield ctx.finish(job, time.perf_counter() - job.started)
