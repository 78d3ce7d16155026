"""Does ``deepseg predict``'s chunked path find the objects ``segment()`` finds?

A plane larger than the memory policy's chunk (an 8192² uint8 mosaic under the default 2 GB
limit) is written chunk by chunk into OME-Zarr by the CLI: each chunk (a Y/X block with a halo)
runs as a region of the whole plane's run (``segment_iter(region=...)``: the plane's tile grid,
resampling and normalization) and the chunks are joined at the seams. ``segment()`` runs the
same plane in blocks that share the whole plane's tile grid (their result equals the
whole-plane run's: see the scaling benchmark). This compares the two on a
mosaic of DSB val tiles: the share of ``segment()``'s objects that the CLI's output matches
with IoU >= 0.9, and the other way round, and each one's AP@0.5 against the tiles' ground
truth (nuclei cut by the 256-pixel tile borders count as they are), for each ``--diameters``
setting (``off``: no rescaling; ``auto``: each path's estimate, the default; a number: the
object diameter given, so one scale for both). About 15 minutes on 2 cores for the defaults.

    PYTHONPATH=src python benchmarks/chunk_agreement.py ../shared/data/dsb2018
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _mosaic import dsb_tiles, dsb_truth_tiles, mosaic, truth_mosaic  # noqa: E402
from scaling import agreement  # noqa: E402

TITLE = "Chunked CLI against segment() (benchmarks/chunk_agreement.py)"


def _child(kind: str, image: Path, out: Path, diameter: str) -> dict:
    """One path in a fresh process (scaling.py's child): ``segment`` or ``cli``."""
    cmd = [sys.executable, str(HERE / "scaling.py"), "--child", kind, str(image), str(out)]
    cmd += [] if diameter == "auto" else ["--diameter", diameter]  # auto: each path's estimate
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ap50(pred: np.ndarray, truth: np.ndarray) -> float:
    """AP@0.5 (TP / (TP + FP + FN)) of ``pred`` against the mosaic's ground truth."""
    from napari_deepseg.evaluation import match_instances

    return float(match_instances(pred, truth, thresholds=(0.5,)).at(0.5))


def compare(image: Path, work: Path, diameter: str, truth: np.ndarray) -> dict:
    """Run both paths on ``image`` with ``diameter``; their agreement both ways and each one's
    AP@0.5 against ``truth``."""
    from napari_deepseg.io import open_labels

    outs = {kind: work / f"{kind}_{diameter}" for kind in ("segment", "cli")}
    runs = {}
    for kind, out in outs.items():
        out.mkdir()
        runs[kind] = _child(kind, image, out, diameter)
    api = np.load(outs["segment"] / "segment.npy").astype(np.int64)
    cli = np.asarray(open_labels(next(outs["cli"].glob("*_labels.zarr")))[0]).astype(np.int64)
    return {
        "diameter": diameter,
        "chunks": runs["cli"].get("chunks"),
        "segment_objects": int(len(np.unique(api)) - 1),
        "cli_objects": int(len(np.unique(cli)) - 1),
        "cli_finds": agreement(cli, api),
        "segment_finds": agreement(api, cli),
        "segment_ap50": _ap50(api, truth),
        "cli_ap50": _ap50(cli, truth),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default="../shared/data/dsb2018", type=Path)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--diameters", nargs="+", default=["off", "auto", "8"])
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    if not (args.data / "index.json").exists():
        print(f"DSB2018 data not found at {args.data}; give its path (skipping)")
        return
    from _common import machine, write_section

    rows = []
    with tempfile.TemporaryDirectory(prefix="deepseg_chunks_") as tmp:
        image = Path(tmp) / f"mosaic{args.size}.tif"
        tifffile.imwrite(image, mosaic(dsb_tiles(args.data), args.size))
        truth = truth_mosaic(dsb_truth_tiles(args.data), args.size)
        for diameter in args.diameters:
            rows.append(compare(image, Path(tmp), diameter, truth))
            print(json.dumps(rows[-1]), flush=True)
    lines = [
        "| object diameter | CLI chunks | objects: segment() / CLI | segment()'s objects the CLI finds "
        "(IoU >= 0.9) | the CLI's objects segment() finds | target | AP@0.5: segment() / CLI |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['diameter']} | {r['chunks']} | {r['segment_objects']} / {r['cli_objects']} | "
            f"{100 * r['cli_finds']:.1f}% | {100 * r['segment_finds']:.1f}% | >= 99% | "
            f"{r['segment_ap50']:.3f} / {r['cli_ap50']:.3f} |"
        )
    command = "PYTHONPATH=src python benchmarks/chunk_agreement.py " + " ".join(sys.argv[1:])
    body = (
        f"Machine: {machine()}. A {args.size}² uint8 mosaic of DSB val fluorescence tiles, bundled "
        "model, default options otherwise.\n\n" + "\n".join(lines) + f"\n\nReproduce: `{command}`"
    )
    print(body)
    if not args.no_docs:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
