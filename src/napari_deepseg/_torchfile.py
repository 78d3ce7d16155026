"""Reading torch files (model files, checkpoints, weights) safely, with one-line errors.

Every torch file is read with ``torch.load(weights_only=True)``: loading never runs code. When a
file cannot be read, the message says the file is damaged or not the expected kind of file and
how to get a good one. It never repeats torch's own advice to retry with ``weights_only=False``,
the one thing a user must never do with a file of unknown origin.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path
from typing import Any

from .errors import ModelFileError

_IMPORT_OPS = {"GLOBAL", "STACK_GLOBAL", "INST"}
_CALL_OPS = {"REDUCE", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD", "INST"}


def pickle_calls_code(path: Path) -> bool:
    """Whether ``path`` is a well-formed pickle (raw or in a torch zip) that imports and calls.

    Only disassembles the opcodes (``pickletools.genops``): nothing is executed. Tells a pickle
    that would run code from random or truncated bytes after weights_only refused both.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                data = archive.read(name)
        else:
            data = path.read_bytes()
        ops = {op.name for op, _arg, _pos in pickletools.genops(data)}
    except (ValueError, OSError, EOFError, StopIteration, KeyError, zipfile.BadZipFile):
        return False
    return bool(ops & _IMPORT_OPS) and bool(ops & _CALL_OPS)


def load_torch_file(path: str | os.PathLike, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, or a one-line :class:`ModelFileError`.

    Args:
        path: the file.
        what: what the file should be, e.g. ``"model file"``, ``"checkpoint"``, ``"weights file"``.
        fix: what the user should do about a bad file, e.g. ``"re-save or re-download it"``.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{what} {path} is a folder, not a file; give the {what} itself")
    if not path.is_file():
        raise ModelFileError(f"{what} {path} not found; check the path")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{what} {path} is empty (0 bytes); {fix}")
    try:
        with warnings.catch_warnings():  # torch's own notes (pickle protocol, ...) are not for users
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err) or "Unsupported global" in str(err) or pickle_calls_code(path):
            raise ModelFileError(
                f"{path} contains Python objects that would run code when loaded, so it is refused "
                f"(it is not a plain {what}); {fix}"
            ) from None
        raise ModelFileError(f"{path} is damaged or not a {what}; {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, KeyError, IndexError, zipfile.BadZipFile):
        raise ModelFileError(f"{path} is damaged or not a {what}; {fix}") from None
