"""The diameter estimate with its pass at scale 1 run on the whole plane (issue 36) against the
centre crop it used before, on the selection split carved from train (val untouched).

For every selection image at zooms 0.5, 1 and 2, ``segment()`` with the object diameter on auto
runs twice: with ``rescaled.WHOLE_PLANE`` at its value (a single plane of at most 576x576 pixels
is segmented whole at scale 1, and a run decided at scale 1 reuses it) and at 0 (the 384-pixel
centre crop). Printed: the estimates within 15% of the true median diameter, their median
relative error, the pooled AP@0.5 of both, and how many scale decisions differ.

    python benchmarks/estimate_reuse.py ../shared/data/dsb2018
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from napari_deepseg.evaluation import match_instances, pool_scores
from napari_deepseg.inference import rescaled, scale, segment
from napari_deepseg.models import load_model

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.estimate_reuse
    from _common import read_dsb
    from accuracy_dsb import split_records, zoomed
except ImportError:
    from benchmarks._common import read_dsb
    from benchmarks.accuracy_dsb import split_records, zoomed

WAYS = {"whole": rescaled.WHOLE_PLANE, "crop": 0}


def measure(root: Path, split: str) -> list[dict]:
    model = load_model("nuclei")
    rows = []
    for record in split_records(root, split):
        image, truth = read_dsb(root, record)
        for zoom in (0.5, 1, 2):
            im, tr = zoomed(image, truth, zoom)
            row = {"true": scale.median_diameter(tr)}
            for name, limit in WAYS.items():
                rescaled.WHOLE_PLANE = limit
                result = segment(im, model, outputs=("instances",))
                sizing = result.meta["object_diameter"]
                matched = match_instances(tr, result.instances)
                row[name] = (sizing["object_diameter"], sizing["scale"], matched)
            rows.append(row)
    rescaled.WHOLE_PLANE = WAYS["whole"]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, nargs="?", default=Path("../shared/data/dsb2018"))
    ap.add_argument("--split", default="selection")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass its path (skipping)", file=sys.stderr)
        return 0
    rows = measure(args.data, args.split)
    for name in WAYS:
        errors = [abs(r[name][0] / r["true"] - 1) for r in rows if r[name][0] and r["true"]]
        pooled = pool_scores([r[name][2] for r in rows])
        print(
            f"{name}: estimates within 15% {np.mean([e <= 0.15 for e in errors]):.1%}, median error "
            f"{np.median(errors):.1%}, pooled AP@0.5 {pooled.ap[0]:.4f}"
        )
    moved = sum(r["whole"][1] != r["crop"][1] for r in rows)
    print(f"scale decisions that differ: {moved} of {len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
