"""Input expansion, output naming, the run manifest and resume decisions.

The manifest ``OUT_DIR/deepseg_manifest.json`` (written atomically after every file)::

    {"format": "napari-deepseg-batch", "schema_version": 1,
     "package_version": "0.1.0", "created": ISO time, "updated": ISO time,
     "model": {"name": ..., "path": ..., "sha256": ...},
     "options": {"output": "instances", "axes": null, "channels": null, "tile": null, ...},
     "runs": [{"started": ..., "finished": ..., "done": 3, "skipped": 1, "failed": 0}],
     "files": {"/abs/input.tif": {"output": "/abs/out/input_labels.tif", "kind": "tiff",
               "status": "done" | "failed" | "skipped", "seconds": 1.2, "error": null,
               "shape": [...], "axes": "ZYX", "model_sha256": ..., "output_mode": "instances",
               "output_size": bytes, "output_sha256": ... (TIFF outputs), "finished": ISO time}}}

Resume trusts only outputs this manifest records as complete whose size and checksum still
match (:meth:`Manifest.resume_decision`); files recorded as outputs are never taken as inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .._files import atomic_path
from ..errors import DeepsegError
from ..inference.memory import parse_size  # noqa: F401  (re-exported: batch callers use it)
from ..io import image_stem, is_complete

MANIFEST_NAME = "deepseg_manifest.json"
MANIFEST_FORMAT = "napari-deepseg-batch"
OUTPUT_SUFFIX = "_labels"


def now() -> str:
    """Local time as an ISO 8601 string with seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def output_path(src: Path, out_dir: Path, kind: str) -> Path:
    """``OUT_DIR/<stem>_labels.tif`` (kind ``"tiff"``) or ``OUT_DIR/<stem>_labels.zarr``."""
    suffix = ".zarr" if kind == "zarr" else ".tif"
    return Path(out_dir).absolute() / f"{image_stem(src)}{OUTPUT_SUFFIX}{suffix}"


def check_unique_outputs(sources: Sequence[Path], out_dir: Path) -> None:
    """Raise when two inputs would write the same output name (same stem in two folders)."""
    seen: dict[str, Path] = {}
    for src in sources:
        key = image_stem(src)
        if key in seen:
            raise DeepsegError(
                f"{seen[key]} and {src} would both write {key}{OUTPUT_SUFFIX}.*; "
                "process them into separate output folders"
            )
        seen[key] = src


def check_outputs_not_inputs(sources: Sequence[Path], out_dir: Path) -> None:
    """Raise when an output of this run would be written over one of its inputs."""
    inputs = {str(Path(s).resolve()): s for s in sources}
    for src in sources:
        for kind in ("tiff", "zarr"):
            dst = output_path(src, out_dir, kind)
            if str(dst.resolve()) in inputs:
                raise DeepsegError(
                    f"the output of {src} would replace the input {dst}; "
                    "choose another output folder (-o) or rename the input"
                )


def output_complete(path: Path, kind: str) -> bool:
    """A TIFF output exists only once renamed from its temporary name; Zarr needs its marker.

    Existing is not trusted for resume: see :meth:`Manifest.resume_decision`."""
    return is_complete(path) if kind == "zarr" else path.is_file()


def sha256_file(path: str | os.PathLike, block: int = 2**20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Manifest:
    """The run manifest in ``out_dir``; :meth:`save` writes it atomically."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, out_dir: Path) -> Manifest:
        """Read ``out_dir``'s manifest, or start an empty one (a corrupt one raises)."""
        path = Path(out_dir) / MANIFEST_NAME
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DeepsegError(f"{path} is not valid JSON ({err}); delete it to start afresh") from None
            shaped = isinstance(data, dict) and isinstance(data.get("files", {}), dict)
            if (
                not shaped
                or data.get("format") != MANIFEST_FORMAT
                or not isinstance(data.get("runs", []), list)
            ):
                raise DeepsegError(f"{path} is not a napari-deepseg batch manifest; delete or move it")
        else:
            data = {
                "format": MANIFEST_FORMAT,
                "schema_version": 1,
                "created": now(),
                "files": {},
                "runs": [],
            }
        return cls(path, data)

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("files", {})

    def start_run(self, model: dict[str, Any], options: dict[str, Any]) -> None:
        self.data.update(package_version=__version__, model=model, options=options)
        self.data.setdefault("runs", []).append({"started": now()})

    def record(self, src: Path, entry: dict[str, Any]) -> None:
        """Set ``src``'s entry (adds the finish time) and save."""
        self.files[str(src)] = {**entry, "finished": now()}
        self.save()

    def finish_run(self, counts: dict[str, int]) -> None:
        self.data["runs"][-1].update(finished=now(), **counts)
        self.save()

    def save(self) -> None:
        self.data["updated"] = now()
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1))

    def resume_decision(
        self, src: Path, out: Path, kind: str, model_sha: str, output_mode: str
    ) -> tuple[str, str | None]:
        """What to do with ``src`` whose output is ``out``: ``(action, reason)``.

        Resume trusts content, not names (docs/batch.md, "Resume rules"):

        - ``"run"``: no output yet, or an output this manifest recorded that was made with
          another model or output mode (it is replaced), or an unfinished Zarr store;
        - ``"skip"``: the manifest records ``out`` as this input's complete output, made with
          the same model and output mode, and (TIFF) its size and SHA-256 still match;
        - ``"refuse"`` (with the reason): ``out`` exists but the manifest does not record it as
          this input's output (e.g. the user's own ground truth), or it changed since it was
          written (truncated, edited). It is left untouched and the input reported as failed;
          ``--overwrite`` replaces it.
        """
        if not (out.exists() if kind == "zarr" else out.is_file() or out.is_symlink()):
            return "run", None
        entry = self.files.get(str(src))
        recorded = (
            entry is not None
            and entry.get("status") in ("done", "skipped")
            and entry.get("output") == str(out)
        )
        foreign = f"{out} exists but {self.path.name} does not record it as this input's output"
        if kind == "zarr":
            if not output_complete(out, kind):
                return "run", None  # a killed run's unfinished store is ours to redo
            if not recorded:
                return "refuse", foreign
        elif not recorded or "output_sha256" not in entry:
            return "refuse", foreign
        elif (
            not out.is_file()
            or out.stat().st_size != entry.get("output_size")
            or (sha256_file(out) != entry.get("output_sha256"))
        ):
            return "refuse", f"{out} changed since deepseg wrote it (size or checksum differ)"
        same = entry.get("model_sha256") == model_sha and entry.get("output_mode") == output_mode
        return ("skip", None) if same else ("run", None)

    def recorded_outputs(self) -> set[str]:
        """Absolute paths of every output this manifest records (never inputs of a later run)."""
        done = ("done", "skipped")
        return {e["output"] for e in self.files.values() if e.get("output") and e.get("status") in done}
