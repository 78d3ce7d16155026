"""Where a run's output arrays live: in memory, or in scratch files mapped into memory.

A 16384 x 16384 plane's uint32 instances take 1 GiB and its classes 256 MiB: more than a
2 GiB memory limit leaves once Python, torch, the model and the image are loaded. When a run's
outputs would take more than half of what its memory limit leaves (:func:`.memory.run_room`),
:class:`OutputStore` puts them in files in a scratch directory instead and maps them into the
process. They are ordinary writable ``numpy.ndarray`` objects (views of an ``mmap``), so every
caller (napari layers, the Correct tools, ``np.save``) works unchanged. The run calls
:meth:`OutputStore.release` after each block: the pages written so far leave the process's
resident set (``madvise(MADV_DONTNEED)``; the kernel keeps them in the page cache and writes
them to the file), so memory stays one block's work. Reading such an array later maps its pages
in again as clean, reclaimable file pages.

The file is unlinked as soon as it is mapped (POSIX), so nothing is left on disk once the
arrays are freed, even after a crash. The scratch directory is ``$DEEPSEG_SCRATCH`` if set,
else the system temporary directory unless that is a RAM file system (tmpfs), then
``~/.cache/napari-deepseg/scratch``. Without the free disk space, outputs stay in memory and the
run warns (:mod:`.job`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DeepsegError
from . import memory

SCRATCH_ENV = "DEEPSEG_SCRATCH"
_RAM_FILESYSTEMS = {"tmpfs", "ramfs"}
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)  # absent on Windows: release does nothing


def _filesystem_type(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The file system type of the mount holding ``path`` (from Linux ``mounts``), else None."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    resolved = str(path.resolve())
    for line in lines:
        parts = line.split()
        inside = len(parts) >= 3 and (resolved == parts[1] or resolved.startswith(parts[1].rstrip("/") + "/"))
        if inside and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def scratch_dir() -> Path:
    """The directory for outputs kept on disk (see the module docstring); created if needed."""
    given = os.environ.get(SCRATCH_ENV)
    if given:
        path = Path(given).expanduser()
    else:
        path = Path(tempfile.gettempdir())
        if _filesystem_type(path) in _RAM_FILESYSTEMS:
            path = Path.home() / ".cache" / "napari-deepseg" / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_disk(path: Path) -> int:
    """Bytes free for this user on the file system of ``path``."""
    return int(shutil.disk_usage(path).free)


def _mapped_zeros(directory: Path, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, mmap.mmap]:
    """A zero-filled array of ``shape`` backed by a new (sparse, unlinked) file in ``directory``."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    fix = f"set {SCRATCH_ENV} to a writable folder with free space, or raise max_memory"
    try:
        fd, name = tempfile.mkstemp(prefix="deepseg-output-", suffix=".raw", dir=directory)
    except OSError as err:
        raise DeepsegError(f"cannot create a scratch file in {directory} ({err.strerror}); {fix}") from err
    try:
        os.ftruncate(fd, nbytes)
        mapped = mmap.mmap(fd, nbytes)
    except OSError as err:
        size = f"{nbytes / 2**30:.1f} GB"
        raise DeepsegError(f"cannot map a {size} scratch file in {directory} ({err}); {fix}") from err
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):  # Windows cannot remove a mapped file; its temp cleaner will
            os.unlink(name)
    return np.frombuffer(mapped, dtype).reshape(shape), mapped


class OutputStore:
    """Allocates one run's output arrays, in memory or (past its room) in scratch files.

    Args:
        limit: the run's memory limit in bytes (:func:`.memory.memory_limit`).
        limit_given: the caller set the limit (see :func:`.memory.run_room`).
        directory: the scratch directory (default :func:`scratch_dir`, looked up when needed).
    """

    def __init__(self, limit: int, limit_given: bool, directory: Path | None = None) -> None:
        self.limit = limit  # the run's limit, decided once (the run's job and blocks use it too)
        self.room = memory.run_room(limit, memory.in_use(), 0, limit_given) // 2
        self.directory = directory
        self.on_disk = False
        self.no_space = False
        self._maps: list[mmap.mmap] = []

    def reserve(self, nbytes: int) -> bool:
        """Decide where outputs of ``nbytes`` in all go: True (on disk) when they exceed what is
        left of the room for outputs, or when outputs already went to disk; False (memory) when
        they fit (their bytes are then taken from the room) or the disk lacks the space."""
        if not self.on_disk and nbytes > self.room and nbytes > 0:
            try:
                self.directory = self.directory or scratch_dir()
                space = free_disk(self.directory)
            except OSError:  # e.g. $DEEPSEG_SCRATCH not writable: as without space (warned)
                self.directory = self.directory or Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir())
                space = 0
            if space >= nbytes + (256 << 20):
                self.on_disk = True
            else:
                self.no_space = True
        if not self.on_disk:
            self.room -= nbytes
        return self.on_disk

    def zeros(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """A zero-filled array: mapped from a scratch file once the store is on disk."""
        shape = tuple(int(n) for n in shape)
        if not self.on_disk or 0 in shape:
            return np.zeros(shape, dtype)
        array, mapped = _mapped_zeros(self.directory, shape, np.dtype(dtype))
        self._maps.append(mapped)
        return array

    def release(self) -> None:
        """Drop the pages written so far from the resident set (kept in the page cache and the
        file; read back on access). A no-op for outputs in memory."""
        if _DONTNEED is None:
            return
        for mapped in self._maps:
            mapped.madvise(_DONTNEED)

    @property
    def where(self) -> str:
        """``"memory"`` or ``"disk"``: for the result's meta."""
        return "disk" if self.on_disk else "memory"
