"""What a batch run reports (:class:`BatchSummary`) and its options, checked before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeepsegError
from ..inference.memory import BatchSizes, batch_sizes
from ..models import class_count
from ..models.catalog import resolve_model_path
from ..models.modelfile import makes_instances
from .files import sha256_file
from .work import ModelRef, get_model


@dataclass
class BatchSummary:
    """What a batch did; ``exit_code`` is 1 when any input failed."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    manifest: Path | None = None
    seconds: float = 0.0
    sizing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def text(self) -> str:
        """A few lines: counts, the object diameters used, one line per failed input with its reason."""
        lines = [
            f"{len(self.done)} segmented, {len(self.skipped)} skipped (already done), "
            f"{len(self.failed)} failed in {self.seconds:.1f} s; manifest: {self.manifest}"
        ]
        if self.sizing:
            lines[0] += "; " + _sizing_text(self.sizing)
        lines += [f"FAILED {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


def _sizing_text(sizing: list[dict[str, Any]]) -> str:
    """'object diameter 14.2-31.0 px (estimated, median 18.1; model trained at 16)' and the like."""
    found = [s["object_diameter"] for s in sizing if s.get("object_diameter")]
    sources = sorted({s["source"].split(";")[0] for s in sizing})
    trained = f"model trained at {sizing[0]['model_diameter']:g} px"
    if not found:
        return f"object diameter: no objects to measure ({trained})"
    span = f"{min(found):.1f}" if len(found) == 1 else f"{min(found):.1f}-{max(found):.1f}"
    return f"object diameter {span} px ({', '.join(sources)}, median {np.median(found):.1f}; {trained})"


def model_ref(model: str | os.PathLike) -> tuple[ModelRef, Any]:
    path = resolve_model_path(model).absolute()
    ref = ModelRef(str(path), sha256_file(path), Path(path).stem)
    return ref, get_model(ref)


def resolve_output(output: str, model: Any) -> str:
    instances = makes_instances(model)
    if output == "auto":
        return "instances" if instances else "classes"
    if output == "instances" and not instances:
        raise DeepsegError("this model predicts classes only (task 'semantic'); use --output classes")
    return output


def policy_sizes(
    limit: int, pixel_bytes: int, model: Any, output: str, limit_given: bool = True
) -> BatchSizes:
    """The memory policy's sizes for inputs of ``pixel_bytes`` per Y/X pixel."""
    k = class_count(model) or 3
    return batch_sizes(limit, pixel_bytes, k, output == "instances", limit_given=limit_given)


def check_uncertainty(uncertainty: bool, model: Any) -> bool:
    if uncertainty and not makes_instances(model):
        raise DeepsegError("--uncertainty ranks objects: it needs a model that predicts instances")
    return bool(uncertainty)
