"""``deepseg evaluate``: score predicted label images against ground truth, per image and pooled
(the work is :func:`napari_deepseg.evaluation.folders.evaluate_folders`; this module is the table).

Files pair by name: the stem without image suffixes and without one or more trailing tags such as
``_labels``, ``_mask``, ``_pred`` or ``_gt`` (``a_labels.tif`` pairs with ``a.tif`` or ``a_mask.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..evaluation.folders import REPORT_THRESHOLDS, evaluate_folders


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predicted labels against ground truth (IoU, Dice, instance AP)",
        description=(
            "Pair label files of two folders by name and report foreground IoU and Dice, instance "
            "AP = TP/(TP+FP+FN) at IoU 0.5..0.95 with optimal one-to-one matching, and the DSB mean AP, "
            "per image and pooled (TP, FP, FN summed over images)."
        ),
    )
    p.add_argument("--pred", required=True, type=Path, help="folder (or file) of predicted labels")
    p.add_argument("--truth", required=True, type=Path, help="folder (or file) of ground-truth labels")
    p.add_argument("--json", type=Path, default=None, help="also write every score to this JSON file")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="score only the files present in both folders instead of stopping at the first unpaired one",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--quiet", action="store_true", help="print only the pooled row")
    p.set_defaults(func=run)


def format_table(report: dict, quiet: bool = False) -> str:
    """The report as a fixed-width text table: one row per image, then mean and pooled rows."""
    cols = ["iou", "dice"] + [f"ap@{t}" for t in REPORT_THRESHOLDS] + ["mean_ap"]
    rows = [] if quiet else [(im["name"], im["n_true"], im["n_pred"], im) for im in report["images"]]
    pooled = report["pooled"]
    if not quiet:
        rows.append(("mean of images", "", "", report["mean_over_images"]))
    rows.append(("pooled", pooled["n_true"], pooled["n_pred"], pooled))
    width = max(len("image"), *(len(r[0]) for r in rows))
    lines = [f"{'image':<{width}}  {'true':>5} {'pred':>5} " + " ".join(f"{c:>8}" for c in cols)]
    for name, n_true, n_pred, vals in rows:
        nums = " ".join(f"{vals[c]:8.4f}" for c in cols)
        lines.append(f"{name:<{width}}  {n_true!s:>5} {n_pred!s:>5} {nums}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .._files import atomic_path, guard_output

    if args.json is not None:  # checked before any scoring: never onto a label file, never a silent replace
        inputs = _files_under(args.pred) + _files_under(args.truth)
        guard_output(
            args.json, what="--json file", suffixes=(".json",), inputs=inputs, overwrite=args.overwrite
        )
    report = evaluate_folders(args.pred, args.truth, skip_missing=args.skip_missing)
    print(format_table(report, quiet=args.quiet))
    if args.json is not None:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
        print(f"scores written to {args.json}")
    return 0


def _files_under(path: Path) -> tuple[Path, ...]:
    """``path`` itself, or the files of the folder ``path`` (the inputs --json must not be)."""
    if path.is_dir():
        return tuple(p for p in path.iterdir() if p.is_file())
    return (path,)
