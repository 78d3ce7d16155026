"""Training checkpoints: everything needed to resume, written atomically, read with weights_only.

A checkpoint is a ``torch.save`` of plain types and tensors::

    {"format": "napari-deepseg-checkpoint", "version": 1,
     "architecture": {...}, "meta": "<ModelMeta JSON>", "config": {...},
     "model": state_dict, "best": state_dict | None, "optimizer": ..., "scheduler": ...,
     "scaler": ... | None, "step": int, "history": [...], "best_score": float | None,
     "rng": {"numpy": "<JSON bit-generator state>", "torch": ByteTensor}}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_path
from .._torchfile import load_torch_file
from ..errors import DeepsegError

FORMAT = "napari-deepseg-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``; never runs code)."""
    state = load_torch_file(path, "training checkpoint", "give another checkpoint or start the run afresh")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DeepsegError(
            f"{path} is not a napari-deepseg training checkpoint (a model file? use it as the model)"
        )
    if int(state.get("version", 0)) > VERSION:
        raise DeepsegError(f"checkpoint {path} is from a newer napari-deepseg; upgrade to resume it")
    return state
