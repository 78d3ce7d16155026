"""The finishing steps of an OME-Zarr labels store: its resolution pyramid and NGFF metadata.

Levels 1, 2, ... halve Y and X of the previous level (nearest neighbour: every second pixel, so
label values stay valid ids), computed with dask from the level below chunk by chunk, until
the larger side is at most ``min_side``. Metadata are written by ``ome-zarr``'s writer
(multiscales with a scale per level, axes with their units, ``image-label``, and the parent's
``labels`` list when the store sits in an image's ``labels/`` group).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .ngff import read_ngff

_AXIS_TYPE = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def level_shapes(shape: tuple[int, ...], axes: str, min_side: int) -> list[tuple[int, ...]]:
    """Shapes of levels 0, 1, ...: Y and X halved (rounded up) while the larger side > ``min_side``."""
    shapes = [tuple(shape)]
    iy, ix = axes.index("Y"), axes.index("X")
    while max(shapes[-1][iy], shapes[-1][ix]) > min_side:
        last = list(shapes[-1])
        last[iy], last[ix] = -(-last[iy] // 2), -(-last[ix] // 2)
        shapes.append(tuple(last))
    return shapes


def write_pyramid(path: str | os.PathLike, file_axes: str, min_side: int) -> int:
    """Write levels 1.. of the store at ``path`` from its level ``0``; returns the level count."""
    import dask.array as da
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    base = group["0"]
    shapes = level_shapes(tuple(base.shape), file_axes, min_side)
    step = tuple(2 if a in "YX" else 1 for a in file_axes)
    for level in range(1, len(shapes)):
        if str(level) in group:
            del group[str(level)]
        below = da.from_zarr(group[str(level - 1)])
        data = below[tuple(slice(None, None, s) for s in step)]
        target = group.create_array(
            str(level), shape=shapes[level], chunks=base.chunks, dtype=base.dtype, fill_value=0
        )
        da.store(data.rechunk(base.chunks), target, lock=False)
    return len(shapes)


def write_metadata(path: str | os.PathLike, file_axes: str, levels: int, attrs: dict[str, Any]) -> None:
    """NGFF metadata through ome-zarr: multiscales, axes/units, scale per level, image-label."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import add_metadata, write_label_metadata, write_multiscales_metadata

    path = Path(path)
    fmt = FormatV05() if int(attrs.get("zarr_format", 2)) == 3 else FormatV04()
    group = zarr.open_group(str(path), mode="r+")
    scale0, units = attrs.get("scale", {}), attrs.get("units", {})
    axes = []
    for a in file_axes:
        axis = {"name": a.lower(), "type": _AXIS_TYPE[a]}
        if a in units:
            axis["unit"] = units[a]
        axes.append(axis)
    datasets = []
    for level in range(levels):
        factor = [2**level if a in "YX" else 1 for a in file_axes]
        scale = [float(scale0.get(a, 1.0)) * f for a, f in zip(file_axes, factor)]
        datasets.append(
            {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=axes, name=path.name)
    if not attrs.get("image_label", True):
        return
    beside = path.parent.name == "labels" and _is_image(path.parent.parent)
    label_meta = {"source": {"image": "../../"}} if beside else {}
    if beside:
        parent = zarr.open_group(str(path.parent), mode="r+")
        if path.name not in _attrs(parent, fmt).get("labels", []):
            write_label_metadata(parent, path.name, fmt=fmt, **label_meta)
            return
    add_metadata(group, {"image-label": {"version": fmt.version, **label_meta}}, fmt=fmt)


def _attrs(group: Any, fmt: Any) -> dict[str, Any]:
    attrs = dict(group.attrs)
    return dict(attrs.get("ome", {})) if fmt.version not in ("0.1", "0.2", "0.3", "0.4") else attrs


def _is_image(path: Path) -> bool:
    return read_ngff(path) is not None
