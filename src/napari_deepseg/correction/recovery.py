"""Recovery copies of labels being corrected, so that a crash or a close without saving loses
no edit (numpy and files only; the napari side is ``_napari/correct_recovery.py``).

A copy is one compressed ``.npz`` file (the labels and a small JSON record) in
:func:`recovery_dir` (``$DEEPSEG_RECOVERY_DIR``, else the user cache folder), named by the
source image's key (:func:`image_key`: a digest of its name, shape, dtype and a strided sample of
its values) and the labels' name. It is written atomically (a temporary file, then a rename), so
a copy is never half-written. Bounded: a copy larger than :data:`MAX_BYTES` is not written,
copies older than :data:`MAX_AGE_DAYS` are removed, and the oldest go when the folder holds more
than :data:`MAX_TOTAL_BYTES`. Saving the labels removes their copy (:func:`clear_copy`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_path, user_dir

RECOVERY_ENV = "DEEPSEG_RECOVERY_DIR"
MAX_BYTES = 1 << 30  # one copy: at most 1 GiB of labels (uncompressed)
MAX_TOTAL_BYTES = 2 << 30  # all copies on disk together
MAX_AGE_DAYS = 14
SAMPLE_VALUES = 1 << 20  # values of the image sampled for its key


def recovery_dir() -> Path:
    """``$DEEPSEG_RECOVERY_DIR``, else ``<user cache>/napari-deepseg/recovery`` (not created here)."""
    return user_dir("cache", RECOVERY_ENV, "recovery")


def image_key(data: Any, name: str) -> str:
    """A short key of a source image: its name, shape, dtype and a strided sample of its values.

    Cheap on any size (at most :data:`SAMPLE_VALUES` values are read); an array that is not in
    memory (dask, zarr) is keyed by name, shape and dtype only, so nothing is loaded.
    """
    digest = hashlib.blake2b(digest_size=10)
    digest.update(f"{name}|{tuple(data.shape)}|{data.dtype}".encode())
    if isinstance(data, np.ndarray) and data.size:
        flat = data.reshape(-1)
        sample = np.ascontiguousarray(flat[:: max(1, flat.size // SAMPLE_VALUES)])
        digest.update(sample.view(np.uint8))
    return digest.hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "labels"


def copy_path(key: str, labels_name: str, directory: Path | None = None) -> Path:
    """Where the copy of ``labels_name`` over the image ``key`` lives."""
    return (directory or recovery_dir()) / f"{key}-{_slug(labels_name)}.npz"


@dataclass(frozen=True)
class RecoveryCopy:
    """A copy on disk: its file, the image's key and name, the labels' name, when it was written."""

    path: Path
    key: str
    image: str
    labels: str
    saved: float
    shape: tuple[int, ...]

    def read(self) -> np.ndarray:
        """The labels array."""
        with np.load(self.path, allow_pickle=False) as npz:
            return npz["labels"]


def write_copy(
    labels: np.ndarray, key: str, image: str, labels_name: str, directory: Path | None = None
) -> Path | None:
    """Write a copy of ``labels`` (atomically); None when it is over :data:`MAX_BYTES`."""
    labels = np.asarray(labels)
    if labels.nbytes > MAX_BYTES:
        return None
    path = copy_path(key, labels_name, directory)
    record = {"key": key, "image": image, "labels": labels_name, "saved": time.time(), "shape": labels.shape}
    with atomic_path(path, suffix=".partial.npz") as tmp:
        np.savez_compressed(tmp, labels=labels, record=np.array(json.dumps(record)))
    prune(path.parent)
    return path


def write_copy_iter(
    labels: np.ndarray, key: str, image: str, labels_name: str
) -> Generator[Any, None, Path | None]:
    """:func:`write_copy` as a generator (for a GUI worker thread): yields nothing, returns the path."""
    return write_copy(labels, key, image, labels_name)
    yield  # a generator (with a return value) for start_worker


def _record(path: Path) -> RecoveryCopy | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            record = json.loads(str(npz["record"]))
        shape = tuple(int(n) for n in record["shape"])
        saved = float(record["saved"])
        return RecoveryCopy(path, record["key"], record["image"], record["labels"], saved, shape)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not a copy (or unreadable): left alone


def find_copies(key: str, directory: Path | None = None) -> list[RecoveryCopy]:
    """The copies of labels over the image ``key``, newest first."""
    folder = directory or recovery_dir()
    if not folder.is_dir():
        return []
    found = [_record(p) for p in folder.glob(f"{key}-*.npz")]
    return sorted((c for c in found if c is not None and c.key == key), key=lambda c: -c.saved)


def clear_copy(key: str, labels_name: str, directory: Path | None = None) -> bool:
    """Remove the copy of ``labels_name`` over ``key`` (the labels were saved); True if there was one."""
    path = copy_path(key, labels_name, directory)
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed


def prune(directory: Path, now: float | None = None) -> list[Path]:
    """Remove copies older than :data:`MAX_AGE_DAYS`, then the oldest beyond :data:`MAX_TOTAL_BYTES`."""
    now = time.time() if now is None else now
    found = [p for p in directory.glob("*.npz") if not p.name.startswith(".")]  # not a write under way
    files = sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
    removed, total = [], 0
    for path in files:
        size, age = path.stat().st_size, now - path.stat().st_mtime
        total += size
        if age > MAX_AGE_DAYS * 86400 or total > MAX_TOTAL_BYTES:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
