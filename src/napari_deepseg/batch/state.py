"""One batch run's shared state: a :class:`InputJob` per input and the :class:`RunContext` that
records each finished input in the manifest and the summary (and finalizes a chunked output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeepsegError
from ..io import OmeZarrLabelsWriter
from ..progress import Progress
from .files import Manifest, sha256_file
from .options import BatchSummary
from .seams import merge_block_seams
from .work import ModelRef, Options


@dataclass
class InputJob:
    """One input: where its output goes, its kind ("tiff" or "zarr"), shape, and what it recorded."""

    src: Path
    dst: Path
    kind: str  # "tiff" or "zarr"
    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str
    started: float = 0.0
    pending: int = 0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    chunks: list[Any] = field(default_factory=list)
    chunk_bytes: int = 0


def failure_reason(err: BaseException) -> str:
    """The one line a failed input is recorded with (a DeepsegError's own message)."""
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(err, DeepsegError) and first else f"{type(err).__name__}: {first}"


@dataclass
class RunContext:
    """What every step of one batch run shares; records results in the manifest and summary."""

    ref: ModelRef
    opts: Options
    manifest: Manifest
    summary: BatchSummary
    chunk_bytes: int | None
    num_classes: int = 0
    zarr_threshold: int | None = None
    files_done: int = 0
    files_total: int = 0
    limit_given: bool = False  # max_memory set by the caller (else the default limit's rule)

    def record(
        self, src: Path, job: InputJob | None, status: str, error: str | None = None, seconds=0.0, extra=None
    ) -> None:
        entry = {
            "output": str(job.dst) if job else None,
            "kind": job.kind if job else None,
            "status": status,
            "seconds": round(seconds, 3),
            "error": error,
            "shape": list(job.shape) if job else None,
            "axes": job.axes if job else None,
            "model_sha256": self.ref.sha256,
            "output_mode": self.opts.output,
        }
        if job is not None:
            keys = (
                "pid", "chunks", "resumed_chunks", "warnings", "chunk_bytes", "object_diameter",
                "uncertainty_csv",
            )  # fmt: skip
            entry.update({k: v for k, v in job.info.items() if k in keys})
            entry["block"] = self.opts.segment.block
        entry.update(extra or {})
        self.manifest.record(src, entry)
        if status == "done" and entry.get("object_diameter"):
            self.summary.sizing.append(entry["object_diameter"])
        if status == "failed":
            self.summary.failed.append((src, error or "failed"))
        elif status == "skipped":
            self.summary.skipped.append(src)
        else:
            self.summary.done.append(src)

    def finish(self, job: InputJob, seconds: float) -> Progress:
        """Finalize a Zarr output (unless the job failed), record the job; the "files" event."""
        if job.error is None and job.kind == "zarr":
            marker = {"seconds": round(seconds, 3), "model_sha256": self.ref.sha256}
            try:
                if self.opts.output == "instances":
                    marker["joined_at_block_borders"] = merge_block_seams(job.dst, job.chunks)
                OmeZarrLabelsWriter.reopen(job.dst).finalize(marker)
            except Exception as err:  # the output could not be completed: this input failed
                job.error = failure_reason(err)
        extra = None
        if job.error is None and job.kind == "tiff":
            try:
                extra = {"output_size": job.dst.stat().st_size, "output_sha256": sha256_file(job.dst)}
            except OSError as err:
                job.error = failure_reason(err)
        self.record(job.src, job, "failed" if job.error else "done", job.error, seconds, extra)
        self.files_done += 1
        state = "failed" if job.error else "done"
        return Progress("files", self.files_done, self.files_total, message=f"{job.src.name}: {state}")
