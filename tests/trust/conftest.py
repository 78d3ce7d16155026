"""Fixtures for the trust tests: a small workspace of inputs whose checksums are compared after each case.

Every bad-input case asserts four things: the exit code (or exception type), a one-line message
that names the input and says the fix, that no input file changed (SHA-256 before and after), and
that no output that looks complete was left behind (no labels file, no model file, no hidden
``.partial`` file).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_deepseg.models import ModelMeta, build_model, save_model
from napari_deepseg.samples import synthetic_nuclei


def checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> hex digest)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def looks_complete(root: Path) -> list[Path]:
    """Outputs under ``root`` that a user could take for a finished result."""
    found = [p for p in root.rglob("*") if p.name.endswith((".partial", ".partial.npz"))]
    found += [p for p in root.rglob("*_labels.tif")]
    found += [p for p in root.rglob("*.pt")] + [p for p in root.rglob("*.ckpt")]
    return sorted(found)


@dataclass
class Workspace:
    """``inputs/`` (images, labels, model files: never to change) and ``out/`` (may be created)."""

    root: Path
    images: Path
    labels: Path
    model: Path
    out: Path

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def snapshot(self) -> dict[str, str]:
        return checksums(self.inputs)

    def assert_untouched(self, before: dict[str, str]) -> None:
        assert checksums(self.inputs) == before, "an input file changed"

    def assert_no_output(self) -> None:
        left = looks_complete(self.out) if self.out.exists() else []
        assert not left, f"a failed run left outputs: {left}"


def one_line(text: str) -> str:
    """The single non-empty line of ``text`` (fails when there are more or none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {lines}"
    return lines[0]


@pytest.fixture(scope="session")
def _model_bytes(tmp_path_factory) -> bytes:
    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="tiny", task="instance-boundary").complete(3)
    path = save_model(tmp_path_factory.mktemp("model") / "tiny.pt", model.eval())
    return path.read_bytes()


@pytest.fixture
def ws(tmp_path, _model_bytes) -> Workspace:
    """Two 64x64 uint16 images with instance labels, and the tiny model file."""
    images, labels = tmp_path / "inputs" / "images", tmp_path / "inputs" / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for i in range(2):
        image, lab = synthetic_nuclei((64, 64), seed=i)
        tifffile.imwrite(images / f"a{i}.tif", image)
        tifffile.imwrite(labels / f"a{i}_labels.tif", lab.astype(np.uint16))
    model = tmp_path / "inputs" / "tiny.pt"
    model.write_bytes(_model_bytes)
    return Workspace(tmp_path, images, labels, model, tmp_path / "out")
