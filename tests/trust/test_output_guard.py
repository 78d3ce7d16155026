# ruff: noqa: E501  (a table of cases reads best one case per line)
"""The one output guard (``_files.guard_output``), once per writer: ``deepseg train``, ``export``,
``evaluate --json``, ``save_model``, ``finetune(output=, checkpoint=)``, ``export_bioimageio``. Each
refusal is one line naming the file and the fix, and nothing under the workspace changes (SHA-256 of
every file, outputs included, before and after; no new file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_deepseg._files import guard_output
from napari_deepseg.cli import main
from napari_deepseg.errors import DeepsegError
from napari_deepseg.models import load_model, save_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.sharing import export_bioimageio
from napari_deepseg.training import finetune

from .conftest import Workspace, checksums, one_line


def _existing(ws: Workspace, name: str, data: bytes = b"the user's own file\n") -> Path:
    ws.out.mkdir(exist_ok=True)
    path = ws.out / name
    path.write_bytes(data)
    return path


def T(ws: Workspace, *extra: str) -> list[str]:
    """A tiny ``deepseg train`` without -o (cases add it)."""
    return ["train", "--images", str(ws.images), "--labels", str(ws.labels), "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "32", "--base-width", "4",
            "--precision", "fp32", "--quiet", *extra]  # fmt: skip


def X(ws: Workspace, out: Path | str, *extra: str) -> list[str]:
    return ["export", str(ws.model), "-o", str(out), "--no-torchscript", *extra]


def J(ws: Workspace, json_path: Path | str, *extra: str) -> list[str]:
    return ["evaluate", "--pred", str(ws.labels), "--truth", str(ws.labels), "--json", str(json_path), *extra]


@dataclass
class CliCase:
    id: str
    argv: Callable[[Workspace], list[str]]
    says: Callable[[Workspace], list[str]]


CLI_CASES = [
    # ---- deepseg train -o / --save-as / --checkpoint
    CliCase("train-o-existing-model", lambda w: T(w, "-o", str(_existing(w, "m.pt", w.model.read_bytes()))), lambda w: [str(w.out / "m.pt"), "exists", "--overwrite"]),
    CliCase("train-o-existing-anything", lambda w: T(w, "-o", str(_existing(w, "notes.pt"))), lambda w: [str(w.out / "notes.pt"), "exists", "--overwrite"]),
    CliCase("train-o-label-tif", lambda w: T(w, "-o", str(w.labels / "a0_labels.tif")), lambda w: [str(w.labels / "a0_labels.tif"), ".pt"]),
    CliCase("train-o-no-suffix", lambda w: T(w, "-o", str(w.out / "model")), lambda w: [str(w.out / "model"), "has no suffix", "model.pt"]),
    CliCase("train-o-is-the-start-model", lambda w: T(w, "-o", str(w.model), "--from", str(w.model)), lambda w: [str(w.model), "is an input of this run"]),
    CliCase("train-o-is-a-folder", lambda w: T(w, "-o", str(w.inputs / "dir.pt")), lambda w: [str(w.inputs / "dir.pt"), "is a folder"]),
    CliCase("train-checkpoint-is-a-label", lambda w: T(w, "-o", str(w.out / "m.pt"), "--checkpoint", str(w.labels / "a1_labels.tif")), lambda w: [str(w.labels / "a1_labels.tif"), "is an input of this run"]),
    CliCase("train-checkpoint-is-an-image", lambda w: T(w, "-o", str(w.out / "m.pt"), "--checkpoint", str(w.images / "a0.tif")), lambda w: [str(w.images / "a0.tif"), "is an input of this run"]),
    CliCase("train-checkpoint-existing", lambda w: T(w, "-o", str(w.out / "m.pt"), "--checkpoint", str(_existing(w, "run.ckpt"))), lambda w: [str(w.out / "run.ckpt"), "exists", "--overwrite"]),
    CliCase("train-default-checkpoint-existing", lambda w: T(w, "-o", str(w.out / "m.pt")) if _existing(w, "m.pt.ckpt") else [], lambda w: [str(w.out / "m.pt.ckpt"), "exists", "--overwrite"]),
    CliCase("train-save-as-existing", lambda w: T(w, "--save-as", "mine") if w.user_model("mine") else [], lambda w: ["mine.pt", "exists", "--overwrite"]),
    # ---- deepseg export -o
    CliCase("export-o-existing-zip", lambda w: X(w, _existing(w, "pkg.zip")), lambda w: [str(w.out / "pkg.zip"), "exists", "--overwrite"]),
    CliCase("export-o-pt", lambda w: X(w, w.out / "pkg.pt"), lambda w: [str(w.out / "pkg.pt"), ".zip", "pkg.zip"]),
    CliCase("export-o-the-model-itself", lambda w: X(w, w.model), lambda w: [str(w.model), "is an input of this run"]),
    CliCase("export-o-the-test-image", lambda w: X(w, w.images / "a0.tif", "--test-image", str(w.images / "a0.tif")), lambda w: [str(w.images / "a0.tif"), "is an input of this run"]),
    CliCase("export-o-label-tif", lambda w: X(w, w.labels / "a0_labels.tif"), lambda w: [str(w.labels / "a0_labels.tif"), ".zip"]),
    # ---- deepseg evaluate --json
    CliCase("evaluate-json-onto-truth", lambda w: J(w, w.labels / "a0_labels.tif"), lambda w: [str(w.labels / "a0_labels.tif"), "is an input of this run"]),
    CliCase("evaluate-json-onto-pred", lambda w: ["evaluate", "--pred", str(w.images), "--truth", str(w.labels), "--json", str(w.images / "a1.tif")], lambda w: [str(w.images / "a1.tif"), "is an input of this run"]),
    CliCase("evaluate-json-existing", lambda w: J(w, _existing(w, "scores.json", b"{}")), lambda w: [str(w.out / "scores.json"), "exists", "--overwrite"]),
    CliCase("evaluate-json-txt", lambda w: J(w, w.out / "scores.txt"), lambda w: [str(w.out / "scores.txt"), ".json", "scores.json"]),
    CliCase("evaluate-json-folder", lambda w: J(w, w.inputs / "dir.json"), lambda w: [str(w.inputs / "dir.json"), "is a folder"]),
]  # fmt: skip


@pytest.fixture
def gws(ws: Workspace, user_models, monkeypatch) -> Workspace:
    """The trust workspace, with a folder named like a file and a user model maker."""
    (ws.inputs / "dir.pt").mkdir()
    (ws.inputs / "dir.json").mkdir()
    ws.user_model = lambda name: _write_user_model(user_models, name, ws.model)  # type: ignore[attr-defined]
    return ws


def _write_user_model(folder: Path, name: str, model: Path) -> Path:
    path = folder / f"{name}.pt"
    path.write_bytes(model.read_bytes())
    return path


def _everything(ws: Workspace, user_models: Path) -> dict[str, str]:
    return {**checksums(ws.root), **{f"user/{k}": v for k, v in checksums(user_models).items()}}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_writer_refuses(case: CliCase, gws: Workspace, user_models, capsys):
    argv = case.argv(gws)
    before = _everything(gws, user_models)
    code = main(argv)
    line = one_line(capsys.readouterr().err)
    assert code == 1, line
    for part in case.says(gws):
        assert part in line, f"{part!r} not in {line!r}"
    assert "overwrite=True" not in line  # CLI words, not API words
    assert _everything(gws, user_models) == before, "a file changed or appeared"


# ---------------------------------------------------------------- the Python API


@pytest.fixture
def pair():
    image, labels = synthetic_nuclei((48, 48), seed=2)
    return [(image, labels.astype(np.int32))]


def _fit(**kw):
    return {"epochs": 1, "steps_per_epoch": 1, "batch_size": 1, "patch_size": 32, "precision": "fp32",
            "val_fraction": 0, "arch_options": {"base": 4, "depth": 2}, **kw}  # fmt: skip


@dataclass
class ApiCase:
    id: str
    call: Callable  # (model, pair, workspace) -> None
    says: tuple[str, ...]


API_CASES = [
    ApiCase("save-model-onto-label-tif", lambda m, p, w: save_model(w.labels / "a0_labels.tif", m), ("a0_labels.tif", ".pt")),
    ApiCase("save-model-labels-tif-new", lambda m, p, w: save_model(w.out / "labels.tif", m), ("labels.tif", "ends in .tif", "labels.pt")),
    ApiCase("save-model-existing", lambda m, p, w: save_model(w.model, m), ("tiny.pt", "exists", "overwrite=True")),
    ApiCase("save-model-under-a-file", lambda m, p, w: save_model(w.images / "a0.tif" / "m.pt", m), ("a0.tif", "is a file")),
    ApiCase("save-model-folder", lambda m, p, w: save_model(w.inputs / "dir.pt", m), ("dir.pt", "is a folder")),
    ApiCase("save-model-empty-name", lambda m, p, w: save_model("", m), ("file path", "give a file name")),
    ApiCase("save-model-none", lambda m, p, w: save_model(None, m), ("None", "give a file name")),
    ApiCase("finetune-output-label-tif", lambda m, p, w: finetune(p, m, output=w.labels / "a0_labels.tif", **_fit()), ("a0_labels.tif", ".pt")),
    ApiCase("finetune-output-existing", lambda m, p, w: finetune(p, m, output=w.model, **_fit()), ("tiny.pt", "exists", "overwrite=True")),
    ApiCase("finetune-output-is-start-file", lambda m, p, w: finetune(p, str(w.model), output=w.model, **_fit()), ("tiny.pt", "is an input of this run")),
    ApiCase("finetune-checkpoint-existing", lambda m, p, w: finetune(p, m, output=w.out / "new.pt", checkpoint=w.labels / "a1_labels.tif", **_fit()), ("a1_labels.tif", "exists", "overwrite=True")),
    ApiCase("finetune-checkpoint-is-start-file", lambda m, p, w: finetune(p, str(w.model), checkpoint=w.model, **_fit()), ("tiny.pt", "is an input of this run")),
    ApiCase("export-existing-zip", lambda m, p, w: export_bioimageio(m, w.out / "pkg.zip"), ("pkg.zip", "exists", "overwrite=True")),
    ApiCase("export-onto-label-tif", lambda m, p, w: export_bioimageio(m, w.labels / "a0_labels.tif"), ("a0_labels.tif", ".zip")),
    ApiCase("export-folder", lambda m, p, w: export_bioimageio(m, w.inputs / "dir.zip"), ("dir.zip", "is a folder")),
]  # fmt: skip


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_writer_refuses(case: ApiCase, ws: Workspace, pair, tiny_unet):
    (ws.inputs / "dir.pt").mkdir()
    (ws.inputs / "dir.zip").mkdir()
    _existing(ws, "pkg.zip")
    before = checksums(ws.root)
    with pytest.raises(DeepsegError) as info:
        case.call(tiny_unet, pair, ws)
    line = one_line(str(info.value))
    for part in case.says:
        assert part in line, f"{part!r} not in {line!r}"
    assert checksums(ws.root) == before, "a file changed or appeared"


# ---------------------------------------------------------------- told to: replaced, atomically


def test_overwrite_replaces_in_every_writer(ws: Workspace, pair, tiny_unet, capsys):
    target = _existing(ws, "m.pt")
    save_model(target, tiny_unet, overwrite=True)
    assert load_model(target).deepseg_meta.name == "tiny"
    finetune(pair, tiny_unet, output=target, overwrite=True, **_fit())
    assert load_model(target).deepseg_meta.provenance["training"] == "napari-deepseg finetune"
    report = _existing(ws, "scores.json", b"old")
    assert main(J(ws, report, "--overwrite")) == 0
    assert report.read_text().startswith("{")
    model = _existing(ws, "cli.pt")
    assert main(T(ws, "-o", str(model), "--overwrite")) == 0
    assert load_model(model).deepseg_meta.provenance["epochs"] == 1
    assert not list(ws.out.glob(".*partial*"))


def test_train_resume_may_replace_the_files_of_the_run_it_continues(ws: Workspace, capsys):
    out = ws.out / "m.pt"
    assert main(T(ws, "-o", str(out))) == 0
    assert main(T(ws, "-o", str(out), "--resume", str(out.with_name("m.pt.ckpt")))) == 0
    other = ws.out / "other.pt"
    other.write_bytes(b"someone else's file")
    before = other.read_bytes()
    assert main(T(ws, "-o", str(other), "--resume", str(out.with_name("m.pt.ckpt")))) == 1
    line = one_line(capsys.readouterr().err)
    for part in (str(other), "exists", "--overwrite"):
        assert part in line
    assert other.read_bytes() == before


def test_guard_sees_an_input_through_a_link(tmp_path: Path):
    real = tmp_path / "truth.tif"
    tifffile.imwrite(real, np.ones((4, 4), np.uint8))
    link = tmp_path / "scores.json"
    link.symlink_to(real)
    with pytest.raises(DeepsegError, match="is an input of this run"):
        guard_output(link, what="--json file", suffixes=(".json",), inputs=(real,), overwrite=True)
    assert guard_output(tmp_path / "new.json", suffixes=(".json",)) == (tmp_path / "new.json").absolute()
