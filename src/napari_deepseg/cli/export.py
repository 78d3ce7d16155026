"""``deepseg export``: write a model as a bioimage.io model package (spec 0.5.x)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

EPILOG = """examples:
  deepseg export nuclei -o nuclei.zip
  deepseg export my_model.pt -o my_model.zip --test-image cells.tif --author "A. Researcher"
The package runs in any bioimage.io tool (bioimageio.core, deepImageJ, ilastik, QuPath) and back
in napari-deepseg (deepseg predict --model my_model.zip), with its instance post-processing."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a model as a bioimage.io model package (.zip)",
        description=(
            "Write MODEL (a model file or a bundled model name) as a bioimage.io model package: "
            "PyTorch state-dict and TorchScript weights, axes, preprocessing, test tensors, a cover "
            "image, class names, documentation, licence and the instance post-processing settings."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="model file (.pt) or bundled model name, e.g. nuclei")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="NAME.zip", help="package to write")
    p.add_argument("--test-image", type=Path, default=None, help="2D image for the test tensors and cover")
    p.add_argument("--author", action="append", default=None, help="author name (repeat for several)")
    p.add_argument("--license", default="BSD-3-Clause", help="SPDX licence id (default: BSD-3-Clause)")
    p.add_argument("--no-torchscript", action="store_true", help="state-dict weights only")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._files import guard_output
    from ..io import read_image
    from ..models import load_model
    from ..sharing import export_bioimageio
    from ..sharing.export import DEFAULT_AUTHORS

    inputs = tuple(p for p in (Path(args.model), args.test_image) if p is not None and p.exists())
    guard_output(args.out, what="-o package", suffixes=(".zip",), inputs=inputs, overwrite=args.overwrite)
    model = load_model(args.model)
    image = None
    if args.test_image is not None:
        image, axes = read_image(args.test_image, lazy=False)
        image = _plane(image, axes)
    path = export_bioimageio(
        model,
        args.out,
        test_image=image,
        authors=tuple(args.author or DEFAULT_AUTHORS),
        license=args.license,
        torchscript=not args.no_torchscript,
        overwrite=args.overwrite,
        inputs=inputs,
    )
    print(f"wrote {path} (test it with: bioimageio test {shlex.quote(str(path))})", file=sys.stderr)
    return 0


def _plane(image, axes: str):
    """The first Y/X plane of an image, as (H, W) or (H, W, C)."""
    import numpy as np

    from ..errors import DeepsegError

    data = np.asarray(image)
    extra = {a: n for a, n in zip(axes, data.shape) if a not in "YXC" and n > 1}
    if extra:
        sizes = ", ".join(f"{a}={n}" for a, n in extra.items())
        raise DeepsegError(
            f"--test-image has more than one plane ({sizes}); give a single 2D image (H, W) or (H, W, C)"
        )
    keep = [a for a in axes if a in "YXC"]
    index = tuple(slice(None) if a in "YXC" else 0 for a in axes)
    plane = data[index]
    order = [keep.index(a) for a in "YXC" if a in keep]
    plane = np.transpose(plane, order)
    if plane.ndim == 3 and plane.shape[-1] not in (1, 3, 4):
        raise DeepsegError(f"test image has {plane.shape[-1]} channels; give a gray or RGB image")
    return plane
