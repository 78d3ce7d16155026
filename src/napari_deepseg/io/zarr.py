"""OME-Zarr (NGFF 0.4, Zarr format 2) labels writer: chunked, written block by block, with a
completion marker so a half-written store is never taken as finished.

Layout of ``<name>.zarr``::

    .zgroup  .zattrs          multiscales (one level, path "0") + image-label metadata
    0/                        the labels array, axes in NGFF order (subset of t, c, z, y, x)
    deepseg_complete.json     written last, by :meth:`OmeZarrLabelsWriter.finalize`
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

MARKER = "deepseg_complete.json"
_NGFF_ORDER = "TCZYX"
_AXIS_TYPE = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def is_complete(path: str | os.PathLike) -> bool:
    """True when the store at ``path`` was finalized (its completion marker exists)."""
    return (Path(path) / MARKER).is_file()


def default_chunks(shape: Sequence[int], axes: str, plane_chunk: int = 1024) -> tuple[int, ...]:
    """One plane deep along T/Z/C, ``plane_chunk`` square in Y and X."""
    return tuple(min(n, plane_chunk) if a in "YX" else 1 for n, a in zip(shape, axes))


class OmeZarrLabelsWriter:
    """Create an OME-Zarr labels image and fill it block by block.

    Args:
        path: the ``*.zarr`` folder to create; an existing *unfinished* store there is removed,
            a finished one raises (delete it or choose another name).
        shape: shape of the labels in ``axes`` order.
        dtype: e.g. ``uint32`` for instances, ``uint8`` for classes, ``float16`` for probabilities.
        axes: letters of TZCYX in the order of ``shape`` (and of the blocks given to
            :meth:`write`); the file stores them in NGFF order (t, c, z, y, x).
        chunks: chunk shape in ``axes`` order; default :func:`default_chunks`.
        attrs: extra JSON attributes stored under ``"deepseg"`` (e.g. model, source image).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: Sequence[int],
        dtype: Any,
        axes: str,
        chunks: Sequence[int] | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        import zarr

        axes = axes.upper()
        if len(axes) != len(shape) or not set(axes) <= set(_NGFF_ORDER) or not {"Y", "X"} <= set(axes):
            raise DeepsegError(f"axes {axes!r} do not fit shape {tuple(shape)}; use letters of TZCYX")
        self.path = Path(path)
        if self.path.exists():
            if is_complete(self.path):
                raise DeepsegError(f"{self.path} is a finished output; delete it to write it again")
            shutil.rmtree(self.path)
        self.axes = axes
        self.order = [axes.index(a) for a in _NGFF_ORDER if a in axes]
        self.file_axes = "".join(axes[i] for i in self.order)
        chunks = tuple(chunks) if chunks else default_chunks(shape, axes)
        group = zarr.open_group(str(self.path), mode="w", zarr_format=2)
        self.array = group.create_array(
            "0",
            shape=tuple(int(shape[i]) for i in self.order),
            chunks=tuple(int(chunks[i]) for i in self.order),
            dtype=np.dtype(dtype),
            fill_value=0,
        )
        group.attrs.update(self._metadata(attrs or {}))

    def _metadata(self, extra: dict[str, Any]) -> dict[str, Any]:
        axes = [{"name": a.lower(), "type": _AXIS_TYPE[a]} for a in self.file_axes]
        for ax in axes:
            if ax["type"] == "space":
                ax["unit"] = "micrometer"
        multiscales = {
            "version": "0.4",
            "name": self.path.stem,
            "axes": axes,
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}
            ],
        }
        return {
            "multiscales": [multiscales],
            "image-label": {"version": "0.4"},
            "deepseg": {**extra, "axes": self.axes},
        }

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> OmeZarrLabelsWriter:
        """Open an unfinished store made by this class to write more blocks (e.g. on a worker)."""
        import zarr

        array, file_axes = open_labels(path, mode="r+")
        self = cls.__new__(cls)
        self.path = Path(path)
        self.array = array
        self.file_axes = file_axes
        group = zarr.open_group(str(path), mode="r")
        self.axes = str(dict(group.attrs).get("deepseg", {}).get("axes", file_axes))
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

    def finalize(self, info: dict[str, Any] | None = None) -> Path:
        """Write the completion marker (last step; the store counts as finished from now on)."""
        tmp = self.path / f".{MARKER}.partial"
        tmp.write_text(json.dumps({"complete": True, **(info or {})}, indent=1))
        os.replace(tmp, self.path / MARKER)
        return self.path


def open_labels(path: str | os.PathLike, mode: str = "r") -> tuple[Any, str]:
    """Open a labels store written by :class:`OmeZarrLabelsWriter`: ``(zarr array, file axes)``."""
    import zarr

    group = zarr.open_group(str(path), mode=mode)
    scale = group.attrs["multiscales"][0]
    axes = "".join(a["name"].upper() for a in scale["axes"])
    return group[scale["datasets"][0]["path"]], axes
