# ruff: noqa: E501, RUF005  (a table of cases reads best one case per line)
"""Bad input to the ``deepseg`` commands: exit code, one line naming the input and the fix, no input
changed, no complete-looking output left (in-process through ``cli.main``; a few in a subprocess)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_deepseg
from napari_deepseg.cli import build_parser, main
from napari_deepseg.cli._errors import cli_message, to_cli_words
from napari_deepseg.models import ModelMeta, build_model, save_model

from .conftest import Workspace, one_line

FIX_WORDS = (
    "give", "use", "choose", "check", "fix", "rename", "move", "pass", "free", "see 'deepseg",
    "upgrade", "re-save", "replace", "lower", "name the files", "keep one", "start", "delete", "run '",
)  # fmt: skip


def _readonly_dir() -> Path | None:
    """A location even root cannot write into (sysfs), or None where it is writable."""
    probe = Path("/sys/deepseg-probe")
    try:
        probe.mkdir()
    except OSError:
        return Path("/sys/deepseg-out")
    probe.rmdir()
    return None


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/deepseg-exploit-ran",))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _semantic_model(ws: Workspace) -> Path:
    model = build_model("unet", in_channels=1, num_classes=2, base=4, depth=2)
    model.deepseg_meta = ModelMeta(name="sem", task="semantic").complete(2)
    return save_model(ws.inputs / "semantic.pt", model)


def _bad_bytes(ws: Workspace) -> Path:
    rng = np.random.default_rng(0)
    return _write(ws.inputs / "broken.pt", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _pickle_code(ws: Workspace) -> Path:
    return _write(ws.inputs / "evil.pt", pickle.dumps({"format": "x", "p": _Exploit()}, protocol=2))


def _gt_beside_image(ws: Workspace) -> Path:
    folder = ws.inputs / "together"
    folder.mkdir()
    (folder / "a0.tif").write_bytes((ws.images / "a0.tif").read_bytes())
    (folder / "a0_labels.tif").write_bytes((ws.labels / "a0_labels.tif").read_bytes())
    return folder


def _intensity_as_pred(ws: Workspace) -> Path:
    folder = ws.inputs / "pred"
    folder.mkdir()
    for i in range(2):
        (folder / f"a{i}_labels.tif").write_bytes((ws.images / f"a{i}.tif").read_bytes())
    return folder


def _float_pred(ws: Workspace) -> Path:
    folder = ws.inputs / "pred"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(folder / f"a{i}.tif", np.random.default_rng(i).random((64, 64), np.float32))
    return folder


def _negative_pred(ws: Workspace) -> Path:
    folder = ws.inputs / "pred"
    folder.mkdir()
    for i in range(2):
        lab = tifffile.imread(ws.labels / f"a{i}_labels.tif").astype(np.int32)
        lab[lab == 1] = -1
        tifffile.imwrite(folder / f"a{i}.tif", lab)
    return folder


def _small_labels(ws: Workspace) -> Path:
    folder = ws.inputs / "small"
    folder.mkdir()
    for i in range(2):
        tifffile.imwrite(folder / f"a{i}_labels.tif", np.ones((32, 32), np.uint16))
    return folder


def _other_names(ws: Workspace) -> Path:
    folder = ws.inputs / "other"
    folder.mkdir()
    tifffile.imwrite(folder / "zz_labels.tif", np.ones((64, 64), np.uint16))
    return folder


def _extra_truth(ws: Workspace) -> Path:
    folder = ws.inputs / "truth"
    folder.mkdir()
    for i in range(2):
        (folder / f"a{i}_labels.tif").write_bytes((ws.labels / f"a{i}_labels.tif").read_bytes())
    tifffile.imwrite(folder / "a9_labels.tif", np.ones((64, 64), np.uint16))
    return folder


@dataclass
class Case:
    """argv built from the workspace (and what ``setup`` made); expected code and message parts."""

    id: str
    argv: Callable[[Workspace, Path | None], list[str]]
    code: int
    says: Callable[[Workspace, Path | None], list[str]]
    setup: Callable[[Workspace], Path] | None = None
    absent: list[str] = field(default_factory=lambda: ["weights_only", "Traceback", "[Errno"])


def P(ws: Workspace, *extra: str, model: str | None = None) -> list[str]:
    """``deepseg predict images -o out --model tiny.pt`` plus ``extra``."""
    return ["predict", str(ws.images), "-o", str(ws.out), "--model", model or str(ws.model), *extra]


def T(ws: Workspace, *extra: str, out: str | None = None) -> list[str]:
    """``deepseg train --images ... --labels ... -o out/model.pt`` plus ``extra`` (tiny and fast)."""
    argv = [
        "train",
        "--images",
        str(ws.images),
        "--labels",
        str(ws.labels),
        "-o",
        out or str(ws.out / "m.pt"),
    ]
    return [
        *argv,
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "1",
        "--base-width",
        "4",
        *extra,
    ]


def E(pred: Path | str, truth: Path | str) -> list[str]:
    return ["evaluate", "--pred", str(pred), "--truth", str(truth)]


RO = _readonly_dir()

CASES = [
    # ---- predict: output location
    Case("predict-out-is-a-file", lambda w, s: P(w)[:3] + [str(w.images / "a0.tif")] + P(w)[4:], 1,
         lambda w, s: [str(w.images / "a0.tif"), "is a file"]),
    Case("predict-out-below-a-file", lambda w, s: P(w)[:3] + [str(w.images / "a0.tif" / "sub")] + P(w)[4:], 1,
         lambda w, s: [str(w.images / "a0.tif"), "is a file"]),
    Case("predict-out-read-only", lambda w, s: P(w)[:3] + [str(RO)] + P(w)[4:], 1,
         lambda w, s: [str(RO), "cannot write"]),
    Case("predict-out-replaces-ground-truth", lambda w, s: ["predict", str(s), "-o", str(s), "--model",
         str(w.model)], 1, lambda w, s: [str(s / "a0_labels.tif"), "would replace the input"], _gt_beside_image),
    # ---- predict: model files
    Case("predict-model-is-a-folder", lambda w, s: P(w, model=str(w.images)), 1,
         lambda w, s: [str(w.images), "is a folder"]),
    Case("predict-model-missing", lambda w, s: P(w, model=str(w.inputs / "nope.pt")), 1,
         lambda w, s: [str(w.inputs / "nope.pt"), "not found"]),
    Case("predict-model-empty", lambda w, s: P(w, model=str(s)), 1, lambda w, s: [str(s), "empty"],
         lambda w: _write(w.inputs / "empty.pt", b"")),
    Case("predict-model-random-bytes", lambda w, s: P(w, model=str(s)), 1,
         lambda w, s: [str(s), "damaged or not a model file"], _bad_bytes),
    Case("predict-model-text-file", lambda w, s: P(w, model=str(s)), 1,
         lambda w, s: [str(s), "damaged or not a model file"], lambda w: _write(w.inputs / "notes.pt", b"hello\n")),
    Case("predict-model-truncated", lambda w, s: P(w, model=str(s)), 1,
         lambda w, s: [str(s), "damaged or not a model file"],
         lambda w: _write(w.inputs / "half.pt", w.model.read_bytes()[:20000])),
    Case("predict-model-runs-code", lambda w, s: P(w, model=str(s)), 1,
         lambda w, s: [str(s), "run code"], _pickle_code),
    Case("predict-model-is-an-image", lambda w, s: P(w, model=str(w.images / "a0.tif")), 1,
         lambda w, s: [str(w.images / "a0.tif"), "not a model file"]),
    Case("predict-weights-wrong-model", lambda w, s: P(w, "--weights", str(s), model="unet"), 1,
         lambda w, s: ["--weights", "'unet'"], _bad_bytes),
    Case("predict-weights-missing", lambda w, s: P(w, "--weights", str(w.inputs / "w.pth"),
         model="fcn_resnet50_coco"), 1, lambda w, s: ["--weights", str(w.inputs / "w.pth"), "not found"]),
    Case("predict-weights-damaged", lambda w, s: P(w, "--weights", str(s), model="fcn_resnet50_coco"), 1,
         lambda w, s: [str(s), "damaged or not a weights file"], _bad_bytes),
    # ---- predict: options (checked before any work)
    Case("predict-tile-0", lambda w, s: P(w, "--tile", "0"), 2, lambda w, s: ["--tile", "'0'"]),
    Case("predict-tile-fraction", lambda w, s: P(w, "--tile", "100.5"), 2, lambda w, s: ["--tile", "100.5"]),
    Case("predict-overlap-negative", lambda w, s: P(w, "--overlap", "-1"), 2, lambda w, s: ["--overlap", "-1"]),
    Case("predict-overlap-not-below-tile", lambda w, s: P(w, "--tile", "64", "--overlap", "64"), 1,
         lambda w, s: ["--overlap 64", "--tile 64"]),
    Case("predict-workers-0", lambda w, s: P(w, "--workers", "0"), 2, lambda w, s: ["--workers", "'0'"]),
    Case("predict-zarr-threshold-words", lambda w, s: P(w, "--zarr-threshold", "lots"), 2,
         lambda w, s: ["--zarr-threshold", "'lots'"]),
    Case("predict-chunk-size-0", lambda w, s: P(w, "--chunk-size", "0"), 2, lambda w, s: ["--chunk-size", "'0'"]),
    Case("predict-channels-words", lambda w, s: P(w, "--channels", "red"), 2, lambda w, s: ["--channels", "'red'"]),
    Case("predict-channels-negative", lambda w, s: P(w, "--channels", "-1"), 2, lambda w, s: ["--channels"]),
    Case("predict-output-unknown", lambda w, s: P(w, "--output", "masks"), 2, lambda w, s: ["--output", "'masks'"]),
    Case("predict-precision-unknown", lambda w, s: P(w, "--precision", "fp8"), 2, lambda w, s: ["--precision"]),
    Case("predict-instances-from-semantic-model", lambda w, s: P(w, "--output", "instances", model=str(s)), 1,
         lambda w, s: ["--output classes"], _semantic_model),
    Case("predict-device-unknown", lambda w, s: P(w, "--device", "gpu"), 1, lambda w, s: ["--device gpu", "'cpu'"]),
    Case("predict-workers-and-scheduler", lambda w, s: P(w, "--workers", "1", "--scheduler", "tcp://x:1"), 2,
         lambda w, s: ["--scheduler", "--workers"]),
    Case("predict-no-out", lambda w, s: ["predict", str(w.images)], 2, lambda w, s: ["-o/--out"]),
    # ---- predict: inputs
    Case("predict-input-missing", lambda w, s: ["predict", str(w.inputs / "nothing"), "-o", str(w.out)], 1,
         lambda w, s: [str(w.inputs / "nothing"), "not found"]),
    Case("predict-input-empty-folder", lambda w, s: ["predict", str(s), "-o", str(w.out)], 1,
         lambda w, s: [str(s), "no TIFF"], lambda w: (w.inputs / "void").mkdir() or w.inputs / "void"),
    Case("unknown-command", lambda w, s: ["segment", str(w.images)], 2, lambda w, s: ["'segment'"]),
    # ---- train: outputs
    Case("train-out-is-a-label-file", lambda w, s: T(w, out=str(w.labels / "a0_labels.tif")), 1,
         lambda w, s: [str(w.labels / "a0_labels.tif"), ".pt"]),
    Case("train-out-is-a-folder", lambda w, s: T(w, out=str(s)), 1, lambda w, s: [str(s), "is a folder"],
         lambda w: (w.root / "dir.pt").mkdir() or w.root / "dir.pt"),
    Case("train-out-below-a-file", lambda w, s: T(w, out=str(w.images / "a0.tif" / "m.pt")), 1,
         lambda w, s: [str(w.images / "a0.tif"), "is a file"]),
    Case("train-out-read-only", lambda w, s: T(w, out=str(RO / "m.pt")), 1, lambda w, s: ["cannot write"]),
    Case("train-checkpoint-is-output", lambda w, s: T(w, "--checkpoint", str(w.out / "m.pt")), 1,
         lambda w, s: ["--checkpoint", str(w.out / "m.pt")]),
    Case("train-checkpoint-is-a-label-file", lambda w, s: T(w, "--checkpoint", str(w.labels / "a1_labels.tif")),
         1, lambda w, s: ["--checkpoint", str(w.labels / "a1_labels.tif"), "is an input"]),
    # ---- train: model, checkpoint and resume files
    Case("train-resume-random-bytes", lambda w, s: T(w, "--resume", str(s)), 1,
         lambda w, s: [str(s), "damaged or not a training checkpoint"], _bad_bytes),
    Case("train-resume-missing", lambda w, s: T(w, "--resume", str(w.inputs / "run.ckpt")), 1,
         lambda w, s: ["--resume", str(w.inputs / "run.ckpt"), "not found"]),
    Case("train-resume-is-a-model-file", lambda w, s: T(w, "--resume", str(w.model)), 1,
         lambda w, s: [str(w.model), "not a napari-deepseg training checkpoint"]),
    Case("train-resume-runs-code", lambda w, s: T(w, "--resume", str(s)), 1,
         lambda w, s: [str(s), "run code"], _pickle_code),
    Case("train-from-random-bytes", lambda w, s: T(w, "--from", str(s)), 1,
         lambda w, s: [str(s), "damaged or not a model file"], _bad_bytes),
    Case("train-from-folder", lambda w, s: T(w, "--from", str(w.labels)), 1,
         lambda w, s: [str(w.labels), "is a folder"]),
    Case("train-from-missing", lambda w, s: T(w, "--from", str(w.inputs / "base.pt")), 1,
         lambda w, s: [str(w.inputs / "base.pt"), "not found"]),
    # ---- train: options
    Case("train-epochs-0", lambda w, s: T(w, "--epochs", "0"), 2, lambda w, s: ["--epochs", "'0'"]),
    Case("train-batch-size-0", lambda w, s: T(w, "--batch-size", "0"), 2, lambda w, s: ["--batch-size", "'0'"]),
    Case("train-patch-size-8", lambda w, s: T(w, "--patch-size", "8"), 2, lambda w, s: ["--patch-size", "'8'"]),
    Case("train-lr-0", lambda w, s: T(w, "--lr", "0"), 2, lambda w, s: ["--lr", "'0'"]),
    Case("train-val-fraction-1", lambda w, s: T(w, "--val-fraction", "1"), 2, lambda w, s: ["--val-fraction"]),
    Case("train-steps-0", lambda w, s: T(w, "--steps-per-epoch", "0"), 2, lambda w, s: ["--steps-per-epoch"]),
    Case("train-background-negative", lambda w, s: T(w, "--background-label", "-2"), 2,
         lambda w, s: ["--background-label"]),
    Case("train-precision-unknown", lambda w, s: T(w, "--precision", "int8"), 2, lambda w, s: ["--precision"]),
    Case("train-device-unknown", lambda w, s: T(w, "--device", "tpu"), 1, lambda w, s: ["--device tpu", "'auto'"]),
    # ---- train: data
    Case("train-images-missing", lambda w, s: T(w)[:2] + [str(w.inputs / "nope")] + T(w)[3:], 1,
         lambda w, s: [str(w.inputs / "nope"), "no image files"]),
    Case("train-no-pairs", lambda w, s: T(w)[:4] + [str(s)] + T(w)[5:], 1,
         lambda w, s: [str(w.images), str(s), "no image in"], _other_names),
    Case("train-labels-wrong-shape", lambda w, s: T(w)[:4] + [str(s)] + T(w)[5:], 1,
         lambda w, s: [str(s / "a0_labels.tif"), str(w.images / "a0.tif")], _small_labels),
    # ---- evaluate
    Case("evaluate-intensity-as-pred", lambda w, s: E(s, w.labels), 1,
         lambda w, s: [str(s / "a0_labels.tif"), "intensity image"], _intensity_as_pred),
    Case("evaluate-float-pred", lambda w, s: E(s, w.labels), 1,
         lambda w, s: [str(s / "a0.tif"), "fractional"], _float_pred),
    Case("evaluate-negative-pred", lambda w, s: E(s, w.labels), 1,
         lambda w, s: [str(s / "a0.tif"), "negative"], _negative_pred),
    Case("evaluate-pred-missing", lambda w, s: E(w.inputs / "none", w.labels), 1,
         lambda w, s: [str(w.inputs / "none"), "not found"]),
    Case("evaluate-no-names-in-common", lambda w, s: E(s, w.labels), 1,
         lambda w, s: [str(s / "zz_labels.tif"), str(w.labels)], _other_names),
    Case("evaluate-truth-without-pred", lambda w, s: E(w.labels, s), 1,
         lambda w, s: [str(s / "a9_labels.tif"), str(w.labels)], _extra_truth),
    Case("evaluate-shape-mismatch", lambda w, s: E(s, w.labels), 1,
         lambda w, s: [str(s / "a0_labels.tif"), str(w.labels / "a0_labels.tif"), "shape"], _small_labels),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_bad_input(case: Case, ws: Workspace, capsys):
    if RO is None and "read-only" in case.id:
        pytest.skip("no read-only location on this machine")
    extra = case.setup(ws) if case.setup else None
    before = ws.snapshot()
    exploit = Path("/tmp/deepseg-exploit-ran")
    exploit.unlink(missing_ok=True)
    code = main(case.argv(ws, extra))
    captured = capsys.readouterr()
    assert code == case.code, captured.err
    line = one_line(captured.err)
    assert line.startswith(("deepseg: error: ", "deepseg predict: error: ", "deepseg train: error: "))
    for part in case.says(ws, extra):
        assert part in line, f"{part!r} not in {line!r}"
    assert any(word in line for word in FIX_WORDS), f"no fix in {line!r}"
    for word in case.absent:
        assert word not in line
    ws.assert_untouched(before)
    ws.assert_no_output()
    assert not exploit.exists()
    if case.code == 2 or "model" in case.id or "weights" in case.id:
        assert not ws.out.exists(), "a failed start created the output folder"


def test_failed_model_load_creates_no_folder(ws: Workspace, capsys):
    out = ws.root / "new" / "deeper"
    assert main(["predict", str(ws.images), "-o", str(out), "--model", str(ws.inputs / "missing.pt")]) == 1
    assert "not found" in one_line(capsys.readouterr().err)
    assert not (ws.root / "new").exists()


SUBPROCESS = [
    (lambda w: P(w, model=str(w.images / "a0.tif")), 1, "not a model file"),
    (lambda w: T(w, out=str(w.labels / "a0_labels.tif")), 1, ".pt"),
    (lambda w: P(w, "--tile", "0"), 2, "--tile"),
]


@pytest.mark.parametrize(("argv", "code", "part"), SUBPROCESS, ids=["bad-model", "train-out-tif", "tile-0"])
def test_cli_exit_code_and_one_line_in_a_subprocess(argv, code, part, ws: Workspace):
    before = ws.snapshot()
    src = str(Path(napari_deepseg.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run(
        [sys.executable, "-m", "napari_deepseg.cli", *argv(ws)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == code
    assert part in one_line(run.stderr)
    assert run.stdout == ""
    ws.assert_untouched(before)
    ws.assert_no_output()


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (
            PermissionError(13, "Permission denied", "/data/out/.a_labels.tif.x1y2.partial"),
            "cannot write or read /data/out/a_labels.tif (permission denied)",
        ),
        (
            PermissionError(1, "Operation not permitted", "/o/.deepseg_manifest.json.ab_c.partial"),
            "/o/deepseg_manifest.json (operation not permitted)",
        ),
        (FileExistsError(17, "File exists", "/data/out"), "/data/out is a file where a folder is needed"),
        (IsADirectoryError(21, "Is a directory", "/models"), "/models is a folder where a file is needed"),
        (
            FileNotFoundError(2, "No such file or directory", "/missing/parent/x.pt"),
            "/missing/parent/x.pt not found",
        ),
        (
            OSError(28, "No space left on device", "/big/out.tif"),
            "no space left on the disk holding /big/out.tif",
        ),
        (OSError(30, "Read-only file system", "/ro/x.tif"), "cannot write /ro/x.tif (read-only file system)"),
    ],
    ids=["EACCES-partial", "EPERM-manifest-partial", "EEXIST", "EISDIR", "ENOENT", "ENOSPC", "EROFS"],
)
def test_os_errors_are_one_line_in_plain_words(err, says):
    line = one_line(cli_message(err))
    assert says in line
    assert "[Errno" not in line
    assert ".partial" not in line
    assert any(word in line for word in FIX_WORDS)


def test_api_keywords_become_cli_options():
    parser = _predict_parser()
    assert (
        to_cli_words("patch_size must be >= 1; use device='cpu'", parser)
        == "patch_size must be >= 1; use --device cpu"
    )
    assert to_cli_words("batch_size=0 is too small", parser) == "--batch-size 0 is too small"
    assert to_cli_words("channels=[1, 2] is out of range", parser) == "--channels 1,2 is out of range"
    assert to_cli_words("chunk_bytes=0 is too small", parser) == "--chunk-size 0 is too small"


def _predict_parser():
    args = build_parser().parse_args(["predict", "x", "-o", "y"])
    return args._subparsers.choices["predict"]
