"""Models side by side on one DSB2018 split: accuracy and where the errors come from.

For each model (``name=path``) and image kind: AP@0.5, AP@0.75, the per-image mean accuracy
(IoU 0.5-0.95) and the true nuclei lost to merges, splits, misses and poor outlines
(``napari_deepseg.evaluation.errors``), every image segmented by ``segment()`` as users run it
(object diameter on auto, the model file's post-processing). Choose between models on
``--split selection`` (carved from train); score ``val`` once, at the end.

    python benchmarks/side_by_side.py --data ../shared/data/dsb2018 --split selection \\
        --models shipped=src/napari_deepseg/bundled/nuclei.pt distance=runs/v8-dist/selected.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_deepseg.models import load_model

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.side_by_side
    from accuracy_dsb import score_model
except ImportError:
    from benchmarks.accuracy_dsb import score_model

HEAD = (
    "| kind | model | images | AP@0.5 | AP@0.75 | per-image mean acc | nuclei | lost in merges "
    "| lost in splits | missed | poor outline |"
)


def rows(name: str, results: dict) -> list[str]:
    """Table rows of one model's :func:`score_model` results, a row per kind."""
    out = []
    for kind, r in results["kinds"].items():
        e = r["errors"]
        out.append(
            f"| {kind} | {name} | {r['images']} | {r['ap']['0.5']:.3f} | {r['ap']['0.75']:.3f} | "
            f"{r['mean_acc']:.3f} | {e['true']} | {e['merged']} | {e['split']} | {e['missed']} | "
            f"{e['poor']} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--split", default="selection", help="selection (carved from train), val or train")
    ap.add_argument("--models", nargs="+", required=True, help="name=path pairs")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data (skipping)", file=sys.stderr)
        return 0
    table, everything = [HEAD, "|" + "---|" * 11], {}
    for item in args.models:
        name, _, path = item.partition("=")
        results = score_model(load_model(path), args.data, split=args.split)
        everything[name] = results
        table += rows(name, results)
        print(f"{name}: done", flush=True)
    by_kind = sorted(table[2:], key=lambda row: row.split("|")[1])
    print("\n".join(table[:2] + by_kind))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
