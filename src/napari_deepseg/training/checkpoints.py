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
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .._files import atomic_path
from .._torchfile import load_torch_file
from ..errors import DeepsegError
from .validation import VAL_KEYS

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


#: settings a resumed run must share with the checkpoint's (patch_size is clamped to the data)
RESUME_SETTINGS = (
    "epochs", "lr", "batch_size", "steps_per_epoch", "sparse", "background_label", "schedule", "seed",
    "val_fraction", "zoom", "replay", "minutes", "task", "channels", "axes", "distance",
)  # fmt: skip


def data_record(pairs: list[Any]) -> dict[str, Any]:
    """``{"sha256", "pairs"}``: SHA-256 over the images and labels of training pairs (tuples,
    dicts or TrainingPair) and their number; a checkpoint keeps it, a resume must match it."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for pair in pairs:
        if isinstance(pair, dict):
            parts = [pair.get("image"), pair.get("labels")]
        elif isinstance(pair, (tuple, list)):
            parts = list(pair[:2])
        else:
            parts = [getattr(pair, "image", None), getattr(pair, "labels", None)]
        for part in parts:
            array = np.ascontiguousarray(np.asarray(part))
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return {"sha256": digest.hexdigest(), "pairs": len(pairs)}


def check_resume(path: Any, state: dict[str, Any], data: dict[str, Any], given: dict[str, Any]) -> None:
    """Refuse to resume ``state`` with other training data, or with other settings in ``given``."""
    recorded = state.get("data")
    if recorded is not None and recorded.get("sha256") != data["sha256"]:
        raise DeepsegError(
            f"resume={path} continues a run on other training data ({recorded.get('pairs')} pair(s)); "
            "give the same images and labels as that run, or start afresh without resume"
        )
    saved = state.get("config", {})
    changed = [
        f"{name}={given[name]!r} (the run used {saved.get(name)!r})"
        for name in RESUME_SETTINGS
        if name in given and name in saved and given[name] != saved[name]
    ]
    if changed:
        raise DeepsegError(
            f"resume={path} continues a run with other settings: {', '.join(changed)}; "
            "resume with the run's settings, or start afresh without resume"
        )


def run_provenance(trainer: Any, stopped: bool) -> dict[str, Any]:
    """The provenance a trainer's model file records (data, schedule, scores, settings)."""
    best = next((h for h in trainer.history if h["epoch"] == trainer.best_epoch), None)
    return {
        "training": "napari-deepseg finetune",
        "base_model": trainer.source,
        "base_model_date": trainer.meta.provenance.get("date"),
        "sources": trainer.data.sources,
        "validation": trainer.data.val_sources,
        "annotated_pixels": dict(zip(trainer.meta.class_names, map(int, trainer.data.counts))),
        "sparse": trainer.cfg.sparse,
        "epochs": trainer.epochs_done,
        "epochs_planned": trainer.cfg.epochs,
        "patch_size": trainer.data.in_size,
        "steps": trainer.step,
        "best_epoch": trainer.best_epoch,
        "val_metrics": None if best is None else {k: best.get(k) for k in VAL_KEYS},
        "config": asdict(trainer.cfg),
        "device": trainer.device.type,
        "precision": trainer.precision,
        "stopped_early": stopped,
        "stopped_by_time_budget": trainer.out_of_time,
        "verdict": trainer.verdict_text(),
        "object_diameter": trainer.meta.object_diameter,
        "boundary_width": trainer.meta.boundary_width,
        "replay": {"regions": trainer.data.replayed, "share": trainer.data.replay_share},
        "rescaled_pairs": sum(1 for v in trainer.data.scales if v != 1.0),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
    }
