"""Units of batch work that run the same in-process or on a dask worker.

* :func:`segment_file_iter`: one whole image (read, segment, write ``*_labels.tif``).
* :func:`segment_chunk_iter`: one chunk of a large image (a run of planes, or a Y/X block of a
  huge plane with a halo of ``overlap`` pixels), read lazily and written into an OME-Zarr store.

Tasks name their input and output by path and the model by :class:`ModelRef`, so a dask worker
reads and writes the (shared) files itself and nothing large travels over the network; each
process loads a given model file once (:func:`get_model`).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.engine import object_size, region_normalizers, segment_iter
from ..inference.options import DEFAULTS, SegmentOptions
from ..io import OmeZarrLabelsWriter, read_image, write_labels_tiff
from ..progress import Progress, drain

_MODEL_CACHE: dict[tuple[str, str], Any] = {}
#: how many times this process loaded a model file (tests check "once per worker")
MODEL_LOADS = {"count": 0}


@dataclass(frozen=True)
class ModelRef:
    """A model file by absolute path and SHA-256 (the cache key on every worker)."""

    path: str
    sha256: str
    name: str = ""


@dataclass(frozen=True)
class Options:
    """Per-run options passed to every unit of work.

    Attributes:
        output: ``"classes"``, ``"instances"`` or ``"probabilities"``.
        segment: the segmentation options (:class:`~napari_deepseg.inference.SegmentOptions`),
            with the block side the memory policy chose; its ``object_diameter`` is None to
            estimate per image (a large image's chunks all get the one estimate of its image).
        axes: the images' axes (letters of TZCYX) or ``None`` to use each file's own guess.
        uncertainty: also write ``<stem>_uncertainty.csv`` beside the labels: the objects and
            possible misses ranked from the least certain (images held in memory only).
        normalizers: a large image's per-plane normalizers (by plane index over its T/Z axes),
            computed once (:func:`image_normalization`) for the Y/X blocks of its planes.
    """

    output: str
    segment: SegmentOptions = DEFAULTS
    axes: str | None = None
    uncertainty: bool = False
    normalizers: dict[tuple[int, ...], Any] | None = None

    def record(self) -> dict[str, Any]:
        """The options as the manifest records them (plain JSON values)."""
        return {"output": self.output, "axes": self.axes, "uncertainty": self.uncertainty,
                **self.segment.record()}  # fmt: skip


def get_model(ref: ModelRef) -> Any:
    """The model for ``ref``, loaded once per process (a worker-side cache)."""
    key = (ref.path, ref.sha256)
    model = _MODEL_CACHE.get(key)
    if model is None:
        from ..models import load_model

        model = load_model(ref.path)
        MODEL_LOADS["count"] += 1
        _MODEL_CACHE.clear()  # keep one model per process: bounded memory on workers
        _MODEL_CACHE[key] = model
    return model


def model_loads() -> int:
    """How many model files this process has loaded (run on workers by tests and benchmarks)."""
    return MODEL_LOADS["count"]


def _segment(image: Any, axes: str, ref: ModelRef, opts: Options, **region: Any):
    outputs = (opts.output, "instances", "probabilities") if opts.uncertainty else (opts.output,)
    return segment_iter(image, get_model(ref), axes=axes, options=opts.segment, outputs=outputs, **region)


def pick_output(result: Any, output: str, axes: str) -> tuple[np.ndarray, str]:
    """The requested array of a ``SegmentationResult`` and its axes (``C`` first for probabilities)."""
    data = getattr(result, output)
    if data is None:
        raise ValueError(f"the model gave no {output!r} output; use --output classes")
    spatial = axes.replace("C", "")
    return np.asarray(data), ("C" + spatial if output == "probabilities" else spatial)


def segment_file_iter(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    ref: ModelRef,
    opts: Options,
) -> Generator[Progress, None, dict[str, Any]]:
    """Segment one image held in memory and write ``dst`` (ImageJ TIFF, atomically).

    Yields the engine's own progress (stages ``"tiles"`` and ``"planes"``); returns
    ``{"shape", "axes", "output_axes", "pid"}``.
    """
    image, axes = read_image(src)
    axes = (opts.axes or axes).upper()
    image = np.asarray(image)
    with warnings.catch_warnings(record=True) as caught:  # e.g. the NaN/inf policy's count
        warnings.simplefilter("always")
        result = yield from _segment(image, axes, ref, opts)
    notes = [f"{Path(src).name}: {w.message}" for w in caught]
    for note in notes:  # shown once more, naming the file (the CLI prints one line each)
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    data, out_axes = pick_output(result, opts.output, axes)
    write_labels_tiff(dst, data, out_axes)
    info = {"shape": list(image.shape), "axes": axes, "output_axes": out_axes, "pid": os.getpid()}
    if opts.uncertainty:
        info["uncertainty_csv"] = str(write_uncertainty(uncertainty_path(dst), result))
    info["object_diameter"] = result.meta.get("object_diameter")
    return {**info, "warnings": notes} if notes else info


def uncertainty_path(labels_path: str | os.PathLike) -> Path:
    """``<stem>_uncertainty.csv`` beside ``<stem>_labels.tif``."""
    path = Path(labels_path)
    return path.with_name(path.name.replace("_labels.tif", "_uncertainty.csv"))


def write_uncertainty(path: Path, result: Any) -> Path:
    """The ranking of every plane of ``result`` (instances and probabilities) as one CSV."""
    from ..inference.uncertainty import rank_uncertain, write_csv

    inst, prob = np.asarray(result.instances), np.asarray(result.probabilities)
    lead = inst.shape[:-2]
    entries, planes = [], []
    for idx in np.ndindex(*lead):
        ranked = rank_uncertain(inst[idx], prob[(slice(None), *idx)].astype(np.float32))
        entries += ranked
        where = ", ".join(f"{a}={i}" for a, i in zip(result.axes, idx))
        planes += [where] * len(ranked)
    return write_csv(path, entries, planes=planes if lead else None)


def image_sizing(src: str | os.PathLike, axes: str, ref: ModelRef, opts: Options) -> tuple[Options, Any]:
    """(options for every chunk of a large image, the object-size decision): one decision for
    the whole image (:func:`~napari_deepseg.inference.object_size`; an estimate reads its
    centre only), so all chunks run at the same scale."""
    opts = replace(opts, uncertainty=False)  # the ranking is written for images held in memory
    image, _ = read_image(src, lazy=True)
    sizing = object_size(image, get_model(ref), axes=axes, options=opts.segment)
    if sizing is None:
        return opts, None
    diameter = sizing["object_diameter"] or "off"
    return replace(opts, segment=opts.segment.replace(object_diameter=diameter)), sizing


def image_normalization(src: str | os.PathLike, axes: str, ref: ModelRef, opts: Options, chunks) -> Options:
    """``opts`` with the image's per-plane normalizers when one of ``chunks`` (those still to
    run) is a Y/X block of a plane (each block then normalizes as the whole plane would: read
    once here, in row bands)."""
    image, _ = read_image(src, lazy=True)
    dims = dict(zip(axes, image.shape))
    if all(c.whole_planes(dims["Y"], dims["X"]) for c in chunks):
        return opts
    seg = opts.segment
    if seg.object_diameter is None:
        seg = seg.replace(object_diameter="off")
    found = region_normalizers(image, get_model(ref), axes=axes, options=seg)
    return replace(opts, normalizers=found)


def run_file_task(src: str, dst: str, ref: ModelRef, opts: Options):
    """:func:`segment_file_iter` run to the end (the dask task)."""
    return drain(segment_file_iter(src, dst, ref, opts))


@dataclass(frozen=True)
class Chunk:
    """One unit of a large image.

    Attributes:
        index: position in the plan.
        lead: one entry per non-channel, non-Y/X axis (ints, the last may be a slice).
        y, x: the core region written to the output.
        read_y, read_x: the region read (core plus halo, clipped to the image).
        id_offsets: per plane of the chunk, the offset added to its instance ids (the count of
            pixels before it in plan order: unique ids without a second pass).
    """

    index: int
    lead: tuple[int | slice, ...]
    y: slice
    x: slice
    read_y: slice
    read_x: slice
    id_offsets: tuple[int, ...]

    def whole_planes(self, height: int, width: int) -> bool:
        """True for a run of whole (height, width) planes; False for a Y/X block of one."""
        return (self.read_y.stop - self.read_y.start, self.read_x.stop - self.read_x.start) == (height, width)


def plane_selection(axes: str, lead: tuple[int | slice, ...], y: slice, x: slice, channel: Any) -> tuple:
    """The index into an array with ``axes`` of a chunk's ``lead`` (one entry per axis other than
    C, Y, X, in order), rows ``y``, columns ``x`` and ``channel`` (None: the array has no C)."""
    it = iter(lead)
    sel = []
    for a in axes:
        sel.append(y if a == "Y" else x if a == "X" else channel if a == "C" else next(it))
    return tuple(sel)


def segment_chunk_iter(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    chunk: Chunk,
    axes: str,
    ref: ModelRef,
    opts: Options,
) -> Generator[Progress, None, dict[str, Any]]:
    """Read one chunk lazily, segment it, crop the halo and write the core into ``dst``.

    ``axes`` are the input's axes; ``dst`` is an unfinished store made by
    :class:`~napari_deepseg.io.OmeZarrLabelsWriter` with the input's non-channel axes (plus a
    leading ``C`` for probabilities). Returns ``{"index", "max_id", "pid"}``.
    """
    image, _ = read_image(src, lazy=True)
    dims = dict(zip(axes, image.shape))
    sel = plane_selection(axes, chunk.lead, chunk.read_y, chunk.read_x, slice(None))
    sub_axes = "".join(a for a, s in zip(axes, sel) if not isinstance(s, int))
    if chunk.whole_planes(dims["Y"], dims["X"]):  # whole planes: read and segmented as they are
        result = yield from _segment(np.asarray(image[sel]), sub_axes, ref, opts)
    else:  # a Y/X block of a plane: as the whole-plane run segments it (inference.window)
        planes = _Planes(image, plane_selection(axes, chunk.lead, slice(None), slice(None), slice(None)))
        norms = _chunk_normalizers(opts.normalizers, axes, chunk.lead)
        region = {"region": (chunk.read_y, chunk.read_x), "plane_normalizers": norms}
        result = yield from _segment(planes, sub_axes, ref, opts, **region)
    data, out_axes = pick_output(result, opts.output, sub_axes)
    ys = slice(chunk.y.start - chunk.read_y.start, chunk.y.stop - chunk.read_y.start)
    xs = slice(chunk.x.start - chunk.read_x.start, chunk.x.stop - chunk.read_x.start)
    crop = tuple(ys if a == "Y" else xs if a == "X" else slice(None) for a in out_axes)
    data = data[crop]
    max_id = 0
    if opts.output == "instances":
        data, max_id = _offset_ids(data, out_axes, chunk.id_offsets)
    writer = OmeZarrLabelsWriter.reopen(dst)
    spatial = axes.replace("C", "")
    out_sel = plane_selection(spatial, chunk.lead, chunk.y, chunk.x, None)
    if opts.output == "probabilities":
        out_sel = (slice(None), *out_sel)
    writer.write(out_sel, data)
    writer.mark_done(chunk.index)  # a rerun after a crash skips this chunk
    return {"index": chunk.index, "max_id": max_id, "pid": os.getpid()}


class _Planes:
    """A lazy view ``image[sel]`` (ints and unit-step slices): only what is indexed is read."""

    def __init__(self, image: Any, sel: tuple) -> None:
        self.image, self.dtype = image, np.dtype(image.dtype)
        self.sel = tuple(
            s if isinstance(s, int) else slice(*s.indices(n)[:2]) for s, n in zip(sel, image.shape)
        )
        self.shape = tuple(s.stop - s.start for s in self.sel if isinstance(s, slice))

    def __getitem__(self, key: tuple) -> np.ndarray:
        keys = iter(key if isinstance(key, tuple) else (key,))
        out = []
        for base in self.sel:
            if isinstance(base, int):
                out.append(base)
                continue
            k = next(keys, slice(None))
            if isinstance(k, slice):
                start, stop, step = k.indices(base.stop - base.start)
                if step != 1:
                    raise IndexError("only unit-step slices")
                out.append(slice(base.start + start, base.start + stop))
            else:
                out.append(base.start + int(k))
        return np.asarray(self.image[tuple(out)])


def _chunk_normalizers(found: dict | None, axes: str, lead: tuple) -> dict | None:
    """The image's per-plane normalizers re-indexed by a chunk's planes (its T/Z slice)."""
    if found is None:
        return None
    loop = [a for a in axes if a in "TZ"]
    ranges = [[s] if isinstance(s, int) else range(s.start, s.stop) for s in lead[: len(loop)]]
    kept = [isinstance(s, slice) for s in lead[: len(loop)]]
    out = {}
    for index in itertools.product(*ranges):
        view = tuple(i - s.start for i, s, k in zip(index, lead, kept) if k)
        out[view] = found[tuple(index)]
    return out


def _offset_ids(data: np.ndarray, axes: str, offsets: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Relabel each Y/X plane to 1..n and add its plane's offset; returns (ids, max id)."""
    from skimage.segmentation import relabel_sequential

    planes = data.reshape(-1, *data.shape[-2:])
    if len(planes) != len(offsets):
        raise ValueError(f"{len(planes)} planes in the chunk but {len(offsets)} id offsets")
    dtype = np.uint64 if offsets[-1] + planes[-1].size >= 2**32 else np.uint32
    out = np.zeros(planes.shape, dtype)
    for i, (plane, off) in enumerate(zip(planes, offsets)):
        seq = relabel_sequential(plane)[0].astype(dtype)
        out[i] = np.where(seq > 0, seq + dtype(off), 0)
    return out.reshape(data.shape), int(out.max()) if out.size else 0


def run_chunk_task(
    src: str, dst: str, chunk: Chunk, axes: str, ref: ModelRef, opts: Options
) -> dict[str, Any]:
    """:func:`segment_chunk_iter` run to the end (the dask task)."""
    return drain(segment_chunk_iter(src, dst, chunk, axes, ref, opts))


def plan_chunks(
    shape: tuple[int, ...], axes: str, itemsize: int, chunk_bytes: int, halo: int, block: int | None = None
) -> list[Chunk]:
    """Split an image into chunks of at most about ``chunk_bytes`` of input.

    Runs of whole planes along the last non-channel, non-Y/X axis when a plane fits;
    otherwise square Y/X blocks (a multiple of 1024, the output's chunk size) with ``halo``
    pixels of context read around each block and cropped after segmentation.
    """
    dims = dict(zip(axes, shape))
    lead_axes = [a for a in axes if a not in "CYX"]
    lead_shape = [dims[a] for a in lead_axes]
    h, w, c = dims["Y"], dims["X"], dims.get("C", 1)
    plane_bytes = h * w * c * itemsize
    if block is None and plane_bytes > chunk_bytes:
        side = int((chunk_bytes / (c * itemsize)) ** 0.5)
        block = max(1024, side // 1024 * 1024)
    block_y, block_x = (h, w) if block is None else (block, block)
    per_run = max(1, chunk_bytes // plane_bytes) if block is None else 1
    outer = list(np.ndindex(*lead_shape[:-1])) if lead_axes else [()]
    last = lead_shape[-1] if lead_axes else 1
    chunks: list[Chunk] = []
    offset = 0
    for head in outer:
        for z0 in range(0, last, per_run):
            z1 = min(last, z0 + per_run)
            lead = (*head, slice(z0, z1)) if lead_axes else ()
            for y0 in range(0, h, block_y):
                for x0 in range(0, w, block_x):
                    y, x = slice(y0, min(h, y0 + block_y)), slice(x0, min(w, x0 + block_x))
                    area = (y.stop - y0) * (x.stop - x0)
                    read_y = slice(max(0, y0 - halo), min(h, y.stop + halo))
                    read_x = slice(max(0, x0 - halo), min(w, x.stop + halo))
                    offs = tuple(offset + i * area for i in range(z1 - z0))
                    offset += (z1 - z0) * area
                    chunks.append(Chunk(len(chunks), lead, y, x, read_y, read_x, offs))
    return chunks
