"""Reading OME-Zarr (NGFF) image metadata: axes, scale and units (below the writers)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass
class NgffInfo:
    """What an OME-Zarr image says about its axes: letters, level-0 scale and units per axis."""

    axes: str
    scale: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    zarr_format: int = 2


def read_ngff(path: str | os.PathLike) -> NgffInfo | None:
    """Axes, scale and units of the OME-Zarr image at ``path`` (``None`` if it is not one)."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    try:
        location = parse_url(str(path), fmt=ngff_format(_format(path)))
        nodes = list(Reader(location)()) if location is not None else []
    except Exception:  # not OME-Zarr (plain zarr, bad metadata): the caller reads it plainly
        return None
    node = next((n for n in nodes if n.load(Multiscales) is not None), None)
    if node is None or "axes" not in node.metadata:
        return None
    names = [a["name"].upper() for a in node.metadata["axes"]]
    units = {a["name"].upper(): a["unit"] for a in node.metadata["axes"] if a.get("unit")}
    scale: dict[str, float] = {}
    for transform in (node.metadata.get("coordinateTransformations") or [[]])[0] or []:
        if transform.get("type") == "scale":
            scale = {a: float(s) for a, s in zip(names, transform["scale"])}
    return NgffInfo("".join(names), scale, units, location.fmt.zarr_format)


def _format(path: str | os.PathLike) -> int:
    import zarr

    return int(zarr.open_group(str(path), mode="r").metadata.zarr_format)


def ngff_format(zarr_format: int) -> Any:
    """The ome-zarr format object of an NGFF store in Zarr format ``zarr_format`` (2 or 3)."""
    from ome_zarr.format import FormatV04, FormatV05

    return FormatV05() if zarr_format == 3 else FormatV04()
