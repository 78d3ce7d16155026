"""Pick the best training snapshot on the *selection* split and ship it as the bundled model.

The selection split is carved out of DSB2018 `train` (stratified by kind, seeded; the training
run wrote its ids to ``RUN/split.json``) and was never trained on. The val split is not read
here: it is scored once, afterwards, by ``benchmarks/accuracy_dsb.py``.

1. Scores the last ``--last`` ``RUN/nuclei.epochNNN.pt`` snapshots on the selection split
   (object diameter on auto, as users run it) and keeps the one with the best sum of the
   fluorescence and histology pooled AP@0.5.
2. Tunes its instance post-processing (seeding method - thresholded interior or h-maxima of
   the smoothed interior-minus-boundary relief - with its parameters, foreground threshold,
   minimum object size) on the same selection images, from probabilities computed once at the
   scale ``segment()`` runs each image at, as StarDist tunes its thresholds on validation data.
   The diameter estimate behind that scale uses the post-processing, so the tuning is repeated
   at the scales the tuned settings give until it picks the same settings again.
   A two-fold check (tune on half of the images, score on the other half) reports how much of
   the tuned figure is selection.
3. Records both selections, the selection-split metrics and the commands in the model file's
   provenance and writes it, with float16 weights, to ``src/napari_deepseg/bundled/nuclei.pt``.

    python scripts/select_default_model.py --run runs/nuclei-v2 --data ../shared/data/dsb2018
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
from napari_deepseg.inference.gridmap import GridMap  # noqa: E402
from napari_deepseg.inference.postprocess import foreground_threshold  # noqa: E402
from napari_deepseg.inference.scale import rescale_pair  # noqa: E402
from napari_deepseg.models import load_model, save_model  # noqa: E402
from napari_deepseg.models.modelfile import has_distance  # noqa: E402

BUNDLED = ROOT / "src" / "napari_deepseg" / "bundled" / "nuclei.pt"
GRID_THRESHOLD = {
    "seed_method": ("threshold",),
    "seed_threshold": (0.5, 0.7, 0.9),
    "foreground_threshold": (0.5, 0.6),
    "min_size": (16, 32),
}
GRID_MAXIMA = {
    "seed_method": ("maxima",),
    "seed_sigma": (1.0, 1.5, 2.0, 2.5),
    "seed_h": (0.01, 0.03),
    "foreground_threshold": (0.5, 0.6),
    "min_size": (16, 32),
}
GRID_DISTANCE = {
    "seed_method": ("distance",),
    "seed_sigma": (0.0, 1.0, 2.0),
    "seed_h": (0.05, 0.1, 0.2, 0.3),
    "foreground_threshold": (0.5, 0.6),
    "min_size": (16, 32),
}


def grids(distance: bool) -> tuple[dict, ...]:
    """The settings grids a model's post-processing is tuned over (distance seeding too for a
    model with a distance output)."""
    return (GRID_THRESHOLD, GRID_MAXIMA, GRID_DISTANCE) if distance else (GRID_THRESHOLD, GRID_MAXIMA)


def grid(distance: bool = False) -> list[dict]:
    """Every post-processing setting the selection tries."""
    return [dict(zip(g, values)) for g in grids(distance) for values in itertools.product(*g.values())]


def selection_records(run: Path, data: Path) -> list[dict]:
    """The selection split's records, as the training run recorded them."""
    ids = set(json.loads((run / "split.json").read_text())["selection"])
    return [r for r in dsb_records(data, "train") if r["id"] in ids]


def probabilities(model, data: Path, records: list[dict]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(probabilities (K, h, w) at the scale segment() runs the image at, true instances at the
    image's own size, image kind) for every record."""
    out = []
    for rec in records:
        image, truth = read_dsb(data, rec)
        axes = "YXC" if image.ndim == 3 else "YX"
        scale = (segment(image, model, axes=axes).meta.get("object_diameter") or {}).get("scale", 1.0)
        if scale != 1.0:
            image = rescale_pair(image, truth, scale, image.ndim == 3)[0]
        result = segment(image, model, axes=axes, outputs=("probabilities",), object_diameter="off")
        out.append((result.probabilities.astype(np.float32), truth, rec["kind"]))
    return out


def _labels(prob: np.ndarray, truth: np.ndarray, settings: dict) -> np.ndarray:
    """Instances from probabilities with ``settings``, on the ground truth's grid (mapped there
    as ``segment()`` maps them: :meth:`GridMap.labels`)."""
    labels = instances_from_probabilities(prob, **settings)
    if labels.shape == truth.shape:
        return labels
    return GridMap.between(labels.shape, truth.shape).labels(labels, prob, foreground_threshold(settings))


def tune_postprocess(
    pairs: list[tuple[np.ndarray, np.ndarray, str]], distance: bool = False
) -> tuple[dict, float, dict]:
    """The grid setting with the best pooled AP@0.5 over the pairs, that AP, and two-fold APs.

    The two-fold check tunes on the even-numbered images and scores the odd ones, then the other
    way round, and pools the held-out matches (per kind and over all): an estimate free of
    selection on the scored images.
    """
    settings = grid(distance)
    matches = [
        [match_instances(_labels(p, t, s), t, thresholds=(0.5,)) for p, t, _ in pairs] for s in settings
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


def settle_postprocess(model, data: Path, records: list[dict], rounds: int = 3) -> tuple[dict, float, dict]:
    """Tune the post-processing until the settings it picks are those the images' scales were
    estimated with (at most ``rounds`` tunings); returns what :func:`tune_postprocess` returns.

    The object diameter estimate segments each image with the model's own post-processing, so
    new settings can move the scale ``segment()`` runs an image at (e.g. a brightfield image from
    x0.86 to x1.91): settings tuned at the old scales would be scored at others.
    """
    for _ in range(rounds):
        settings, tuned_ap, two_fold = tune_postprocess(
            probabilities(model, data, records), has_distance(model)
        )
        if settings == model.deepseg_meta.postprocess:
            break
        print(f"tuned {settings} (selection AP@0.5 {tuned_ap:.3f}); again at its scales", flush=True)
        model.deepseg_meta.postprocess = settings
    else:
        print(f"post-processing not settled after {rounds} tunings; the table scores the last", flush=True)
    return settings, tuned_ap, two_fold


def _key(results: dict) -> float:
    kinds = results["kinds"]
    return sum(kinds.get(k, {}).get("ap", {}).get("0.5", 0.0) for k in ("fluorescence", "histology"))


def select_snapshot(snapshots: list[Path], data: Path, records: list[dict]) -> tuple[Path, dict]:
    best = None
    for path in snapshots:
        results = score_model(load_model(path), data, records=records)
        kinds = results["kinds"]
        print(
            f"{path.name}: selection AP@0.5 all {kinds['all']['ap']['0.5']:.3f}, fluorescence "
            f"{kinds['fluorescence']['ap']['0.5']:.3f}, histology {kinds['histology']['ap']['0.5']:.3f}",
            flush=True,
        )
        if best is None or _key(results) > _key(best[1]):
            best = (path, results)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "nuclei-v2")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--last", type=int, default=4, help="score only the last N snapshots")
    ap.add_argument("--out", type=Path, default=BUNDLED)
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data (skipping)")
        return 0
    snapshots = sorted(args.run.glob("nuclei.epoch*.pt"))[-args.last :]
    if not snapshots:
        print(f"no snapshots in {args.run}", file=sys.stderr)
        return 1
    records = selection_records(args.run, args.data)
    path, _ = select_snapshot(snapshots, args.data, records)
    model = load_model(path)
    settings, tuned_ap, twofold_ap = settle_postprocess(model, args.data, records)
    print(
        f"selected {path.name}; post-processing {settings} (selection AP@0.5 {tuned_ap:.3f}, "
        f"two-fold held-out {twofold_ap})",
        flush=True,
    )
    model.deepseg_meta.postprocess = settings
    results = score_model(model, args.data, records=records)
    print(table(results))
    meta = model.deepseg_meta
    meta.description = "nuclei in fluorescence, brightfield and H&E images (DSB2018), instances"
    meta.provenance.update(
        {
            "data": "DSB2018 stage1_train (BBBC038, community-fixed masks, CC0): split 'train' minus "
            f"the selection split ({len(records)} images, ids in the run's split.json)",
            "training_command": (args.run / "command.txt").read_text().strip(),
            "selection_command": "python "
            + " ".join(["scripts/select_default_model.py", *(argv or sys.argv[1:])]),
            "selected_snapshot": path.name,
            "selection": "best fluorescence + histology pooled AP@0.5 on the selection split carved "
            f"from train, then post-processing tuned on the same split over "
            f"{' and '.join(map(str, grids(has_distance(model))))}; the val split was not used",
            "postprocess_two_fold_ap50": twofold_ap,
            "selection_metrics": {
                k: {key: v[key] for key in ("ap", "mean_ap", "mean_acc", "fg_iou", "images")}
                for k, v in results["kinds"].items()
            },
        }
    )
    save_model(
        args.out, model, meta, half=True, overwrite=True
    )  # --out (default: the bundled model) is replaced on purpose
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    (args.run / "selection.json").write_text(
        json.dumps({"selected": path.name, "postprocess": settings, **results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
