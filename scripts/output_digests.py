"""Digests of what ``segment()`` and ``deepseg predict`` make, to show a refactor changed nothing.

Runs the bundled ``nuclei`` model on the bundled sample (``segment()``, classes and instances,
default options and a few non-default ones) and ``deepseg predict`` over a folder of DSB val
images, and writes the SHA-256 of every output array to a JSON file. Run it before and after a
change and compare:

    python scripts/output_digests.py ../shared/data/dsb2018 --json before.json
    # ... change the code ...
    python scripts/output_digests.py ../shared/data/dsb2018 --json after.json --compare before.json

``--compare`` exits 1 and names every output that differs. Without the dataset only the
sample runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(str(array.shape).encode() + str(array.dtype).encode() + array.tobytes()).hexdigest()


def sample_digests() -> dict[str, str]:
    """``segment()`` on the sample: default options and a few others."""
    from napari_deepseg.inference import segment
    from napari_deepseg.samples import synthetic_nuclei

    image = synthetic_nuclei()[0]
    runs = {
        "default": {},
        "diameter-off": {"object_diameter": "off"},
        "tile-128": {"tile": 128, "overlap": 16, "object_diameter": 12.0},
        "min-size-40": {"min_size": 40, "postprocess": {"seed_method": "threshold"}},
        "block-256": {"block": 256, "object_diameter": "off"},
    }
    out = {}
    for name, options in runs.items():
        result = segment(image, "nuclei", device="cpu", outputs=("classes", "instances"), **options)
        out[f"sample/{name}/classes"] = digest(result.classes)
        out[f"sample/{name}/instances"] = digest(result.instances)
    return out


def predict_digests(data: Path, count: int) -> dict[str, str]:
    """``deepseg predict`` over the first ``count`` DSB val images (sorted by name)."""
    from napari_deepseg.io import read_image

    images = sorted((data / "val" / "images").glob("*.tif"))[:count]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        for path in images:
            (src / path.name).symlink_to(path.resolve())
        cmd = [sys.executable, "-m", "napari_deepseg.cli", "predict", str(src), "-o", str(dst), "--quiet"]
        subprocess.run([*cmd, "--device", "cpu"], check=True)
        for path in sorted(dst.glob("*_labels.tif")):
            out[f"predict/{path.name}"] = digest(np.asarray(read_image(path)[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, nargs="?", default=Path("../shared/data/dsb2018"))
    ap.add_argument("--json", type=Path, required=True, help="where to write the digests")
    ap.add_argument("--compare", type=Path, default=None, help="digests of an earlier run")
    ap.add_argument("--count", type=int, default=20, help="DSB val images for deepseg predict")
    args = ap.parse_args(argv)
    digests = sample_digests()
    if (args.data / "val" / "images").is_dir():
        digests.update(predict_digests(args.data, args.count))
    else:
        print(f"dataset not found at {args.data}: sample only", file=sys.stderr)
    args.json.write_text(json.dumps(digests, indent=1, sort_keys=True))
    print(f"{len(digests)} outputs digested -> {args.json}")
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())
    differ = sorted(k for k in before.keys() | digests.keys() if before.get(k) != digests.get(k))
    for key in differ:
        print(f"DIFFERS: {key}")
    print(
        f"{len(before.keys() & digests.keys()) - len([k for k in differ if k in before and k in digests])} "
        f"identical, {len(differ)} differ"
    )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
