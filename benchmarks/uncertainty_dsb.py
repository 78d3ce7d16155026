"""Does "what to correct next" point at real errors? Measured on a DSB2018 split.

For every image: segment (instances and probabilities, object diameter on auto), rank the
objects by uncertainty (``napari_deepseg.inference.uncertainty``), match them to the ground
truth at IoU 0.5, and check the image's top ``--top`` fraction of its objects (at least one),
as a user stepping through the list would:

- false positives pointed at: predicted objects without a match that are in the top objects;
- misses pointed at: true objects without a match of which at least 20% of the pixels lie in a
  top object (one that swallowed it or cut it);
- the share of the image's foreground (true or predicted) the top entries cover, the baseline a
  random pick of places would reach.

    python benchmarks/uncertainty_dsb.py --data ../shared/data/dsb2018 --split val --write-docs
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_deepseg.evaluation.metrics import overlap_table
from napari_deepseg.inference import segment
from napari_deepseg.inference.uncertainty import rank_uncertain
from napari_deepseg.models import load_model

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.uncertainty_dsb
    from _common import machine, read_dsb, write_section
    from accuracy_dsb import split_records
except ImportError:
    from benchmarks._common import machine, read_dsb, write_section
    from benchmarks.accuracy_dsb import split_records


def score_image(image, truth, model, top: float) -> dict[str, int | float]:
    axes = "YXC" if image.ndim == 3 else "YX"
    result = segment(image, model, axes=axes, outputs=("instances", "probabilities"))
    inst, prob = result.instances, result.probabilities.astype(np.float32)
    entries = [e for e in rank_uncertain(inst, prob) if e.kind == "object"]
    picked = entries[: max(1, math.ceil(top * len(entries)))] if entries else []
    table = overlap_table(inst, truth)
    good = table.iou >= 0.5
    fp = set(table.pred_ids.tolist()) - set(table.pred_ids[table.cols[good]].tolist())
    missed = set(table.true_ids.tolist()) - set(table.true_ids[table.rows[good]].tolist())
    picked_ids = {e.id for e in picked}
    mask = np.isin(inst, list(picked_ids))
    missed_pointed = 0
    if missed:
        ids = np.array(sorted(missed))
        areas = ndi.sum_labels(np.ones(truth.shape), truth, ids)
        covered = ndi.sum_labels(mask, truth, ids)
        missed_pointed = int((covered >= 0.2 * areas).sum())
    foreground = (truth > 0) | (inst > 0)
    return {
        "entries": len(entries),
        "picked": len(picked),
        "fp": len(fp),
        "fp_pointed": len(fp & picked_ids),
        "missed": len(missed),
        "missed_pointed": missed_pointed,
        "fg": int(foreground.sum()),
        "fg_pointed": int((foreground & mask).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--split", default="val")
    ap.add_argument("--top", type=float, default=0.1)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data (skipping)")
        return 0
    model = load_model(args.model)
    totals: dict[str, float] = {}
    for rec in split_records(args.data, args.split):
        image, truth = read_dsb(args.data, rec)
        for key, value in score_image(image, truth, model, args.top).items():
            totals[key] = totals.get(key, 0) + value
    errors = totals["fp"] + totals["missed"]
    pointed = totals["fp_pointed"] + totals["missed_pointed"]

    def share(part: float, whole: float) -> str:
        return f"{part / max(whole, 1):.1%}"

    t = totals
    rows = [
        f"| | count | in the top {args.top:.0%} of each image's list |",
        "|---|---|---|",
        f"| objects | {int(t['entries'])} | {int(t['picked'])} ({share(t['picked'], t['entries'])}) |",
        f"| false positives (IoU < 0.5) | {int(t['fp'])} | {share(t['fp_pointed'], t['fp'])} |",
        f"| misses (IoU < 0.5) | {int(t['missed'])} | {share(t['missed_pointed'], t['missed'])} |",
        f"| all errors | {int(errors)} | {share(pointed, errors)} |",
        f"| foreground pixels | {int(t['fg'])} | {share(t['fg_pointed'], t['fg'])} |",
    ]
    text = "\n".join(rows)
    print(text)
    if args.write_docs:
        write_section(
            "What to correct next (benchmarks/uncertainty_dsb.py)",
            f"Model `{args.model}` on the DSB2018 `{args.split}` split, on {machine()}: each image's "
            f"ranking of objects and possible misses by uncertainty, its top {args.top:.0%} against "
            "the errors at IoU 0.5 (see the script's docstring for the rules).\n\n"
            f"{text}\n\nReproduce: `python benchmarks/uncertainty_dsb.py --data ../shared/data/dsb2018 "
            f"--split {args.split} --write-docs`",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
