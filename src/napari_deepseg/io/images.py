"""Read images (TIFF/OME-TIFF, PNG/JPEG, .npy, Zarr/OME-Zarr) and write ImageJ-compatible labels.

Axes are strings of the letters ``T`` (time), ``Z`` (depth), ``C`` (channels), ``Y``, ``X``,
one letter per array dimension, in array order (e.g. ``"ZYX"``, ``"YXC"``, ``"TZCYX"``).
:func:`read_image` returns a *guess*; callers let the user override it.
"""

from __future__ import annotations

import errno
import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_path
from ..errors import DeepsegError
from .axes import guess_axes

TIFF_SUFFIXES = (".tif", ".tiff")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")
NPY_SUFFIXES = (".npy",)
ZARR_SUFFIXES = (".zarr",)
IMAGE_SUFFIXES = TIFF_SUFFIXES + PLAIN_SUFFIXES + NPY_SUFFIXES + ZARR_SUFFIXES

#: TIFF files larger than this (bytes) are read lazily through tifffile's zarr store.
LAZY_TIFF_BYTES = 256 * 2**20

# tifffile series axes -> ours (S = samples/RGB, I/Q = unnamed page axis)
_TIFF_AXES = {"S": "C", "I": "Z", "Q": "Z", "E": "C", "R": "T", "V": "T", "L": "Z", "H": "C"}
_IMAGEJ_ORDER = "TZCYX"


def is_zarr_path(path: str | os.PathLike) -> bool:
    """True for a Zarr store on disk (a ``*.zarr`` folder or a folder with Zarr metadata)."""
    p = Path(path)
    if p.suffix.lower() in ZARR_SUFFIXES:
        return True
    return p.is_dir() and any((p / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))


def image_stem(path: str | os.PathLike) -> str:
    """The file name without its image suffixes (``a.ome.tif`` -> ``a``, ``b.ome.zarr`` -> ``b``)."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.lower().endswith(".ome"):
        name = name[:-4]
    return name


def _is_image(path: Path) -> bool:
    return is_zarr_path(path) or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def _broken_link(path: Path) -> str | None:
    """Why an image-named link in a folder leads nowhere (None for anything else)."""
    if not path.is_symlink() or path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        return "a link that loops back on itself; fix or remove the link"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a link that loops back on itself; fix or remove the link"
        return f"a link to {os.readlink(path)}, which does not exist; fix or remove the link"
    return None


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files, folders (their images, not recursive) and glob patterns.

    Returns:
        ``(images, problems)``: absolute image paths, sorted and de-duplicated in input order;
        and ``(path, reason)`` for inputs that match nothing (reported as failed by the batch).
    """
    found: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for item in inputs:
        text = str(item)
        if glob.has_magic(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if _is_image(Path(m))]
            if not matches:
                problems.append((Path(text), "no image matches this pattern"))
            found.extend(matches)
            continue
        path = Path(text)
        if not path.exists():
            problems.append((path.absolute(), "not found"))
        elif is_zarr_path(path) or path.is_file():
            found.append(path)
        else:
            entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            images = [p for p in entries if _is_image(p)]
            broken = [(p.absolute(), why) for p in entries if (why := _broken_link(p))]
            if not images and not broken:
                problems.append((path.absolute(), "folder holds no TIFF, PNG, JPEG, .npy or Zarr image"))
            found.extend(images)
            problems.extend(broken)
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.absolute(), None)
    return list(unique), problems


# trailing tags naming a file's role (labels, prediction, ground truth, image), not its sample
_ROLE_TAG = re.compile(
    r"[_\-.](labels?|masks?|pred|preds|predictions?|seg|segmentation|instances?|gt|truth|"
    r"ground_truth|groundtruth|annotations?|classes|image|img)$",
    re.IGNORECASE,
)


def pairing_key(path: str | os.PathLike) -> str:
    """The name an image, its labels and its prediction share, for pairing files across folders.

    The stem without image suffixes, with trailing role tags (``_labels``, ``_mask``, ``_pred``,
    ``_gt``, ``_seg``, ``-instances``, ``.image``, ...) removed repeatedly, lower-cased:
    ``cell01.tif``, ``Cell01_Mask.png`` and ``cell01_labels.tif`` all give ``"cell01"``.
    """
    key = image_stem(path)
    while (stripped := _ROLE_TAG.sub("", key)) and stripped != key:
        key = stripped
    return key.lower()


def files_by_key(files: list[Path], clash: str) -> dict[str, Path]:
    """``{pairing_key: file}`` for ``files``: the one pairing rule of ``deepseg train`` and
    ``deepseg evaluate``. Two files with one key are a DeepsegError: ``clash`` formatted with
    ``first``, ``second`` (the paths) and ``key``."""
    found: dict[str, Path] = {}
    for f in files:
        key = pairing_key(f)
        if key in found:
            raise DeepsegError(clash.format(first=found[key], second=f, key=key))
        found[key] = f
    return found


def read_image(path: str | os.PathLike, lazy: bool | None = None) -> tuple[Any, str]:
    """Open an image file, lazily where it is large.

    Args:
        path: a TIFF/OME-TIFF (one or many pages), PNG/JPEG, ``.npy`` or Zarr/OME-Zarr path.
        lazy: for TIFFs, ``True`` always returns a lazy zarr view (cheap: reads the header
            only), ``False`` always reads into memory; default: lazy above ``LAZY_TIFF_BYTES``.

    Returns:
        ``(array, axes)``: a numpy array (``.npy`` files memory-mapped) or, for large TIFFs and
        all Zarr stores, a read-only ``zarr.Array`` (index it to read part of it); and the
        guessed axes string, one of T, Z, C, Y, X per dimension.

    Raises:
        DeepsegError: the file is missing, of an unknown type, or corrupt (one-line message).
    """
    p = Path(path)
    if not p.exists():
        raise DeepsegError(f"{p} not found; check the path")
    suffix = p.suffix.lower()
    try:
        if is_zarr_path(p):
            return _read_zarr(p)
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(p, lazy)
        if suffix in NPY_SUFFIXES:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
            return arr, guess_axes(arr.shape)
        if suffix in PLAIN_SUFFIXES:
            import imageio.v3 as iio

            arr = np.asarray(iio.imread(p))
            return arr, guess_axes(arr.shape)
    except DeepsegError:
        raise
    except PermissionError:
        raise DeepsegError(f"cannot read {p} (permission denied); check the file's permissions") from None
    except Exception as err:  # any reader failure means an unreadable file; name it
        text = str(err).strip().splitlines()
        reason = text[0][:200] if text else type(err).__name__
        raise DeepsegError(f"cannot read {p}: {reason} (corrupt or not an image?)") from None
    raise DeepsegError(f"{p}: unsupported file type {suffix!r}; use TIFF, PNG, JPEG, .npy or Zarr")


def _read_tiff(path: Path, lazy: bool | None) -> tuple[Any, str]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = "".join(_TIFF_AXES.get(a, a) for a in series.axes)
        shape = tuple(series.shape)
        nbytes = int(np.prod(shape)) * np.dtype(series.dtype).itemsize
        if lazy is None:
            lazy = nbytes > LAZY_TIFF_BYTES
        arr = None if lazy else series.asarray()
    if arr is None:
        import zarr

        arr = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    return arr, _clean_axes(axes, shape)


def _read_zarr(path: Path) -> tuple[Any, str]:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return node, guess_axes(node.shape)
    attrs = dict(node.attrs)
    ome = attrs.get("ome", attrs)  # OME-NGFF 0.5 nests under "ome"
    multiscales = ome.get("multiscales")
    if multiscales:
        scale = multiscales[0]
        arr = node[scale["datasets"][0]["path"]]
        names = [a["name"] if isinstance(a, dict) else a for a in scale.get("axes", [])]
        axes = "".join(n.upper() for n in names) if names else guess_axes(arr.shape)
        return arr, _clean_axes(axes, arr.shape)
    arrays = sorted(name for name, _ in node.arrays())
    if not arrays:
        raise DeepsegError(f"{path}: Zarr group holds no array; give the array's path")
    arr = node[arrays[0]]
    return arr, guess_axes(arr.shape)


def _clean_axes(axes: str, shape: tuple[int, ...]) -> str:
    """Map unknown letters to a free one of T/Z/C so the string is valid for ``shape``."""
    if len(axes) != len(shape) or len(set(axes)) != len(axes) or not set(axes) <= set("TZCYX"):
        return guess_axes(shape)
    return axes


def write_labels_tiff(path: str | os.PathLike, labels: np.ndarray, axes: str) -> Path:
    """Write labels as an ImageJ hyperstack TIFF, atomically (temporary name, then rename).

    Args:
        path: destination ``*.tif``.
        labels: integer labels (or float probabilities) with axes ``axes`` (letters of TZCYX,
            must include Y and X).
        axes: axes of ``labels``; reordered to ImageJ's TZCYX order in the file.

    ImageJ stores uint8, uint16 and float32 only: uint32 labels are stored as uint16 when their
    maximum fits, else as float32 (exact up to 2**24 labels), else as a plain (non-ImageJ) uint32
    TIFF. Float data (probabilities) are stored as float32.
    """
    import tifffile

    axes = axes.upper()
    if len(axes) != labels.ndim or not {"Y", "X"} <= set(axes) or not set(axes) <= set(_IMAGEJ_ORDER):
        raise DeepsegError(f"axes {axes!r} do not describe labels of shape {labels.shape}; use TZCYX letters")
    order = [axes.index(a) for a in _IMAGEJ_ORDER if a in axes]
    data = np.transpose(labels, order)
    out_axes = "".join(axes[i] for i in order)
    data, imagej = _imagej_dtype(data)
    path = Path(path)
    with atomic_path(path) as tmp:
        if imagej:
            tifffile.imwrite(tmp, data, imagej=True, metadata={"axes": out_axes}, compression=None)
        else:
            tifffile.imwrite(tmp, data, metadata={"axes": out_axes})
    return path


def _imagej_dtype(data: np.ndarray) -> tuple[np.ndarray, bool]:
    if data.dtype.kind == "f":
        return data.astype(np.float32, copy=False), True
    if data.dtype in (np.uint8, np.uint16):
        return data, True
    top = int(data.max()) if data.size else 0
    low = int(data.min()) if data.size else 0
    if low < 0:
        raise DeepsegError("labels contain negative values; labels must be >= 0")
    if top <= np.iinfo(np.uint16).max:
        return data.astype(np.uint16), True
    if top <= 2**24:
        return data.astype(np.float32), True
    return data.astype(np.uint32, copy=False), False
