"""Accuracy of a model on a DSB2018 split (default: the bundled `nuclei` model on `val`).

Segments every image of the split with ``napari_deepseg.inference.segment`` (object diameter
on auto for models that record one), matches instances with ``napari_deepseg.evaluation``, and
reports per kind (fluorescence, histology, brightfield), pooled over images: AP at IoU 0.5..0.9
(AP = TP/(TP+FP+FN)), the DSB mean AP over 0.5..0.95, the per-image mean accuracy (the mean
over images of each image's mean of TP/(TP+FP+FN) over IoU 0.5..0.95, as Archit & Pape 2026
report it), foreground IoU and inference speed. ``--split selection`` scores the selection
split carved from train (``_common.selection_split``). ``--zooms 0.5,2`` also scores the split
with every image (and its labels, nearest neighbour) rescaled by each factor.

    python benchmarks/accuracy_dsb.py --data ../shared/data/dsb2018 --zooms 0.5,2 --write-docs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_deepseg.evaluation import foreground_scores, match_instances, pool_foreground, pool_scores
from napari_deepseg.evaluation.errors import error_counts
from napari_deepseg.evaluation.errors import pooled as pooled_errors
from napari_deepseg.inference import segment
from napari_deepseg.inference.scale import rescale_pair
from napari_deepseg.models import load_model

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.accuracy_dsb
    from _common import dsb_records, read_dsb, selection_split
except ImportError:
    from benchmarks._common import dsb_records, read_dsb, selection_split

ANCHORS = "StarDist 0.864, 3-class U-Net 0.806, Mask R-CNN 0.832 (Schmidt et al. 2018, DSB2018 fluorescence)"
ACC_ANCHORS = (
    "Cellpose-SAM 0.656, micro-sam automatic prompt generation 0.665 (Archit & Pape, MIDL 2026; "
    "in their training domain)"
)
THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)


def split_records(root: Path, split: str) -> list[dict]:
    """The records of ``split``: ``train``/``val`` as indexed, ``selection`` (carved from train,
    seeded) or ``train-minus-selection``."""
    if split in ("selection", "train-minus-selection"):
        rest, chosen = selection_split(dsb_records(root, "train"))
        return chosen if split == "selection" else rest
    return dsb_records(root, split)


def zoomed(image: np.ndarray, truth: np.ndarray, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """Image (bilinear) and labels (nearest) rescaled by ``zoom``, image dtype kept."""
    if zoom == 1:
        return image, truth
    colour = image.ndim == 3
    out, labels = rescale_pair(image, truth, zoom, colour)
    return np.clip(np.rint(out), 0, np.iinfo(image.dtype).max).astype(image.dtype), labels


def score_model(
    model,
    root: Path,
    split: str = "val",
    device: str = "auto",
    limit: int | None = None,
    zoom: float = 1.0,
    records: list[dict] | None = None,
) -> dict:
    """Segment and score every image of ``split``; returns per-kind pooled results and speed."""
    per_kind: dict[str, dict[str, list]] = {}
    pixels, seconds, diameters = 0, 0.0, []
    for rec in (records if records is not None else split_records(root, split))[:limit]:
        image, truth = zoomed(*read_dsb(root, rec), zoom)
        axes = "YXC" if image.ndim == 3 else "YX"
        t0 = time.perf_counter()
        result = segment(image, model, axes=axes, device=device, outputs=("classes", "instances"))
        seconds += time.perf_counter() - t0
        pixels += truth.size
        sizing = result.meta.get("object_diameter")
        if sizing and sizing.get("object_diameter"):
            diameters.append(sizing["object_diameter"])
        bucket = per_kind.setdefault(rec["kind"], {"inst": [], "fg": [], "errors": []})
        bucket["inst"].append(match_instances(result.instances, truth, name=rec["id"]))
        bucket["fg"].append(foreground_scores(result.instances > 0, truth > 0))
        bucket["errors"].append(error_counts(result.instances, truth))
    kinds = {kind: _summary(**b) for kind, b in sorted(per_kind.items())}
    kinds["all"] = _summary(
        **{key: [v for b in per_kind.values() for v in b[key]] for key in ("inst", "fg", "errors")}
    )
    speed = pixels / 1e6 / max(seconds, 1e-9)
    return {"kinds": kinds, "mpix_per_s": speed, "zoom": zoom, "diameters": diameters}


def _summary(inst: list, fg: list, errors: list) -> dict:
    """Pooled scores of one kind: ``inst`` instance matches, ``fg`` foreground scores and
    ``errors`` error counts, one of each per image."""
    pooled = pool_scores(inst)
    return {
        "errors": pooled_errors(errors),
        "images": len(inst),
        "ap": {f"{t:g}": pooled.at(t) for t in THRESHOLDS},
        "mean_ap": pooled.mean_ap,
        "mean_acc": float(np.mean([m.mean_ap for m in inst])),
        "fg_iou": pool_foreground(fg)["iou"],
    }


def table(results: dict) -> str:
    aps = " | ".join(f"AP@{t:g}" for t in THRESHOLDS)
    head = f"| kind | images | {aps} | mean AP 0.5:0.95 | per-image mean acc | fg IoU |"
    rows = [head, "|" + "---|" * (len(THRESHOLDS) + 5)]
    for kind, r in results["kinds"].items():
        aps = " | ".join(f"{r['ap'][f'{t:g}']:.3f}" for t in THRESHOLDS)
        scores = f"{r['mean_ap']:.3f} | {r['mean_acc']:.3f} | {r['fg_iou']:.3f}"
        rows.append(f"| {kind} | {r['images']} | {aps} | {scores} |")
    return "\n".join(rows)


def zoom_table(runs: list[dict]) -> str:
    """AP@0.5 per kind at each zoom, and the change from zoom 1."""
    kinds = list(runs[0]["kinds"])
    base = next(r for r in runs if r["zoom"] == 1)["kinds"]
    rows = ["| zoom | median estimated diameter | " + " | ".join(f"{k} AP@0.5" for k in kinds) + " |"]
    rows.append("|" + "---|" * (len(kinds) + 2))
    for r in runs:
        d = f"{np.median(r['diameters']):.1f} px" if r["diameters"] else "-"
        cells = []
        for k in kinds:
            ap = r["kinds"][k]["ap"]["0.5"]
            delta = ap - base[k]["ap"]["0.5"]
            cells.append(f"{ap:.3f}" + ("" if r["zoom"] == 1 else f" ({delta:+.3f})"))
        rows.append(f"| {r['zoom']:g} | {d} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def selection_note(model) -> str:
    """What the model file says about how its snapshot and post-processing were chosen."""
    prov = getattr(getattr(model, "deepseg_meta", None), "provenance", {}) or {}
    if "postprocess_two_fold_ap50" not in prov:
        return ""
    two_fold = ", ".join(f"{k} {v:.3f}" for k, v in prov["postprocess_two_fold_ap50"].items())
    where = (
        "on the selection split carved from train (the split scored here was not used)"
        if "selection_metrics" in prov
        else "on this split"
    )
    return (
        f"The snapshot ({prov.get('selected_snapshot')}) and the instance post-processing "
        f"({model.deepseg_meta.postprocess}) were selected {where}. Two-fold check of that "
        "tuning (tune on half of the images, score the other half, pool the held-out halves): "
        f"AP@0.5 {two_fold}.\n\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--split", default="val", help="val, train, selection or train-minus-selection")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--zooms", default="", help="also score with images rescaled, e.g. 0.5,2")
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
    print(f"inference speed over the split: {results['mpix_per_s']:.2f} MPix/s", flush=True)
    runs = [results]
    for zoom in [float(z) for z in args.zooms.split(",") if z.strip()]:
        runs.append(score_model(model, args.data, args.split, args.device, zoom=zoom))
        print(f"zoom {zoom:g}: AP@0.5 all {runs[-1]['kinds']['all']['ap']['0.5']:.3f}", flush=True)
    runs.sort(key=lambda r: r["zoom"])
    zooms = zoom_table(runs) if len(runs) > 1 else ""
    if zooms:
        print(zooms)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    if args.write_docs:
        from _common import machine, write_section

        command = "python benchmarks/accuracy_dsb.py --data ../shared/data/dsb2018"
        command += f" --split {args.split}" if args.split != "val" else ""
        command += f" --zooms {args.zooms}" if args.zooms else ""
        body = (
            f"Model `{args.model}` on the DSB2018 `{args.split}` split, instances pooled over images "
            f"(AP = TP/(TP+FP+FN), optimal one-to-one matching), object diameter on auto.\n\n{text}\n\n"
            f"Anchors for fluorescence AP@0.5: {ANCHORS}. Per-image mean accuracy on DSB nuclei: "
            f"{ACC_ANCHORS}.\n\n{selection_note(model)}"
            f"Inference speed over the split: {results['mpix_per_s']:.2f} MPix/s on {machine()}.\n\n"
        )
        if zooms:
            body += (
                "Object size: the same images and labels rescaled (bilinear / nearest neighbour), "
                "as from another objective, object diameter on auto (AP@0.5, change from zoom 1 in "
                f"brackets):\n\n{zooms}\n\n"
            )
        write_section("Default model accuracy (DSB2018)", body + f"Reproduce: `{command} --write-docs`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
