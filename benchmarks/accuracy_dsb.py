"""Accuracy of a model on the DSB2018 split (default: the bundled `nuclei` model on `val`).

Segments every image of the split with ``napari_deepseg.inference.segment``, matches instances
with ``napari_deepseg.evaluation``, and reports per kind (fluorescence, histology, brightfield),
pooled over images: AP at IoU 0.5..0.9 (AP = TP/(TP+FP+FN)), the DSB mean AP over 0.5..0.95,
foreground IoU, and inference speed.

    python benchmarks/accuracy_dsb.py --data ../shared/data/dsb2018 --write-docs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from napari_deepseg.evaluation import foreground_scores, match_instances, pool_foreground, pool_scores
from napari_deepseg.inference import segment
from napari_deepseg.models import load_model

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.accuracy_dsb
    from _common import dsb_records, read_dsb
except ImportError:
    from benchmarks._common import dsb_records, read_dsb

ANCHORS = "StarDist 0.864, 3-class U-Net 0.806, Mask R-CNN 0.832 (Schmidt et al. 2018, DSB2018 fluorescence)"
THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)


def score_model(
    model, root: Path, split: str = "val", device: str = "auto", limit: int | None = None
) -> dict:
    """Segment and score every image of ``split``; returns per-kind pooled results and speed."""
    per_kind: dict[str, dict[str, list]] = {}
    pixels, seconds = 0, 0.0
    for rec in dsb_records(root, split)[:limit]:
        image, truth = read_dsb(root, rec)
        axes = "YXC" if image.ndim == 3 else "YX"
        t0 = time.perf_counter()
        result = segment(image, model, axes=axes, device=device, outputs=("classes", "instances"))
        seconds += time.perf_counter() - t0
        pixels += truth.size
        bucket = per_kind.setdefault(rec["kind"], {"inst": [], "fg": []})
        bucket["inst"].append(match_instances(result.instances, truth, name=rec["id"]))
        bucket["fg"].append(foreground_scores(result.instances > 0, truth > 0))
    kinds = {}
    for kind, b in sorted(per_kind.items()):
        pooled = pool_scores(b["inst"])
        kinds[kind] = {
            "images": len(b["inst"]),
            "ap": {f"{t:g}": pooled.at(t) for t in THRESHOLDS},
            "mean_ap": pooled.mean_ap,
            "fg_iou": pool_foreground(b["fg"])["iou"],
        }
    everything = pool_scores(s for b in per_kind.values() for s in b["inst"])
    kinds["all"] = {
        "images": sum(k["images"] for k in kinds.values()),
        "ap": {f"{t:g}": everything.at(t) for t in THRESHOLDS},
        "mean_ap": everything.mean_ap,
        "fg_iou": pool_foreground(f for b in per_kind.values() for f in b["fg"])["iou"],
    }
    return {"kinds": kinds, "mpix_per_s": pixels / 1e6 / max(seconds, 1e-9)}


def table(results: dict) -> str:
    aps = " | ".join(f"AP@{t:g}" for t in THRESHOLDS)
    head = f"| kind | images | {aps} | mean AP 0.5:0.95 | fg IoU |"
    rows = [head, "|" + "---|" * (len(THRESHOLDS) + 4)]
    for kind, r in results["kinds"].items():
        aps = " | ".join(f"{r['ap'][f'{t:g}']:.3f}" for t in THRESHOLDS)
        rows.append(f"| {kind} | {r['images']} | {aps} | {r['mean_ap']:.3f} | {r['fg_iou']:.3f} |")
    return "\n".join(rows)


def selection_note(model) -> str:
    """What the model file says about selection on this split (empty when it says nothing)."""
    prov = getattr(getattr(model, "deepseg_meta", None), "provenance", {}) or {}
    if "postprocess_two_fold_ap50" not in prov:
        return ""
    two_fold = ", ".join(f"{k} {v:.3f}" for k, v in prov["postprocess_two_fold_ap50"].items())
    return (
        f"The snapshot ({prov.get('selected_snapshot')}) and the instance post-processing "
        f"({model.deepseg_meta.postprocess}) were selected on this split. Two-fold check of that "
        "tuning (tune on half of the images, score the other half, pool the held-out halves): "
        f"AP@0.5 {two_fold}.\n\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--split", default="val")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data (skipping)")
        return 0
    model = load_model(args.model)
    results = score_model(model, args.data, args.split, args.device)
    text = table(results)
    print(text)
    print(f"inference speed over the split: {results['mpix_per_s']:.2f} MPix/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.write_docs:
        from _common import machine, write_section

        body = (
            f"Model `{args.model}` on the DSB2018 `{args.split}` split, instances pooled over images "
            f"(AP = TP/(TP+FP+FN), optimal one-to-one matching).\n\n{text}\n\n"
            f"Anchors for fluorescence AP@0.5: {ANCHORS}.\n\n{selection_note(model)}"
            f"Inference speed over the split: {results['mpix_per_s']:.2f} MPix/s on {machine()}.\n\n"
            f"Reproduce: `python benchmarks/accuracy_dsb.py --data ../shared/data/dsb2018 --write-docs`"
        )
        write_section("Default model accuracy (DSB2018)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
