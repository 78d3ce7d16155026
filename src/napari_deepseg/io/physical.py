"""Physical pixel sizes of an input image (scale and unit per axis letter), for its outputs.

- OME-Zarr: the level-0 ``scale`` transform and axis units, read through ``ome-zarr``
  (:func:`napari_deepseg.io.zarr.read_ngff`);
- OME-TIFF: ``PhysicalSizeX/Y/Z`` and their units from the OME-XML;
- ImageJ TIFF: X/Y resolution tags (pixels per unit), ``spacing`` (Z) and ``unit``.

Units are NGFF names (``micrometer``, ``nanometer``...). Anything else gives ``({}, {})``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

_UNITS = {
    "micron": "micrometer",
    "microns": "micrometer",
    "um": "micrometer",
    "µm": "micrometer",
    "\u03bcm": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}

Sizes = tuple[dict[str, float], dict[str, str]]


def ngff_unit(unit: str | None) -> str | None:
    """An NGFF unit name for a TIFF/OME unit string (``None`` when unknown or absent)."""
    if not unit:
        return None
    text = unit.strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    if text.lower() in ("micrometer", "nanometer", "millimeter", "centimeter", "meter"):
        return text.lower()
    return _UNITS.get(text) or _UNITS.get(text.lower())


def physical_sizes(path: str | os.PathLike) -> Sizes:
    """``(scale, units)`` by axis letter (``"Z"``, ``"Y"``, ``"X"``...) for the image at ``path``."""
    from .images import TIFF_SUFFIXES, is_zarr_path

    path = Path(path)
    if is_zarr_path(path):
        from .ngff import read_ngff

        info = read_ngff(path)
        return (info.scale, info.units) if info else ({}, {})
    if path.suffix.lower() in TIFF_SUFFIXES and path.is_file():
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:
                return _ome_sizes(tif.ome_metadata)
            if tif.is_imagej:
                return _imagej_sizes(tif)
    return {}, {}


def _ome_sizes(xml: str) -> Sizes:
    pixels = next((el for el in ET.fromstring(xml).iter() if el.tag.endswith("Pixels")), None)
    scale, units = {}, {}
    for axis in "ZYX" if pixels is not None else "":
        value = pixels.get(f"PhysicalSize{axis}")
        if value is not None:
            scale[axis] = float(value)
            unit = ngff_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
            if unit:
                units[axis] = unit
    return scale, units


def _imagej_sizes(tif) -> Sizes:
    meta = tif.imagej_metadata or {}
    tags = tif.pages.first.tags
    scale: dict[str, float] = {}
    for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in tags:
            num, den = tags[tag].value
            if num:
                scale[axis] = den / num
    if "spacing" in meta:
        scale["Z"] = float(meta["spacing"])
    unit = ngff_unit(meta.get("unit"))
    units = {axis: unit for axis in scale} if unit else {}
    return (scale, units) if unit else ({}, {})  # pixels per inch without a unit say nothing
