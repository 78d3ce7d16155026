"""Correct's split on real clumps: touching ground-truth nuclei of DSB2018 val, merged and split.

Every pair of ground-truth nuclei that touch (at least ``--min-contact`` 4-connected pixel
contacts, each nucleus at least ``--min-area`` pixels; at most ``--per-image`` pairs an image) is
merged into one object in a copy of the masks; a seed is placed at each nucleus's centre (its
innermost pixel, as a person clicks) and ``correction.split_label`` splits the object with the
image as a guide, exactly as the Correct widget's *Split by seeds* calls it. Score: the IoU of
each seed's piece with its true nucleus, averaged over the two nuclei and then over the pairs
of each image kind. The table also gives the split with seeds clicked off-centre and, for
reference, the split on the distance transform alone (no image). Target: mean IoU >= 0.80 on
each kind. Without the data set the script says so and exits 0.

    python benchmarks/split_clumps.py ../shared/data/dsb2018 --write-docs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_deepseg.correction import split_label

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.split_clumps
    from _common import dsb_records, machine, read_dsb, write_section
except ImportError:
    from benchmarks._common import dsb_records, machine, read_dsb, write_section

KINDS = ("fluorescence", "histology")
TARGET = 0.80


def touching_pairs(mask: np.ndarray, min_contact: int, min_area: int) -> list[tuple[int, int]]:
    """Pairs ``(a, b)``, ``a < b``, of labels with at least ``min_contact`` 4-connected contacts."""
    contacts: dict[tuple[int, int], int] = {}
    for a, b in ((mask[:, :-1], mask[:, 1:]), (mask[:-1, :], mask[1:, :])):
        touch = (a != b) & (a > 0) & (b > 0)
        lo, hi = np.minimum(a[touch], b[touch]), np.maximum(a[touch], b[touch])
        for pair, n in zip(*np.unique(np.stack([lo, hi], 1), axis=0, return_counts=True)):
            contacts[tuple(int(v) for v in pair)] = contacts.get(tuple(int(v) for v in pair), 0) + int(n)
    areas = np.bincount(mask.ravel())
    return sorted(
        p for p, n in contacts.items() if n >= min_contact and min(areas[p[0]], areas[p[1]]) >= min_area
    )


def centre(mask: np.ndarray, label_id: int) -> tuple[int, int]:
    """The innermost pixel of a nucleus (largest distance to its outside)."""
    box = ndi.find_objects((mask == label_id).astype(np.int32))[0]
    dist = ndi.distance_transform_edt(np.pad(mask[box] == label_id, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    return int(y + box[0].start), int(x + box[1].start)


def piece_ious(truth: np.ndarray, pieces: np.ndarray, pair: tuple[int, int], seeds: np.ndarray) -> float:
    """Mean IoU of each seed's piece with its true nucleus."""
    ious = []
    for seed, label_id in zip(seeds, pair):
        piece, nucleus = pieces == pieces[tuple(seed)], truth == label_id
        ious.append((piece & nucleus).sum() / (piece | nucleus).sum())
    return float(np.mean(ious))


def distance_only(merged: np.ndarray, label_id: int, seeds: np.ndarray) -> np.ndarray:
    """The reference split: a watershed on the object's distance transform alone."""
    obj = merged == label_id
    markers = np.zeros(obj.shape, np.int32)
    markers[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    return watershed(-ndi.distance_transform_edt(obj), markers, mask=obj)


def off_centre(truth: np.ndarray, label_id: int, seed: tuple[int, int], rng) -> tuple[int, int]:
    """A click near the centre: a random pixel of the nucleus within half its inner radius."""
    obj = truth == label_id
    radius = ndi.distance_transform_edt(obj)[seed]
    ys, xs = np.nonzero(obj)
    near = np.hypot(ys - seed[0], xs - seed[1]) <= max(1.0, radius / 2)
    i = rng.choice(np.flatnonzero(near))
    return int(ys[i]), int(xs[i])


def _split_score(image, truth, merged, pair, seeds) -> tuple[float, bool]:
    pieces = merged.copy()
    try:
        split_label(pieces, pair[0], seeds, image=image)
    except ValueError:
        return 0.0, True  # refused (a seed's piece too small): counts 0
    return piece_ious(truth, pieces, pair, seeds), False


def run_pair(image, truth, pair, rng) -> dict:
    """Split the merged pair: seeds at the centres, seeds off-centre, the distance transform alone."""
    seeds = np.array([centre(truth, i) for i in pair])
    merged = truth.copy()
    merged[truth == pair[1]] = pair[0]
    score, refused = _split_score(image, truth, merged, pair, seeds)
    clicked = np.array([off_centre(truth, i, tuple(s), rng) for i, s in zip(pair, seeds)])
    return {
        "split": score,
        "refused": refused,
        "clicked": _split_score(image, truth, merged, pair, clicked)[0],
        "distance": piece_ious(truth, distance_only(merged, pair[0], seeds), pair, seeds),
    }


def evaluate(root: Path, min_contact: int, min_area: int, per_image: int) -> dict[str, dict]:
    """Per kind: images with pairs, pairs, refused splits, mean IoUs, pairs under 0.5."""
    out: dict[str, dict] = {}
    rng = np.random.default_rng(0)
    for kind in KINDS:
        rows, images = [], 0
        for record in dsb_records(root, "val", kind):
            image, truth = read_dsb(root, record)
            pairs = touching_pairs(truth, min_contact, min_area)[:per_image]
            images += bool(pairs)
            rows += [run_pair(image, truth, pair, rng) for pair in pairs]
        out[kind] = {
            "pairs": len(rows),
            "images": images,
            "refused": sum(r["refused"] for r in rows),
            "split": float(np.mean([r["split"] for r in rows])) if rows else float("nan"),
            "distance": float(np.mean([r["distance"] for r in rows])) if rows else float("nan"),
            "clicked": float(np.mean([r["clicked"] for r in rows])) if rows else float("nan"),
            "below_0.5": sum(r["split"] < 0.5 for r in rows),
        }
    return out


def table(results: dict[str, dict], command: str) -> str:
    lines = [
        "Correct's *Split by seeds* (`correction.split_label` with the image) on real clumps: every pair",
        "of touching ground-truth nuclei in DSB2018 val (each at least 30 px, at least 3 contact pixels,",
        "at most 20 pairs an image) merged into one object, one seed at each nucleus's innermost pixel.",
        "Mean IoU of each seed's piece with its true nucleus (a refused split counts 0). Also: seeds",
        "clicked off-centre (a random pixel within half the nucleus's inner radius of its centre), and",
        "the distance transform alone (seeds at the centres) for reference. Target: >= 0.80 per kind.",
        "",
        "| kind | images | pairs | split | split, seeds off-centre | distance only | pairs < 0.5 | refused "
        "| target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in results.items():
        met = "met" if r["split"] >= TARGET else "missed"
        lines.append(
            f"| {kind} | {r['images']} | {r['pairs']} | {r['split']:.3f} | {r['clicked']:.3f} | "
            f"{r['distance']:.3f} | {r['below_0.5']} | {r['refused']} | {met} |"
        )
    lines += ["", f"Machine: {machine()}.", "", f"    {command}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the DSB2018 folder (with index.json)")
    parser.add_argument("--min-contact", type=int, default=3)
    parser.add_argument("--min-area", type=int, default=30)
    parser.add_argument("--per-image", type=int, default=20)
    parser.add_argument("--write-docs", action="store_true", help="write the table to docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not (args.data / "index.json").is_file():
        print(f"DSB2018 not found at {args.data}: skipped")
        return 0
    t0 = time.perf_counter()
    results = evaluate(args.data, args.min_contact, args.min_area, args.per_image)
    text = table(results, "python benchmarks/split_clumps.py ../shared/data/dsb2018 --write-docs")
    print(text)
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.write_docs:
        write_section("Split by seeds on real clumps (DSB2018 val)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
