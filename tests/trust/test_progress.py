"""CLI progress: plain periodic lines when stderr is not a terminal, bars kept apart from train's epoch
table on a terminal, and the result line printed even with --quiet."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import tifffile

from napari_deepseg.cli import main
from napari_deepseg.cli._progress import echo, run_with_progress
from napari_deepseg.progress import Progress

from .conftest import Workspace


def _events(n: int):
    for i in range(1, n + 1):
        yield Progress("step", i, n, info={"loss": 0.5})
        if i % 3 == 0:
            yield Progress("epoch", i // 3, n // 3, info={"epoch": i // 3})
    return "done"


def test_plain_lines_when_stderr_is_not_a_terminal(ws: Workspace, capsys, monkeypatch):
    monkeypatch.setenv("DEEPSEG_PROGRESS_INTERVAL", "0")
    code = main(["predict", str(ws.images), "-o", str(ws.out), "--model", str(ws.model), "--tile", "32"])
    assert code == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines, "no progress lines"
    assert all(line.startswith("deepseg: ") for line in lines)
    assert any("files 1/2 (50%)" in line for line in lines)
    assert any("files 2/2 (100%)" in line for line in lines)
    assert "\r" not in captured.err  # no terminal control characters in a log file
    assert captured.out.startswith("2 segmented")


def test_plain_lines_are_periodic(capsys, monkeypatch):
    monkeypatch.setenv("DEEPSEG_PROGRESS_INTERVAL", "3600")
    assert run_with_progress(_events(9), terminal=False) == "done"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # one per epoch (a milestone), none for the steps within the hour
    assert lines[-1].startswith("deepseg: step 9/9 (100%), epoch 3/3 (100%); ")


def test_quiet_prints_nothing_but_the_caller_s_lines(capsys):
    assert run_with_progress(_events(6), quiet=True, terminal=False) == "done"
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_table_rows_never_share_the_bar_s_line(monkeypatch):
    screen = io.StringIO()  # a terminal shows stdout and stderr on one screen
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    rows = []

    def table(event: Progress) -> None:
        if event.stage == "epoch":
            row = f"epoch-row-{event.done}"
            rows.append(row)
            echo(row)

    assert run_with_progress(_events(9), table, terminal=True) == "done"
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", screen.getvalue())  # cursor moves keep the column
    assert "step" in text  # the bar was drawn
    for row in rows:
        at = text.index(row)
        assert text[at - 1] in "\r\n", f"{row!r} printed after {text[max(0, at - 30) : at]!r}"
        assert text[at + len(row)] == "\n"


def test_train_quiet_still_prints_the_result_line(ws: Workspace, capsys):
    out = ws.out / "m.pt"
    argv = ["train", "--images", str(ws.images), "--labels", str(ws.labels), "-o", str(out), "--quiet"]
    argv += ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "32"]
    argv += ["--base-width", "4", "--precision", "fp32"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines() == [f"wrote {out} (best: epoch 1)"]
    assert captured.err == ""
    assert out.is_file()


def test_predict_quiet_prints_the_summary_only(ws: Workspace, capsys):
    argv = ["predict", str(ws.images), "-o", str(ws.out), "--model", str(ws.model), "--tile", "32", "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1
    assert captured.out.startswith("2 segmented, 0 skipped")
    assert captured.err == ""


def test_train_warnings_speak_cli(ws: Workspace, capsys):
    image = tifffile.imread(ws.images / "a0.tif").astype(np.float32)
    image[:4, :4] = np.nan
    tifffile.imwrite(ws.images / "a0.tif", image)
    out = ws.out / "m.pt"
    argv = ["train", "--images", str(ws.images), "--labels", str(ws.labels), "-o", str(out), "--quiet"]
    argv += ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "4096"]
    assert main([*argv, "--base-width", "4", "--precision", "fp32"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warnings) == 2, warnings
    nan, patch = sorted(warnings, key=lambda line: "patch" in line)
    assert nan.startswith("deepseg: warning: training image ")
    assert "a0.tif: 16 NaN and 0 infinite pixel(s) replaced" in nan
    assert patch == (
        "deepseg: warning: --patch-size 4096 is larger than the largest training image (64x64); "
        "training with --patch-size 64 (larger patches would only add padding)"
    )
