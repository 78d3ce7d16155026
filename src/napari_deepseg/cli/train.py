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

from ..errors import DeepsegError
from ..progress import Progress
from ..training.config import FinetuneConfig
from . import _options as _opt
from ._progress import echo

DEFAULTS = FinetuneConfig()  # the one place the fine-tuning defaults live


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
    _add_data_arguments(p)
    _add_output_arguments(p)
    _add_recipe_arguments(p)
    _add_run_arguments(p)
    p.set_defaults(func=run)


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder, glob pattern or file of images")
    p.add_argument("--labels", required=True, help="folder, glob pattern or file of label images")
    p.add_argument(
        "--replay-images",
        help="images of the kind the starting model knows (e.g. some of its training images), mixed in "
        "so it does not forget them; needs --replay-labels",
    )
    p.add_argument("--replay-labels", help="label images of --replay-images (dense, matched by name)")
    p.add_argument(
        "--replay",
        type=_opt.float_in(0, 0.9),
        default=DEFAULTS.replay,
        help=f"share of training patches drawn from the replay pairs (default {DEFAULTS.replay})",
    )
    p.add_argument("--sparse", action="store_true", help="0 = not annotated (ignored by the loss)")
    p.add_argument(
        "--background-label",
        type=_opt.int_at_least(0),
        default=DEFAULTS.background_label,
        help="sparse mode: value painted on background",
    )


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", type=Path, help="model file to write (.pt)")
    where.add_argument(
        "--save-as",
        metavar="NAME",
        help="write NAME.pt into your models folder, where deepseg models and every model picker list it",
    )
    p.add_argument("--checkpoint", type=Path, default=None, help="resumable state (default: OUTPUT.ckpt)")
    p.add_argument("--resume", type=Path, default=None, help="continue the run saved in this checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o model file or checkpoint")


def _add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from", dest="base", default=None, help="starting model file or bundled name (default: new U-Net)"
    )
    p.add_argument(
        "--base-width", type=_opt.int_at_least(1), default=None, help="new U-Net only: first-stage width (32)"
    )
    p.add_argument("--epochs", type=_opt.int_at_least(1), default=DEFAULTS.epochs)
    p.add_argument(
        "--lr",
        type=_opt.float_in(0, 10, low_open=True),
        default=DEFAULTS.lr,
        help="peak learning rate (AdamW)",
    )
    p.add_argument("--batch-size", type=_opt.int_at_least(1), default=DEFAULTS.batch_size)
    p.add_argument(
        "--patch-size",
        type=_opt.int_at_least(16),
        default=DEFAULTS.patch_size,
        help="clamped to the largest image (said so)",
    )
    p.add_argument("--steps-per-epoch", type=_opt.int_at_least(1), default=DEFAULTS.steps_per_epoch)
    p.add_argument(
        "--val-fraction",
        type=_opt.float_in(0, 0.9, high_open=True),
        default=DEFAULTS.val_fraction,
        help="held-out strip of each image (0 = none)",
    )
    p.add_argument("--schedule", choices=("cosine", "onecycle"), default=DEFAULTS.schedule)
    p.add_argument(
        "--minutes",
        type=float,
        default=DEFAULTS.minutes,
        help="train for at most this many minutes (wall clock); the run then ends validated and saved",
    )
    p.add_argument(
        "--zoom",
        type=float,
        default=DEFAULTS.zoom,
        help="scale augmentation: patches resampled by a random factor in [1/zoom, zoom] (1 = off)",
    )
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument(
        "--distance",
        action="store_true",
        help="new U-Net only: add a distance output (instances seeded from its maxima)",
    )
    p.add_argument(
        "--distance-weight",
        type=_opt.float_in(0, 100),
        default=DEFAULTS.distance_weight,
        help="weight of the distance loss (models with a distance output)",
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar, lines or table; only the result line"
    )


def _check_outputs(args: argparse.Namespace, pairs: list[tuple[Path, Path]]) -> Path:
    """The output guard for -o and --checkpoint before any data is read; returns the checkpoint path.

    With ``--resume`` the files of the stopped run may be replaced (finetune checks them against
    the checkpoint's record); otherwise an existing file needs ``--overwrite``.
    """
    from .._files import guard_output, remove_partials, same_file

    guard_output(args.output, what="-o model file", suffixes=(".pt",), overwrite=True)  # suffix first
    checkpoint = args.checkpoint or args.output.with_name(args.output.name + ".ckpt")
    if same_file(checkpoint, args.output):
        raise DeepsegError(f"--checkpoint {checkpoint} is the -o model file; give another file name")
    inputs = [p for pair in pairs for p in pair] + [Path(b) for b in [args.base] if b and Path(b).exists()]
    if args.resume is not None and not Path(args.resume).is_file():
        raise DeepsegError(f"--resume {args.resume} not found; give the .ckpt file a stopped run wrote")
    ckpt_inputs = tuple(p for p in inputs if args.resume is None or not same_file(p, args.resume))
    for lenient in (True, args.overwrite or args.resume is not None):  # inputs first, then existing files
        guard_output(args.output, what="-o model file", inputs=tuple(inputs), overwrite=lenient)
        guard_output(checkpoint, what="--checkpoint file", inputs=ckpt_inputs, overwrite=lenient)
    for path in (args.output, checkpoint):
        remove_partials(path)  # a killed run's hidden temporary files
    return checkpoint


def run(args: argparse.Namespace) -> int:
    from ..training import finetune_iter
    from ..training.files import pair_files, read_pair
    from ._progress import echo, run_with_progress

    _opt.check_device(args.device)
    if args.save_as is not None:
        args.output = _user_model_file(args.save_as)
    pairs, unpaired = pair_files(args.images, args.labels)
    replay_files = _replay_files(args)
    checkpoint = _check_outputs(args, pairs + replay_files)
    if unpaired and not args.quiet:
        names = ", ".join(str(p) for p in unpaired[:5]) + (" ..." if len(unpaired) > 5 else "")
        echo(f"skipping {len(unpaired)} file(s) without a partner: {names}", file=sys.stderr)
    data = [read_pair(img, lab) for img, lab in pairs]
    replay = [read_pair(img, lab) for img, lab in replay_files] or None
    gen = finetune_iter(
        data,
        args.base,
        replay_pairs=replay,
        config=_config(args),
        device=args.device,
        precision=args.precision,
        output=args.output,
        checkpoint=checkpoint,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    table = _EpochTable(quiet=args.quiet, intro=f"training on {len(data)} pair(s); checkpoint {checkpoint}")
    try:
        result = run_with_progress(gen, table, quiet=args.quiet)
    except KeyboardInterrupt:
        print(
            f"stopped: best model so far in {args.output}; resume with --resume {checkpoint}", file=sys.stderr
        )
        raise
    best = f"epoch {result.best_epoch}" if result.best_epoch is not None else "last"
    print(f"wrote {result.path} (best: {best})")
    if result.verdict:
        print(result.verdict[0].upper() + result.verdict[1:])
    return 0


def _replay_files(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """The replay (image, labels) files, or []; both options or neither."""
    from ..training.files import pair_files

    if (args.replay_images is None) != (args.replay_labels is None):
        raise DeepsegError("give --replay-images and --replay-labels together (or neither)")
    if args.replay_images is None:
        return []
    return pair_files(args.replay_images, args.replay_labels)[0]


def _user_model_file(name: str) -> Path:
    """``NAME.pt`` in the user models folder (created); a name with a folder in it is refused."""
    from ..models.catalog import user_model_path

    if Path(name).name != name or not name.strip():
        raise DeepsegError(f"--save-as {name!r}: give a plain name such as my_cells (or use -o PATH)")
    path = user_model_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _config(args: argparse.Namespace) -> FinetuneConfig:
    """The run's :class:`FinetuneConfig` from the command line."""
    return FinetuneConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        steps_per_epoch=args.steps_per_epoch,
        sparse=args.sparse,
        background_label=args.background_label,
        val_fraction=args.val_fraction,
        schedule=args.schedule,
        minutes=args.minutes,
        zoom=args.zoom,
        replay=args.replay,
        seed=args.seed,
        distance=True if args.distance else None,
        distance_weight=args.distance_weight,
        arch_options=None if args.base_width is None else {"base": args.base_width, "depth": 4},
    )


class _EpochTable:
    """Prints one row per ``epoch`` event: losses, mean and per-class IoU, best marker."""

    def __init__(self, quiet: bool = False, intro: str = "") -> None:
        self.quiet, self.header, self.intro = quiet, False, intro

    def __call__(self, event: Progress) -> None:
        if self.quiet:
            return
        if self.intro:  # once training started (a failure before it prints only the error)
            echo(self.intro, file=sys.stderr)
            self.intro = ""
        if event.stage != "epoch":
            return
        info: dict[str, Any] = dict(event.info)
        ious = info.get("val_iou") or {}
        if not self.header:
            names = "".join(f"  {n[:10]:>10}" for n in ious)
            echo(f"{'epoch':>5}  {'loss':>8}  {'val loss':>8}  {'mean IoU':>8}{names}  {'time':>7}")
            self.header = True
        cells = "".join(f"  {_fmt(v, 10, 3)}" for v in ious.values())
        row = (
            f"{info['epoch']:>5}  {_fmt(info.get('train_loss'), 8, 4)}  {_fmt(info.get('val_loss'), 8, 4)}"
            f"  {_fmt(info.get('mean_iou'), 8, 3)}{cells}  {info.get('elapsed_s', 0):>6.0f}s"
        )
        echo(row + ("  *" if info.get("best") else ""))


def _fmt(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
