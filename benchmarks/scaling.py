"""Memory and speed at any plane size: synthetic mosaics of real DSB tiles, default options.

For each size (default 2048, 8192 and 16384 pixels square) it makes a uint8 mosaic of the
DSB2018 val fluorescence images (their 256 x 256 crops, shuffled and flipped; see _mosaic.py),
writes it as a TIFF, and runs, each in a fresh child process with the bundled nuclei model:

* ``segment``: ``segment(image, model, outputs=("instances",))`` (what the Segment widget runs);
* ``cli``: ``deepseg predict mosaic.tif -o OUT --quiet`` (defaults: the memory policy picks
  TIFF or chunked OME-Zarr, the chunk and the block sizes);
* ``whole`` (where it fits, default 8192 only): ``segment`` with one block for the whole plane,
  the reference for the agreement of the blockwise result: the share of whole-plane objects
  found by the blockwise run with IoU >= 0.9.

Peak RSS is the child's own high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``), so nothing
is missed between samples: read at the CLI's exit, and when ``segment()`` returns (before the
result is saved for the agreement check: saving reads a result kept in a scratch file, see
``napari_deepseg.inference.outputs``, back in as clean page-cache pages). Planes up to 4096²
run three times (the median time is kept, and the highest peak). MPix/s is the plane's pixels over the
``segment()`` call (model loaded, image read) or over the whole CLI run. Results are appended
to a JSON-lines file as each case ends and the docs table is rewritten after each case, so a
run stopped early still leaves its figures.

    PYTHONPATH=src .venv/bin/python benchmarks/scaling.py ../shared/data/dsb2018
    PYTHONPATH=src .venv/bin/python benchmarks/scaling.py DATA --sizes 1024 2048 --whole 2048
    PYTHONPATH=src .venv/bin/python benchmarks/scaling.py DATA --outputs-cost 8192 --diameter off
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _mosaic import dsb_tiles, mosaic  # noqa: E402

CASES = ("segment", "cli")
FORCE_OUTPUTS = "DEEPSEG_BENCH_FORCE_OUTPUTS"  # --outputs-cost: the child's outputs placement
#: planes up to this side take seconds, so timing noise matters: the median of REPEATS runs
REPEAT_UP_TO, REPEATS = 4096, 3
TITLE = "Scaling: memory and speed from 2048² to 16384²"


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(kind: str, image_path: Path, out: Path, diameter: str | None = None) -> dict:
    """One case in this (fresh) process; returns its figures. ``diameter``: the object diameter
    (``off``, pixels) instead of the default estimate."""
    if kind == "cli":
        from napari_deepseg.cli import main

        t0 = time.perf_counter()
        extra = ["--diameter", diameter] if diameter else []
        rc = main(["predict", str(image_path), "-o", str(out), "--quiet", *extra])
        seconds = time.perf_counter() - t0
        manifest = json.loads((out / "deepseg_manifest.json").read_text())
        entry = next(iter(manifest["files"].values()))
        info = {"rc": rc, "kind": entry["kind"], "block": entry.get("block"), "chunks": entry.get("chunks")}
        info["scale"] = (entry.get("object_diameter") or {}).get("scale", 1.0)
        info["objects"] = _count_objects(out)
        return {"seconds": seconds, "peak_rss_mb": _maxrss_mb(), **info}
    from napari_deepseg.inference import segment
    from napari_deepseg.models import load_model

    image = tifffile.imread(image_path)
    model = load_model("nuclei")
    _force_outputs(os.environ.get(FORCE_OUTPUTS))
    block = 1 << 20 if kind == "whole" else None
    t0 = time.perf_counter()
    size = None if diameter is None else diameter if diameter == "off" else float(diameter)
    result = segment(image, model, outputs=("instances",), block=block, object_diameter=size)
    seconds = time.perf_counter() - t0
    peak = _maxrss_mb()  # the run's peak: saving below maps a scratch-file result's pages back in
    np.save(out / f"{kind}.npy", result.instances)
    return {
        "seconds": seconds,
        "peak_rss_mb": peak,
        "outputs": result.meta["outputs_stored"],
        "objects": int(result.instances.max()),
        "block": result.meta["block"],
        "precision": result.meta["precision"],
        "scale": (result.meta.get("object_diameter") or {}).get("scale", 1.0),
    }


def _force_outputs(where: str | None) -> None:
    """``--outputs-cost``: keep the outputs in memory or in scratch files whatever their size."""
    if where not in ("memory", "disk"):
        return
    from napari_deepseg.inference.outputs import OutputStore

    reserve = OutputStore.reserve

    def forced(store: OutputStore, nbytes: int) -> bool:
        store.room = 1 << 62 if where == "memory" else -1
        return reserve(store, nbytes)

    OutputStore.reserve = forced


def outputs_cost(image_path: Path, work: Path, diameter: str | None, rounds: int = 2) -> list[dict]:
    """``segment()`` with its outputs forced into memory and into scratch files, alternating."""
    rows = []
    for _ in range(rounds):
        for where in ("memory", "disk"):
            os.environ[FORCE_OUTPUTS] = where
            try:
                row = _run_child("segment", image_path, work, diameter)
            finally:
                del os.environ[FORCE_OUTPUTS]
            rows.append({"forced": where, **row})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _count_objects(out: Path) -> int:
    """Distinct non-zero ids in the CLI's output (TIFF or Zarr, read in row bands)."""
    from napari_deepseg.io import open_labels

    tif = list(out.glob("*_labels.tif"))
    data = tifffile.imread(tif[0]) if tif else open_labels(next(out.glob("*_labels.zarr")))[0]
    ids: set[int] = set()
    for r in range(0, data.shape[-2], 2048):
        band = np.asarray(data[..., r : r + 2048, :])
        ids |= set(np.unique(band[band > 0]).tolist())
    return len(ids)


def agreement(blockwise: np.ndarray, whole: np.ndarray, iou: float = 0.9) -> float:
    """Share of the whole-plane objects matched by a blockwise object with IoU >= ``iou``."""
    fg = (whole > 0) & (blockwise > 0)
    n_b = int(blockwise.max()) + 1
    key = whole[fg].astype(np.int64) * n_b + blockwise[fg]
    pairs, inter = np.unique(key, return_counts=True)
    a, b = pairs // n_b, pairs % n_b
    area_w, area_b = np.bincount(whole.ravel()), np.bincount(blockwise.ravel(), minlength=n_b)
    good = inter / (area_w[a] + area_b[b] - inter) >= iou
    return len(np.unique(a[good])) / max(1, int((area_w[1:] > 0).sum()))


def _run_child(kind: str, image_path: Path, work: Path, diameter: str | None) -> dict:
    out = work / f"{kind}_{image_path.stem}"
    shutil.rmtree(out, ignore_errors=True)  # a repeat starts clean (the CLI would resume)
    out.mkdir()
    cmd = [sys.executable, __file__, "--child", kind, str(image_path), str(out)]
    cmd += ["--diameter", diameter] if diameter else []
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median_run(runs: list[dict]) -> dict:
    """The run with the median time (the highest peak RSS of all); seconds of each run kept."""
    ok = sorted((r for r in runs if "error" not in r), key=lambda r: r["seconds"])
    if not ok:
        return runs[0]
    row = dict(ok[len(ok) // 2])
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    if len(runs) > 1:
        row["runs_s"] = [round(r["seconds"], 2) for r in ok]
    return row


def _table(rows: list[dict], machine: str, load: str, command: str) -> str:
    busy = load != "n/a" and float(load.split()[0]) > 1.0
    shared = " (other work shared the 2 cores, so MPix/s figures are lower than on an idle machine)"
    shared = shared if busy else ""
    lines = [
        f"Machine: {machine}. Load average at the start (`cat /proc/loadavg`): {load}{shared}.",
        "The model runs at the scale its object-size estimate chose (`scale`: the run grid over the"
        " image's); MPix/s count the image's own pixels, run MPix/s the pixels the model ran on.",
        "",
        f"`{command}`",
        "",
        "| size | path | peak RSS (GB) | seconds | MPix/s | run MPix/s | objects | scale | block | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['size']}² | {r['case']} | | | | | | | | failed: {r['error']} |")
            continue
        mpix = r["size"] ** 2 / 1e6
        note = r.get("note", "")
        if r.get("outputs") == "disk":
            note = "outputs in scratch files" + (f"; {note}" if note else "")
        if r.get("runs_s"):
            note = f"median of {len(r['runs_s'])} runs: {', '.join(f'{t:.1f}' for t in r['runs_s'])} s" + (
                f"; {note}" if note else ""
            )
        lines.append(
            f"| {r['size']}² | {r['case']} | {r['peak_rss_mb'] / 1024:.2f} | {r['seconds']:.0f} | "
            f"{mpix / r['seconds']:.3f} | {mpix * r.get('scale', 1.0) ** 2 / r['seconds']:.3f} | "
            f"{r.get('objects', '')} | {r.get('scale', 1.0):.2f} | "
            f"{r.get('block') or 'whole'} | {note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", nargs="?", default="../shared/data/dsb2018", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192, 16384])
    parser.add_argument("--whole", type=int, nargs="*", default=[8192], help="sizes also run whole-plane")
    parser.add_argument(
        "--results", type=Path, default=None, help="JSON-lines file (default: in the work dir)"
    )
    parser.add_argument(
        "--paths",
        nargs="+",
        default=["segment", "whole", "cli"],
        help="which paths to run (a re-run of some)",
    )
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--diameter", help="object diameter for all cases (off, or pixels): one scale")
    parser.add_argument(
        "--outputs-cost", type=int, metavar="SIZE",
        help="only: segment() at SIZE² with outputs in memory vs in scratch files, alternating",
    )  # fmt: skip
    parser.add_argument("--child", nargs=3, metavar=("KIND", "IMAGE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, image, out = args.child
        print(json.dumps(child(kind, Path(image), Path(out), args.diameter)))
        return
    if not (args.data / "index.json").exists():
        print(f"DSB2018 data not found at {args.data}; give its path (skipping)")
        return
    from _common import machine, write_section

    load = Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else "n/a"
    command = "PYTHONPATH=src python benchmarks/scaling.py " + " ".join(sys.argv[1:])
    tiles = dsb_tiles(args.data)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="deepseg_scaling_") as tmp:
        work = Path(tmp)
        if args.outputs_cost:
            image_path = work / f"mosaic{args.outputs_cost}.tif"
            tifffile.imwrite(image_path, mosaic(tiles, args.outputs_cost))
            for r in outputs_cost(image_path, work, args.diameter):
                print(f"| {args.outputs_cost}² | {r['forced']} | {r['outputs']} | {r['seconds']:.1f} | "
                      f"{r['peak_rss_mb'] / 1024:.2f} | {r['objects']} |")  # fmt: skip
            return
        results = args.results or work / "results.jsonl"
        for size in args.sizes:
            image_path = work / f"mosaic{size}.tif"
            tifffile.imwrite(image_path, mosaic(tiles, size))
            kinds = ["segment"] + (["whole"] if size in args.whole else []) + ["cli"]
            kinds = [k for k in kinds if k in args.paths]
            for kind in kinds:
                repeats = REPEATS if size <= REPEAT_UP_TO else 1
                runs = [_run_child(kind, image_path, work, args.diameter) for _ in range(repeats)]
                row = {"size": size, "case": kind, **_median_run(runs)}
                if kind == "whole" and "error" not in row and "segment" in kinds:
                    blockwise = np.load(work / f"segment_{image_path.stem}" / "segment.npy")
                    whole = np.load(work / f"whole_{image_path.stem}" / "whole.npy")
                    share = agreement(blockwise, whole)
                    row["agreement"] = share
                    row["note"] = f"blockwise found {100 * share:.2f}% of these objects at IoU >= 0.9"
                    del blockwise, whole
                rows.append(row)
                print(json.dumps(row), flush=True)
                with open(results, "a") as f:
                    f.write(json.dumps(row) + "\n")
                if not args.no_docs:
                    write_section(TITLE, _table(rows, machine(), load, command))
            image_path.unlink()


if __name__ == "__main__":
    main()
