"""OME-Zarr labels written chunk by chunk through the ``ome-zarr`` library, resumable, with a pyramid.

``ome-zarr`` (the OME reference implementation, also under napari's OME-Zarr reader
``napari-ome-zarr``) writes and validates the NGFF metadata (axes, units, scales, image-label)
and reads input metadata; the pixels are written block by block with ``zarr`` so that a huge
output never sits in memory.

Layout of a standalone output ``<name>_labels.zarr`` (NGFF 0.4, Zarr format 2, read by napari,
Fiji/MoBIE, QuPath and ome-zarr-py alike)::

    .zattrs                 multiscales (levels "0", "1", ...; scale per level), image-label,
                            deepseg (model, source, plan)
    0/ 1/ 2/ ...            level 0 at full resolution, then Y and X halved per level (nearest)
    deepseg_chunks/<k>      one empty file per finished chunk of the plan (chunk-level resume)
    deepseg_complete.json   written last, after the pyramid: the store counts as finished

Labels of an OME-Zarr input go beside its image as ``<input>.zarr/labels/<name>`` (same layout,
same NGFF version as the image; listed in ``labels/.zattrs`` once complete), so a viewer opening
the image shows them over it. Scale and units of the input's Y/X (and Z, T) axes are carried over.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeepsegError
from .ngff import read_ngff

MARKER = "deepseg_complete.json"
CHUNKS_DIR = "deepseg_chunks"
_NGFF_ORDER = "TCZYX"
#: pyramid levels are added until the largest Y/X side is at most this
PYRAMID_MIN_SIDE = 256


def is_complete(path: str | os.PathLike) -> bool:
    """True when the store at ``path`` was finalized (its completion marker exists)."""
    return (Path(path) / MARKER).is_file()


def default_chunks(shape: Sequence[int], axes: str, plane_chunk: int = 1024) -> tuple[int, ...]:
    """One plane deep along T/Z/C, ``plane_chunk`` square in Y and X."""
    return tuple(min(n, plane_chunk) if a in "YX" else 1 for n, a in zip(shape, axes))


def labels_beside(src: str | os.PathLike, name: str = "deepseg") -> Path | None:
    """``<src>/labels/<name>`` when ``src`` is a writable OME-Zarr image, else ``None``."""
    src = Path(src)
    if not src.is_dir() or not os.access(src, os.W_OK) or read_ngff(src) is None:
        return None
    return src / "labels" / name


class OmeZarrLabelsWriter:
    """Create (or resume) an OME-Zarr labels image and fill it block by block.

    Args:
        path: the ``*.zarr`` folder (or ``<image>.zarr/labels/<name>``) to write. A finished
            store there raises (delete it or choose another name); an unfinished one is resumed
            when ``resume`` is true and it was made for the same ``attrs["plan"]``, shape and
            dtype, else removed.
        shape: shape of the labels in ``axes`` order.
        dtype: e.g. ``uint32`` for instances, ``uint8`` for classes, ``float16`` for probabilities.
        axes: letters of TZCYX in the order of ``shape`` (and of the blocks given to
            :meth:`write`); the file stores them in NGFF order (t, c, z, y, x).
        chunks: chunk shape in ``axes`` order; default :func:`default_chunks`.
        attrs: extra JSON attributes stored under ``"deepseg"`` (model, source image, plan).
        scale, units: physical pixel size and unit per axis letter (e.g. from :func:`read_ngff`);
            axes without a scale get 1.0, without a unit none.
        image_label: mark the store as labels (NGFF ``image-label``); ``False`` for probabilities.
        resume: keep an unfinished store made for the same plan (see :meth:`done_chunks`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: Sequence[int],
        dtype: Any,
        axes: str,
        chunks: Sequence[int] | None = None,
        attrs: dict[str, Any] | None = None,
        *,
        scale: dict[str, float] | None = None,
        units: dict[str, str] | None = None,
        image_label: bool = True,
        resume: bool = False,
    ) -> None:
        import zarr

        axes = axes.upper()
        if len(axes) != len(shape) or not set(axes) <= set(_NGFF_ORDER) or not {"Y", "X"} <= set(axes):
            raise DeepsegError(f"axes {axes!r} do not fit shape {tuple(shape)}; use letters of TZCYX")
        self.path = Path(path)
        self.axes = axes
        self.order = [axes.index(a) for a in _NGFF_ORDER if a in axes]
        self.file_axes = "".join(axes[i] for i in self.order)
        file_shape = tuple(int(shape[i]) for i in self.order)
        meta = {
            **(attrs or {}),
            "axes": axes,
            "image_label": image_label,
            "scale": {a: float(v) for a, v in (scale or {}).items() if a in axes},
            "units": {a: str(u) for a, u in (units or {}).items() if a in axes},
        }
        if self._resumable(resume, file_shape, np.dtype(dtype), meta):
            self.array = zarr.open_group(str(self.path), mode="r+")["0"]
            return
        zarr_format = self._prepare_folder()
        chunks = tuple(chunks) if chunks else default_chunks(shape, axes)
        group = zarr.open_group(str(self.path), mode="w", zarr_format=zarr_format)
        self.array = group.create_array(
            "0",
            shape=file_shape,
            chunks=tuple(int(chunks[i]) for i in self.order),
            dtype=np.dtype(dtype),
            fill_value=0,
        )
        group.attrs["deepseg"] = {**meta, "zarr_format": zarr_format}

    def _resumable(self, resume: bool, shape: tuple[int, ...], dtype: np.dtype, meta: dict) -> bool:
        """Whether an existing store is kept (unfinished, same plan); raises if it is finished."""
        if not self.path.exists():
            return False
        if is_complete(self.path):
            raise DeepsegError(f"{self.path} is a finished output; delete it to write it again")
        if resume:
            try:
                old = _open_level0(self.path, "r")
                same = old[0].shape == shape and old[0].dtype == dtype
                kept = {k: v for k, v in _deepseg_attrs(self.path).items() if k != "zarr_format"}
                if same and kept == json.loads(json.dumps(meta)):
                    return True
            except Exception:  # an unreadable half-written store is replaced
                pass
        shutil.rmtree(self.path)
        return False

    def _prepare_folder(self) -> int:
        """The Zarr format to write: the image's when labels go inside an OME-Zarr image, else 2."""
        if self.path.parent.name == "labels" and (info := read_ngff(self.path.parent.parent)) is not None:
            import zarr

            zarr.open_group(str(self.path.parent), mode="a", zarr_format=info.zarr_format)
            return info.zarr_format
        return 2

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> OmeZarrLabelsWriter:
        """Open an unfinished store made by this class to write more blocks (e.g. on a worker)."""
        array, file_axes = open_labels(path, mode="r+")
        self = cls.__new__(cls)
        self.path = Path(path)
        self.array = array
        self.file_axes = file_axes
        self.axes = str(_deepseg_attrs(path).get("axes", file_axes))
        self.order = [self.axes.index(a) for a in file_axes]
        return self

    def write(self, selection: tuple[slice | int, ...], block: np.ndarray) -> None:
        """Store ``block`` at ``selection`` (one slice per axis, in ``axes`` order)."""
        if len(selection) != len(self.axes):
            raise ValueError(f"selection needs {len(self.axes)} entries ({self.axes}), got {len(selection)}")
        sel = tuple(selection[i] for i in self.order)
        kept = [a for a, s in zip(self.axes, selection) if not isinstance(s, (int, np.integer))]
        block_order = [kept.index(a) for a in self.file_axes if a in kept]
        block = np.transpose(np.asarray(block), block_order)
        want = tuple(
            len(range(*s.indices(n)))
            for s, n in zip(sel, self.array.shape)
            if not isinstance(s, (int, np.integer))
        )
        if block.shape != want:
            raise ValueError(
                f"block of shape {block.shape} does not fit the region {want} of {self.path.name}"
            )
        self.array[sel] = block

    def mark_done(self, index: int) -> None:
        """Record chunk ``index`` of the plan as written (after :meth:`write` returned)."""
        folder = self.path / CHUNKS_DIR
        folder.mkdir(exist_ok=True)
        (folder / str(int(index))).touch()

    def done_chunks(self) -> set[int]:
        """Indices of the plan's chunks already written (a resumed store skips them)."""
        folder = self.path / CHUNKS_DIR
        return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.is_dir() else set()

    def finalize(self, info: dict[str, Any] | None = None, min_side: int = PYRAMID_MIN_SIDE) -> Path:
        """Build the pyramid, write the NGFF metadata, then the completion marker (last step)."""
        from .zarr_pyramid import write_metadata, write_pyramid

        attrs = _deepseg_attrs(self.path)
        levels = write_pyramid(self.path, self.file_axes, min_side)
        write_metadata(self.path, self.file_axes, levels, attrs)
        shutil.rmtree(self.path / CHUNKS_DIR, ignore_errors=True)
        tmp = self.path / f".{MARKER}.partial"
        tmp.write_text(json.dumps({"complete": True, "levels": levels, **(info or {})}, indent=1))
        os.replace(tmp, self.path / MARKER)
        return self.path


def _deepseg_attrs(path: str | os.PathLike) -> dict[str, Any]:
    import zarr

    return dict(dict(zarr.open_group(str(path), mode="r").attrs).get("deepseg", {}))


def _open_level0(path: str | os.PathLike, mode: str) -> tuple[Any, str]:
    import zarr

    group = zarr.open_group(str(path), mode=mode)
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    if "multiscales" in ome:
        scale = ome["multiscales"][0]
        axes = "".join((a["name"] if isinstance(a, dict) else a).upper() for a in scale["axes"])
        return group[scale["datasets"][0]["path"]], axes
    own = attrs.get("deepseg", {})  # unfinished: metadata comes with the pyramid
    axes = str(own.get("axes", ""))
    return group["0"], "".join(a for a in _NGFF_ORDER if a in axes)


def open_labels(path: str | os.PathLike, mode: str = "r") -> tuple[Any, str]:
    """Open a labels store written by :class:`OmeZarrLabelsWriter`: ``(level-0 zarr array, file axes)``."""
    return _open_level0(path, mode)
