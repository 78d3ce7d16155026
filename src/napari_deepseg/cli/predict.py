"""``deepseg predict``: segment files, folders and huge stacks, resumably, in-process or on dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DeepsegError
from . import _options as _opt
from ._errors import to_cli_words

EPILOG = """examples:
  deepseg predict images/ -o labels/
  deepseg predict 'plates/**/*.tif' big_stack.ome.tif -o out/ --model my_model.pt --output classes
  deepseg predict huge.zarr -o out/ --workers 2 --zarr-threshold 512M
  deepseg predict /shared/images -o /shared/out --scheduler tcp://10.0.0.5:8786
A rerun skips finished outputs; the manifest out/deepseg_manifest.json records every file."""


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
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="OUT_DIR", help="output folder")
    p.add_argument("--model", default="nuclei", help="model file or bundled model name (default: nuclei)")
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="torchvision weights file for a ready pretrained --model (offline machines); the model "
        "file made from it is written into OUT_DIR and used",
    )
    p.add_argument(
        "--output",
        choices=("auto", "classes", "instances", "probabilities"),
        default="auto",
        help="what to write (default: instances for instance-boundary models, else classes)",
    )
    p.add_argument(
        "--axes", default=None, help="axes of the inputs, e.g. YX, ZYX, YXC, TZCYX (default: guess)"
    )
    p.add_argument(
        "--channels",
        type=_opt.channels,
        default=None,
        help="comma-separated input channel indices, e.g. 0 or 1,2,0",
    )
    p.add_argument(
        "--diameter",
        type=_opt.diameter,
        default="auto",
        metavar="auto|off|PIXELS",
        help="object (nucleus) diameter in pixels, for models trained at one object size such as "
        "nuclei: auto estimates it per image and rescales the image to the model's size (default), "
        "off runs images as they are",
    )
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write <stem>_uncertainty.csv beside the labels: objects (then possible misses) "
        "ranked from the least certain, with centres and boxes: what to correct first",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (bf16 on GPUs, and on bf16 CPUs for models measured to agree), or force one",
    )
    p.add_argument(
        "--tile", type=_opt.int_at_least(8), default=None, help="tile size in pixels (default: 512)"
    )
    p.add_argument(
        "--overlap", type=_opt.int_at_least(0), default=None, help="tile overlap and chunk halo in pixels"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--workers", type=_opt.int_at_least(1), default=None, help="start a local dask cluster of N processes"
    )
    group.add_argument(
        "--scheduler", default=None, metavar="ADDR", help="existing dask scheduler tcp://HOST:PORT"
    )
    p.add_argument(
        "--max-memory",
        type=_opt.size,
        default=None,
        metavar="SIZE",
        help="memory to stay under, e.g. 1G, 4G (default: half the available memory, at most 2G); "
        "sets the block size and the defaults of --zarr-threshold and --chunk-size",
    )
    p.add_argument(
        "--zarr-threshold",
        type=_opt.size,
        default=None,
        help="inputs larger than this (e.g. 512M, 2G) are processed in chunks into OME-Zarr "
        "(default: the largest input that fits --max-memory)",
    )
    p.add_argument(
        "--chunk-size",
        type=_opt.size,
        default=None,
        help="input bytes per chunk of a large image (default: what fits --max-memory)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo inputs whose outputs are already complete")
    p.add_argument("--quiet", action="store_true", help="no progress bars or lines; print only the summary")
    p.set_defaults(func=run)


def _model_with_weights(name: str, weights: Path, out_dir: Path) -> str:
    """Build the ready model ``name`` from a local weights file; save it as ``OUT_DIR/<name>.pt``.

    The weights are loaded (and so checked) before the output folder is created.
    """
    from .._files import check_writable_dir
    from ..models import save_model
    from ..models.catalog import READY_MODELS, load_ready_model

    if name not in READY_MODELS:
        ready = ", ".join(READY_MODELS)
        raise DeepsegError(f"--weights goes with a ready pretrained --model, not {name!r}; use {ready}")
    if not Path(weights).is_file():
        raise DeepsegError(f"--weights {weights} not found; give the torchvision weights file (.pth)")
    out = check_writable_dir(out_dir, "output folder")
    model = load_ready_model(name, weights_file=weights)
    return str(save_model(out / f"{name}.pt", model))


def run(args: argparse.Namespace) -> int:
    from .._files import check_writable_dir
    from ..batch import predict_iter
    from ._progress import run_with_progress

    check_writable_dir(args.out, "output folder (-o)")
    _opt.check_device(args.device)
    model = args.model if args.weights is None else _model_with_weights(args.model, args.weights, args.out)
    gen = predict_iter(
        args.inputs,
        args.out,
        model=model,
        output=args.output,
        axes=args.axes,
        channels=args.channels,
        device=args.device,
        precision=args.precision,
        tile=args.tile,
        overlap=args.overlap,
        zarr_threshold=args.zarr_threshold,
        chunk_bytes=args.chunk_size,
        max_memory=args.max_memory,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        object_diameter=args.diameter,
        uncertainty=args.uncertainty,
    )
    summary = run_with_progress(gen, quiet=args.quiet)
    first, *failures = summary.text().splitlines()
    print(first)
    parser = args._subparsers.choices["predict"] if hasattr(args, "_subparsers") else None
    for line in failures:
        print(to_cli_words(line, parser) if parser else line, file=sys.stderr)
    return summary.exit_code
