"""``deepseg train``: fine-tune (or train) a U-Net on image/label files, with a per-epoch table.

Images and labels pair by file name (``a.tif`` with ``a_labels.tif`` or ``a_mask.png``). Ctrl-C
stops within one step: the best model so far is written to ``-o`` and a checkpoint beside it,
and ``--resume`` continues the run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..progress import Progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a model on corrected labels (dense or sparse)",
        description=(
            "Fine-tune a model (or train a new U-Net) on image/label file pairs matched by name. "
            "Dense labels: every pixel counts, 0 = background. Sparse (--sparse): 0 = not annotated, "
            "1 = painted background (--background-label), other values = objects or classes."
        ),
    )
    p.add_argument("--images", required=True, help="folder, glob pattern or file of images")
    p.add_argument("--labels", required=True, help="folder, glob pattern or file of label images")
    p.add_argument("-o", "--output", required=True, type=Path, help="model file to write (.pt)")
    p.add_argument(
        "--from", dest="base", default=None, help="starting model file or bundled name (default: new U-Net)"
    )
    p.add_argument("--sparse", action="store_true", help="0 = not annotated (ignored by the loss)")
    p.add_argument("--background-label", type=int, default=1, help="sparse mode: value painted on background")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=256)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out strip of each image (0 = none)")
    p.add_argument("--schedule", choices=("cosine", "onecycle"), default="cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--checkpoint", type=Path, default=None, help="resumable state (default: OUTPUT.ckpt)")
    p.add_argument("--resume", type=Path, default=None, help="continue the run saved in this checkpoint")
    p.add_argument("--base-width", type=int, default=None, help="new U-Net only: first-stage width (32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import finetune_iter
    from ..training.files import pair_files, read_pair
    from ._progress import run_with_progress

    pairs, unpaired = pair_files(args.images, args.labels)
    if unpaired and not args.quiet:
        names = ", ".join(p.name for p in unpaired[:5]) + (" ..." if len(unpaired) > 5 else "")
        print(f"skipping {len(unpaired)} file(s) without a partner: {names}", file=sys.stderr)
    data = [read_pair(img, lab) for img, lab in pairs]
    checkpoint = args.checkpoint or args.output.with_name(args.output.name + ".ckpt")
    gen = finetune_iter(
        data,
        args.base,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        steps_per_epoch=args.steps_per_epoch,
        sparse=args.sparse,
        background_label=args.background_label,
        val_fraction=args.val_fraction,
        schedule=args.schedule,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        arch_options=None if args.base_width is None else {"base": args.base_width, "depth": 4},
        output=args.output,
        checkpoint=checkpoint,
        resume=args.resume,
    )
    table = _EpochTable(quiet=args.quiet)
    if not args.quiet:
        print(f"training on {len(data)} pair(s); checkpoint {checkpoint}", file=sys.stderr)
    try:
        result = run_with_progress(gen, table, disable=True if args.quiet else None)
    except KeyboardInterrupt:
        print(
            f"stopped: best model so far in {args.output}; resume with --resume {checkpoint}", file=sys.stderr
        )
        raise
    if not args.quiet:
        best = f"epoch {result.best_epoch}" if result.best_epoch is not None else "last"
        print(f"wrote {result.path} (best: {best})")
    return 0


class _EpochTable:
    """Prints one row per ``epoch`` event: losses, mean and per-class IoU, best marker."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet, self.header = quiet, False

    def __call__(self, event: Progress) -> None:
        if self.quiet or event.stage != "epoch":
            return
        info: dict[str, Any] = dict(event.info)
        ious = info.get("val_iou") or {}
        if not self.header:
            names = "".join(f"  {n[:10]:>10}" for n in ious)
            print(f"{'epoch':>5}  {'loss':>8}  {'val loss':>8}  {'mean IoU':>8}{names}  {'time':>7}")
            self.header = True
        cells = "".join(f"  {_fmt(v, 10, 3)}" for v in ious.values())
        row = (
            f"{info['epoch']:>5}  {_fmt(info.get('train_loss'), 8, 4)}  {_fmt(info.get('val_loss'), 8, 4)}"
            f"  {_fmt(info.get('mean_iou'), 8, 3)}{cells}  {info.get('elapsed_s', 0):>6.0f}s"
        )
        print(row + ("  *" if info.get("best") else ""), flush=True)


def _fmt(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
