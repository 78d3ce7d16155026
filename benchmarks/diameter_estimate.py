"""Choosing the object-diameter estimate's first-pass rule on the selection split, by accuracy.

For every image of a split (default: the selection split carved from train, never val) and
every zoom (image bilinear, labels nearest, as from another objective), the model measures the
apparent nucleus diameter at each first-pass scale (``inference.scale.FIRST_SCALES``) once;
each candidate rule turns those into a first guess, ``rescaled.refine`` settles it, and the
image is segmented at that diameter and scored (pooled AP@0.5 per kind). Rules:

- image scale first: the guess from the image's own scale (what v2 shipped with);
- coarsest >= 0.9: the coarsest scale whose objects look at least 0.9 x the model's diameter;
- coarsest crossing, unguarded: the first pair of scales, coarse to fine, between which the
  apparent diameter reaches the model's (log-linear interpolation);
- coarsest crossing (product): ``rescaled.first_guess``, the same with a coarse scale that
  already looks large trusted only when the next finer scale looks large too;
- true diameter: the ground truth's median diameter given (an upper reference, not a rule).

    python benchmarks/diameter_estimate.py ../shared/data/dsb2018 --split selection --write-docs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_deepseg.evaluation import match_instances, pool_scores
from napari_deepseg.inference import rescaled, scale, segment
from napari_deepseg.models import load_model, model_meta

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.diameter_estimate
    from _common import machine, read_dsb, write_section
    from accuracy_dsb import split_records, zoomed
except ImportError:
    from benchmarks._common import machine, read_dsb, write_section
    from benchmarks.accuracy_dsb import split_records, zoomed


def image_scale_first(seen: dict, model_diameter: float) -> tuple[float, float] | None:
    return (1.0, seen[1.0]) if seen.get(1.0) else None


def coarsest_above(fraction: float):
    def rule(seen: dict, model_diameter: float) -> tuple[float, float] | None:
        found = sorted(s for s, d in seen.items() if d)
        for s in found:
            if seen[s] >= fraction * model_diameter:
                return s, seen[s] / s
        return (found[-1], seen[found[-1]] / found[-1]) if found else None

    return rule


def coarsest_crossing_unguarded(seen: dict, model_diameter: float) -> tuple[float, float] | None:
    found = sorted((s, d) for s, d in seen.items() if d)
    for i, (s, d) in enumerate(found):
        if d < model_diameter:
            continue
        if i == 0:
            return s, d / s
        s0, d0 = found[i - 1]
        scale = s0 * (s / s0) ** (np.log(model_diameter / d0) / np.log(d / d0))
        return scale, model_diameter / scale
    return (found[-1][0], found[-1][1] / found[-1][0]) if found else None


RULES = {
    "image scale first": image_scale_first,
    "coarsest >= 0.9": coarsest_above(0.9),
    "coarsest crossing, unguarded": coarsest_crossing_unguarded,
    "coarsest crossing (product)": rescaled.first_guess,
}
GOOD = 0.15


def one_image(model, image, truth, trained: float) -> dict:
    """Each rule's estimate and matches (plus the true diameter's) on one (zoomed) image."""
    axes = "YXC" if image.ndim == 3 else "YX"
    plane = rescaled._centre_region(image, axes, round(rescaled.CROP / scale.SCALE_RANGE[0]))
    opts = {"device": "cpu", "segment": segment}
    seen = {s: rescaled.apparent_diameter(plane, model, s, **opts) for s in scale.FIRST_SCALES}
    out = {}
    for name, rule in RULES.items():
        guess = rule(seen, trained)
        estimate = None if guess is None else rescaled.refine(plane, model, trained, *guess, **opts)
        out[name] = estimate
    out["true diameter"] = scale.median_diameter(truth)
    results = {}
    for name, estimate in out.items():
        result = segment(
            image, model, axes=axes, device="cpu", outputs=("instances",),
            object_diameter=estimate if estimate else "off",
        )  # fmt: skip
        results[name] = (estimate, match_instances(result.instances, truth))
    return results


def measure(model, root: Path, split: str, zooms: list[float], limit: int | None) -> dict:
    """{zoom: {rule: {kind: [matches]}}} and estimate records."""
    trained = model_meta(model).object_diameter
    per: dict = {z: {name: {} for name in [*RULES, "true diameter"]} for z in zooms}
    records = []
    for rec in split_records(root, split)[:limit]:
        image, truth = read_dsb(root, rec)
        for zoom in zooms:
            img, lab = zoomed(image, truth, zoom)
            t0 = time.perf_counter()
            results = one_image(model, img, lab, trained)
            for name, (_, match) in results.items():
                for kind in (rec["kind"], "all"):
                    per[zoom][name].setdefault(kind, []).append(match)
            row = {"id": rec["id"], "kind": rec["kind"], "zoom": zoom, "seconds": time.perf_counter() - t0}
            row.update({name: est for name, (est, _) in results.items()})
            records.append(row)
            print(json.dumps(row), flush=True)
    return {"per": per, "records": records}


def table(data: dict, zooms: list[float]) -> str:
    """Pooled AP@0.5 per rule, zoom and kind, and the share of estimates within 15% of truth."""
    per, records = data["per"], data["records"]
    kinds = ["fluorescence", "histology", "all"]
    head = "| rule | " + " | ".join(f"zoom {z:g} {k}" for z in zooms for k in kinds)
    lines = [head + " | mean of all | estimates within 15% |", "|---|" + "---|" * (len(zooms) * 3 + 2)]
    for name in per[zooms[0]]:
        cells = [_ap(per[z][name].get(k)) for z in zooms for k in kinds]
        mean = np.mean([pool_scores(per[z][name]["all"]).at(0.5) for z in zooms])
        good = [
            r[name] is not None and abs(r[name] / r["true diameter"] - 1) <= GOOD
            for r in records
            if r["true diameter"]
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} | {np.mean(good):.2f} |")
    return "\n".join(lines)


def _ap(matches: list | None) -> str:
    return f"{pool_scores(matches).at(0.5):.3f}" if matches else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--split", default="selection")
    ap.add_argument("--zooms", default="0.5,1,2")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"skip: DSB2018 not found at {args.data} (pass the folder as the first argument)")
        return 0
    model = load_model(args.model)
    zooms = [float(z) for z in args.zooms.split(",")]
    data = measure(model, args.data, args.split, zooms, args.limit)
    if args.json:
        args.json.write_text(json.dumps(data["records"], indent=2))
    text = table(data, zooms)
    print(text)
    if args.write_docs:
        write_section(
            "Object diameter estimate (benchmarks/diameter_estimate.py)",
            f"Model `{args.model}` (trained at {model_meta(model).object_diameter:g} px) on the DSB2018 "
            f"`{args.split}` split, images zoomed by {args.zooms} (labels nearest neighbour); pooled "
            f"AP@0.5 with each first-pass rule of the diameter estimate, on {machine()}. The rule "
            f"with the best mean is the product's.\n\n{text}\n\nReproduce: `python "
            f"benchmarks/diameter_estimate.py ../shared/data/dsb2018 --split {args.split} --zooms "
            f"{args.zooms} --write-docs`",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
