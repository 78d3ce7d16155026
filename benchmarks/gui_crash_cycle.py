"""Segment, remove the results, run again: the cycle that crashed napari (issue 33), N times.

In a real napari viewer (Qt, an OpenGL canvas; Xvfb with Mesa's llvmpipe on a headless
machine) the Segment widget runs the bundled ``nuclei`` model on a large image through a real
click on its Run button, the two result Labels layers are removed, and Run is clicked again.
The cycle runs in a child process, so a crash (a segmentation fault in the repaint) is seen as
the child's exit signal instead of ending this script; the child prints one line per cycle.

    xvfb-run -a -s "-screen 0 1366x768x24" python benchmarks/gui_crash_cycle.py \\
        --data ../shared/data/dsb2018 --cycles 20 --side 2048

Exit code 0 when every cycle finished, 1 otherwise (with the child's signal and last line).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def image_for(data: Path | None, side: int):
    """A ``side`` x ``side`` mosaic of real DSB val tiles, or synthetic nuclei without the data."""
    import numpy as np

    if data is not None and (data / "index.json").exists():
        sys.path.insert(0, str(HERE))
        from _mosaic import dsb_tiles, mosaic

        return mosaic(dsb_tiles(data, "val", "fluorescence"), side)
    from napari_deepseg.samples import synthetic_nuclei

    return np.asarray(synthetic_nuclei((side, side), seed=0)[0])


def child(args: argparse.Namespace) -> int:
    """The cycles in this process: one line per finished cycle, flushed."""
    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    from napari_deepseg._napari.segment_widget import SegmentWidget

    if args.without_guard:  # napari's own flush, as before the plugin's gl_guard
        from napari._vispy.canvas import VispyCanvas

        method = VispyCanvas._clean_and_update_scenegraph
        VispyCanvas._clean_and_update_scenegraph = getattr(method, "__wrapped__", method)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1366, 740)
    viewer.add_image(image_for(args.data, args.side), name="mosaic")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    app = QApplication.instance()
    for cycle in range(1, args.cycles + 1):
        t0 = time.perf_counter()
        QTest.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
        _wait(app, lambda: widget.running, 30)
        _wait(app, lambda: not widget.running and widget._placing is None, args.timeout)
        results = [layer for layer in viewer.layers if layer.name.startswith("mosaic nuclei")]
        for layer in results:
            viewer.layers.remove(layer)
        _wait(app, lambda: False, 0.3)  # repaints after the removal
        print(
            f"cycle {cycle}: ok, {len(results)} result layers, {time.perf_counter() - t0:.1f} s", flush=True
        )
    viewer.close()
    return 0


def _wait(app, done, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while not done() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="DSB2018 folder (default: synthetic nuclei)")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take")
    ap.add_argument("--without-guard", action="store_true", help="napari's own GL flush (shows the crash)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--cycles", str(args.cycles)]
    cmd += ["--side", str(args.side), "--timeout", str(args.timeout)]
    if args.data is not None:
        cmd += ["--data", str(args.data)]
    if args.without_guard:
        cmd.append("--without-guard")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("cycle ")]
    print("\n".join(lines))
    if proc.returncode == 0 and len(lines) == args.cycles:
        print(f"{args.cycles} of {args.cycles} cycles, no crash")
        return 0
    how = (
        f"signal {signal.Signals(-proc.returncode).name}"
        if proc.returncode < 0
        else f"exit {proc.returncode}"
    )
    print(f"FAILED after {len(lines)} of {args.cycles} cycles ({how}): {proc.stderr.strip()[-1500:]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
