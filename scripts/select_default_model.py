"""Pick the best training snapshot on the DSB2018 val split and ship it as the bundled model.

1. Scores the last ``--last`` ``RUN/snapshot_*.pt`` files with ``benchmarks/accuracy_dsb.py``'s
   scorer and keeps the one with the best pooled AP@0.5 over all val images.
2. Tunes its instance post-processing (seeding method - thresholded interior or h-maxima of
   the smoothed interior-minus-boundary relief - with its parameters, foreground threshold,
   minimum object size) on the same val images, from probabilities computed once, as StarDist
   tunes its thresholds on validation data. A two-fold check (tune on half of the images,
   score on the other half) reports how much of the tuned figure is selection on val.
3. Records both selections and the val metrics in the model file's provenance and writes it,
   with float16 weights, to ``src/napari_deepseg/bundled/nuclei.pt``.

    python scripts/select_default_model.py --run runs/nuclei --data ../shared/data/dsb2018
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import dsb_records, read_dsb  # noqa: E402
from accuracy_dsb import score_model, table  # noqa: E402
from napari_deepseg.evaluation import match_instances, pool_scores  # noqa: E402
from napari_deepseg.inference import instances_from_probabilities, segment  # noqa: E402
from napari_deepseg.models import load_model, save_model  # noqa: E402

BUNDLED = ROOT / "src" / "napari_deepseg" / "bundled" / "nuclei.pt"
GRID_THRESHOLD = {
    "seed_method": ("threshold",),
    "seed_threshold": (0.5, 0.7, 0.9, 0.95),
    "foreground_threshold": (0.5, 0.6),
    "min_size": (16, 32, 48),
}
GRID_MAXIMA = {
    "seed_method": ("maxima",),
    "seed_sigma": (1.5, 2.0, 2.5, 3.0),
    "seed_h": (0.01, 0.03),
    "foreground_threshold": (0.5, 0.6),
    "min_size": (16, 32, 48),
}


def grid() -> list[dict]:
    """Every post-processing setting the selection tries."""
    return [
        dict(zip(g, values))
        for g in (GRID_THRESHOLD, GRID_MAXIMA)
        for values in itertools.product(*g.values())
    ]


def val_probabilities(model, root: Path) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(probabilities (K, H, W) float32, true instances, image kind) for every val image."""
    pairs = []
    for rec in dsb_records(root, "val"):
        image, truth = read_dsb(root, rec)
        result = segment(image, model, axes="YXC" if image.ndim == 3 else "YX", outputs=("probabilities",))
        pairs.append((result.probabilities.astype(np.float32), truth, rec["kind"]))
    return pairs


def tune_postprocess(pairs: list[tuple[np.ndarray, np.ndarray, str]]) -> tuple[dict, float, dict]:
    """The grid setting with the best pooled AP@0.5 over the pairs, that AP, and two-fold APs.

    The two-fold check tunes on the even-numbered images and scores the odd ones, then the other
    way round, and pools the held-out matches (per kind and over all): an estimate free of
    selection on the scored images.
    """
    settings = grid()
    matches = [
        [match_instances(instances_from_probabilities(p, **s), t, thresholds=(0.5,)) for p, t, _ in pairs]
        for s in settings
    ]

    def best_on(images: list[int]) -> int:
        return max(range(len(settings)), key=lambda i: pool_scores([matches[i][j] for j in images]).at(0.5))

    everything = list(range(len(pairs)))
    best = best_on(everything)
    folds = (everything[0::2], everything[1::2])
    held_out = {j: matches[best_on(fit)][j] for fit, test in (folds, folds[::-1]) for j in test}
    kinds = sorted({kind for _, _, kind in pairs})
    two_fold = {
        kind: round(pool_scores(m for j, m in held_out.items() if pairs[j][2] == kind).at(0.5), 4)
        for kind in kinds
    }
    two_fold["all"] = round(pool_scores(held_out.values()).at(0.5), 4)
    return settings[best], pool_scores(matches[best]).at(0.5), two_fold


def select_snapshot(snapshots: list[Path], data: Path) -> tuple[Path, dict]:
    best = None
    for path in snapshots:
        results = score_model(load_model(path), data, "val")
        kinds = results["kinds"]
        print(
            f"{path.name}: val AP@0.5 all {kinds['all']['ap']['0.5']:.3f}, "
            f"fluorescence {kinds.get('fluorescence', {}).get('ap', {}).get('0.5', 0.0):.3f}",
            flush=True,
        )
        if best is None or kinds["all"]["ap"]["0.5"] > best[1]["kinds"]["all"]["ap"]["0.5"]:
            best = (path, results)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "nuclei")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--last", type=int, default=3, help="score only the last N snapshots")
    ap.add_argument("--out", type=Path, default=BUNDLED)
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data (skipping)")
        return 0
    snapshots = sorted(args.run.glob("snapshot_*.pt"))[-args.last :]
    if not snapshots:
        print(f"no snapshots in {args.run}", file=sys.stderr)
        return 1
    path, _ = select_snapshot(snapshots, args.data)
    model = load_model(path)
    settings, tuned_ap, twofold_ap = tune_postprocess(val_probabilities(model, args.data))
    print(
        f"selected {path.name}; post-processing {settings} (val AP@0.5 {tuned_ap:.3f}, "
        f"two-fold held-out {twofold_ap})",
        flush=True,
    )
    model.deepseg_meta.postprocess = settings
    results = score_model(model, args.data, "val")
    print(table(results))
    meta = model.deepseg_meta
    meta.provenance.update(
        {
            "selected_snapshot": path.name,
            "selection": "best pooled AP@0.5 over the DSB2018 val split (all kinds), then "
            f"post-processing tuned on the same split over {GRID_THRESHOLD} and {GRID_MAXIMA}",
            "postprocess_two_fold_ap50": twofold_ap,
            "val_metrics": {
                k: {key: v[key] for key in ("ap", "mean_ap", "fg_iou", "images")}
                for k, v in results["kinds"].items()
            },
        }
    )
    save_model(args.out, model, meta, half=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    (args.run / "selection.json").write_text(
        json.dumps({"selected": path.name, "postprocess": settings, **results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
