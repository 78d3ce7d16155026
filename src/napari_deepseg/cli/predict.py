"""``deepseg predict``: segment files, folders and huge stacks, resumably, in-process or on dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DeepsegError
from ..inference.options import SPECS
from . import _options as _opt
from ._errors import to_cli_words
from ._segment_options import add_arguments, from_arguments

EPILOG = """examples:
  deepseg predict images/ -o labels/
  deepseg predict 'plates/**/*.tif' big_stack.ome.tif -o out/ --model my_model.pt --output classes
  deepseg predict huge.zarr -o out/ --workers 2 --zarr-threshold 512M
  deepseg predict /shared/images -o /shared/out --scheduler tcp://10.0.0.5:8786
A rerun skips finished outputs; the manifest out/deepseg_manifest.json records every file."""


#: the segmentation options ``deepseg predict`` exposes: every one whose spec names a flag
#: (flags, help and true defaults from SegmentOptions' SPECS)
SEGMENT_FLAGS = tuple(name for name, spec in SPECS.items() if spec.flag)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images, folders and huge stacks into label files",
        description=(
            "Segment every input (TIFF/OME-TIFF, PNG/JPEG, .npy, Zarr/OME-Zarr; files, folders, globs) "
            "into OUT_DIR/<stem>_labels.tif, or an OME-Zarr labels store for inputs above "
            "--zarr-threshold (read lazily and written chunk by chunk). Resumable; unreadable inputs are "
            "reported and skipped, and the exit code is 1 when any input failed."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_io_arguments(p)
    add_arguments(p.add_argument_group("segmentation options"), SEGMENT_FLAGS)
    _add_batch_arguments(p)
    p.set_defaults(func=run)


def _add_io_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="OUT_DIR", help="output folder")
    p.add_argument("--model", default="nuclei", help="model file or bundled model name (default: nuclei)")
    p.add_argument(
        "--weights", type=Path, default=None,
        help="torchvision weights file for a ready pretrained --model (offline machines); the model "
        "file made from it is written into OUT_DIR and used",
    )  # fmt: skip
    p.add_argument(
        "--output", choices=("auto", "classes", "instances", "probabilities"), default="auto",
        help="what to write (default: instances for instance-boundary models, else classes)",
    )  # fmt: skip
    p.add_argument(
        "--axes", default=None, help="axes of the inputs, e.g. YX, ZYX, YXC, TZCYX (default: guess)"
    )
    p.add_argument(
        "--uncertainty", action="store_true",
        help="also write <stem>_uncertainty.csv beside the labels: objects (then possible misses) "
        "ranked from the least certain, with centres and boxes: what to correct first",
    )  # fmt: skip


def _add_batch_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--workers", type=_opt.int_at_least(1), default=None, help="start a local dask cluster of N processes"
    )
    group.add_argument(
        "--scheduler", default=None, metavar="ADDR", help="existing dask scheduler tcp://HOST:PORT"
    )
    p.add_argument(
        "--zarr-threshold", type=_opt.size, default=None,
        help="inputs larger than this (e.g. 512M, 2G) are processed in chunks into OME-Zarr "
        "(default: the largest input that fits --max-memory)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=_opt.size, default=None,
        help="input bytes per chunk of a large image (default: what fits --max-memory)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs are already complete")
    p.add_argument("--quiet", action="store_true", help="no progress bars or lines; print only the summary")


def _model_with_weights(name: str, weights: Path, out_dir: Path, overwrite: bool) -> str:
    """Build the ready model ``name`` from a local weights file; save it as ``OUT_DIR/<name>.pt``.

    The weights are loaded (and so checked) before the output folder is created. A model file
    that an earlier run made there from the same weights (its provenance records their SHA-256)
    is used as it is, so a rerun resumes; any other file of that name is kept unless
    ``overwrite`` (the output guard says so).
    """
    from .._files import check_writable_dir
    from ..batch.files import sha256_file
    from ..models import load_model, save_model
    from ..models.catalog import READY_MODELS, load_ready_model

    if name not in READY_MODELS:
        ready = ", ".join(READY_MODELS)
        raise DeepsegError(f"--weights goes with a ready pretrained --model, not {name!r}; use {ready}")
    if not Path(weights).is_file():
        raise DeepsegError(f"--weights {weights} not found; give the torchvision weights file (.pth)")
    out = check_writable_dir(out_dir, "output folder")
    path, digest = out / f"{name}.pt", sha256_file(weights)
    if path.is_file() and not overwrite:
        try:
            if load_model(path).deepseg_meta.provenance.get("weights_sha256") == digest:
                return str(path)
        except DeepsegError:
            pass  # not a model this command made: the guard below refuses to replace it
    model = load_ready_model(name, weights_file=weights)
    model.deepseg_meta.provenance["weights_sha256"] = digest
    return str(save_model(path, model, overwrite=overwrite))


def run(args: argparse.Namespace) -> int:
    from .._files import check_writable_dir
    from ..batch import predict_iter
    from ._progress import run_with_progress

    check_writable_dir(args.out, "output folder (-o)")
    options = from_arguments(args, SEGMENT_FLAGS)
    _opt.check_device(options.device)
    model = (
        args.model
        if args.weights is None
        else _model_with_weights(args.model, args.weights, args.out, args.overwrite)
    )
    gen = predict_iter(
        args.inputs,
        args.out,
        model=model,
        output=args.output,
        axes=args.axes,
        options=options,
        zarr_threshold=args.zarr_threshold,
        chunk_bytes=args.chunk_size,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        uncertainty=args.uncertainty,
    )
    summary = run_with_progress(gen, quiet=args.quiet)
    first, *failures = summary.text().splitlines()
    print(first)
    parser = args._subparsers.choices["predict"] if hasattr(args, "_subparsers") else None
    for line in failures:
        print(to_cli_words(line, parser) if parser else line, file=sys.stderr)
    return summary.exit_code
