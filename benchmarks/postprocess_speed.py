"""Post-processing speed alone, from saved probabilities: before (benchmarks/_postprocess_before.py,
the code of commit 4c0dca3) against now (``napari_deepseg.inference``), step by step.

Post-processing is what follows the network for a block: the class map and the softmax of the
blended logits (``Job._finalize_rows``, float16 rows kept for instances), instances from the
probabilities (foreground and relief, 8-connected groups, h-maxima seeds, seeded watershed,
small-object removal and renumbering) and, for a rescaled run, the mapping of the instances to
the image's grid with their outlines (``GridMap``). The probabilities (and blended logits) of
``--model`` (default: the bundled ``nuclei``) on the 2048x2048 DSB2018 val fluorescence mosaic of
``benchmarks/default_model_speed.py`` and on every DSB2018 val image (object diameter on auto,
as a default run) are saved once in ``--cache`` (a folder per model file); both implementations
then run on them in the same process, alternately, best of ``--repeats``. MPix/s count the
image's own pixels. A model whose instances are seeded by a distance output (model v3, the
bundled one since commit f1d98a7) is timed with the code now alone: the code before has no
distance seeding.

Agreement on the DSB2018 val images (both codes): the share of the old objects that a new object
matches at IoU >= 0.9, and the pooled AP (old and new against the ground truth).

``--estimate`` also times the object-diameter estimate (``inference.object_size``) against the
whole default run (``segment()``, classes and instances, diameter auto) on the mosaic.

    python benchmarks/postprocess_speed.py ../shared/data/dsb2018 --estimate --write-docs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from napari_deepseg.evaluation import match_instances, pool_scores
from napari_deepseg.inference import job as jobmod
from napari_deepseg.inference import object_size, pipeline, postprocess, probability, segment
from napari_deepseg.inference.gridmap import GridMap
from napari_deepseg.models import load_model
from napari_deepseg.models.catalog import resolve_model_path
from napari_deepseg.models.contract import class_count

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.postprocess_speed
    import _postprocess_before as before
    from _common import dsb_records, machine, read_dsb, tile_batches, write_section
    from _mosaic import dsb_tiles, mosaic
    from _postprocess_steps import STEPS, Steps, timed_steps
except ImportError:
    from benchmarks import _postprocess_before as before
    from benchmarks._common import dsb_records, machine, read_dsb, tile_batches, write_section
    from benchmarks._mosaic import dsb_tiles, mosaic
    from benchmarks._postprocess_steps import STEPS, Steps, timed_steps

#: the seed methods the code before knows; a model seeded otherwise (the distance output of
#: model v3) is timed with the code now only
BEFORE_SEEDS = ("threshold", "maxima")


def run_old(item: dict) -> np.ndarray:
    """The post-processing of one saved run, as it was: rows, instances, grid."""
    for sums, wsum in item["rows"]:
        before.class_map(sums)
        before.write_rows(np.empty(sums.shape, np.float16), before.finalize_softmax(sums, wsum))
    labels = before.instances_from_probabilities(item["prob"], **item["settings"])
    if item["grid"] is not None:
        fg = postprocess.foreground_threshold(item["settings"])
        labels = before.consecutive(before.grid_labels(item["grid"], labels, item["prob"], fg))
    return labels


def run_new(item: dict) -> np.ndarray:
    """The same with the current code (the softmax works in place: on a copy made untimed)."""
    k = item["classes"]  # then a distance map, for such models
    for sums, wsum in item["rows"]:
        postprocess.class_map(sums[:k])
        prob = probability.softmax(item["copies"].pop(), wsum, k)
        probability.write_float16(np.zeros(sums.shape, np.float16)[1:], prob[1:])  # as Job: no background
    labels = postprocess.instances_from_probabilities(item["prob"], **item["settings"])
    if item["grid"] is not None:
        fg = postprocess.foreground_threshold(item["settings"])
        labels = item["grid"].instances(labels, item["prob"], fg)
    return labels


@contextmanager
def capture():
    """Record the main run's probabilities, finished logit rows and grid inside ``segment()``."""
    seen: dict = {"rows": []}
    ifp, finalize, instances = (
        pipeline.instances_from_probabilities,
        jobmod.Job._finalize_rows,
        GridMap.instances,
    )

    def spy_ifp(prob, **settings):
        seen.update(prob=np.array(prob), settings=dict(settings), grid=None)
        return ifp(prob, **settings)

    def spy_finalize(self, popped, target, keep_prob):
        seen["rows"].append((popped[1].copy(), popped[2].copy()))
        return finalize(self, popped, target, keep_prob)

    def spy_instances(self, labels, prob=None, threshold=0.5):
        seen["grid"] = (self.small, self.full)
        return instances(self, labels, prob, threshold)

    pipeline.instances_from_probabilities, jobmod.Job._finalize_rows = spy_ifp, spy_finalize
    GridMap.instances = spy_instances
    try:
        yield seen
    finally:
        pipeline.instances_from_probabilities, jobmod.Job._finalize_rows = ifp, finalize
        GridMap.instances = instances


def save_run(model, image: np.ndarray, path: Path, truth: np.ndarray | None = None) -> None:
    """Run ``segment()`` once (diameter estimated first, then given) and save what it post-processed."""
    axes = "YXC" if image.ndim == 3 else "YX"
    sizing = segment(image, model, axes=axes, outputs=("classes",)).meta["object_diameter"] or {}
    diameter = sizing.get("object_diameter") or "off"
    with capture() as seen:
        result = segment(image, model, axes=axes, outputs=("classes", "instances"), object_diameter=diameter)
    grid = seen["grid"] or ((0, 0), (0, 0))
    rows = {f"sums{i}": s for i, (s, _) in enumerate(seen["rows"])}
    rows.update({f"wsum{i}": w for i, (_, w) in enumerate(seen["rows"])})
    extra = {} if truth is None else {"truth": truth}
    classes = class_count(model) or len(seen["rows"][0][0])  # then a distance map, for such models
    np.savez(path, prob=seen["prob"], small=grid[0], full=grid[1], settings=json.dumps(seen["settings"]),
             rows=len(seen["rows"]), pixels=result.instances.size, classes=classes,
             **rows, **extra)  # fmt: skip


def load_run(path: Path) -> dict:
    z = np.load(path)
    small, full = tuple(int(v) for v in z["small"]), tuple(int(v) for v in z["full"])
    rows = [(z[f"sums{i}"], z[f"wsum{i}"]) for i in range(int(z["rows"]))]
    item = {
        "prob": z["prob"],
        "settings": json.loads(str(z["settings"])),
        "rows": rows,
        "pixels": int(z["pixels"]),
        "classes": int(z["classes"]),
    }
    item["grid"] = GridMap.between(small, full) if small != (0, 0) else None
    item["truth"] = z.get("truth")
    item["name"] = path.stem
    return item


def prepare(data: Path, cache: Path, limit: int | None, model_name: str) -> tuple[dict, list[dict]]:
    """(mosaic run, val image runs) of the model ``model_name``, saved into a folder of
    ``cache`` named by the model file's digest on the first call."""
    path = resolve_model_path(model_name)
    cache = cache / f"{path.stem}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    cache.mkdir(parents=True, exist_ok=True)
    records = dsb_records(data, "val")[:limit]
    model = None
    todo = [("mosaic", None)] + [(r["id"], r) for r in records]
    for name, rec in todo:
        if (cache / f"{name}.npz").exists():
            continue
        model = model or load_model(path)
        print(f"saving the probabilities of {name}", flush=True)
        if rec is None:
            save_run(model, mosaic(dsb_tiles(data), 2048), cache / "mosaic.npz")
        else:
            image, truth = read_dsb(data, rec)
            save_run(model, image, cache / f"{name}.npz", np.asarray(truth))
    return load_run(cache / "mosaic.npz"), [load_run(cache / f"{r['id']}.npz") for r in records]


def time_runs(items: list[dict], repeats: int, codes: tuple[str, ...] = ("old", "new")) -> dict[str, dict]:
    """{"old"/"new": {"total": s, "steps": {step: s}}} of the fastest of ``repeats`` alternating
    passes over ``items`` (``codes``: which of the two to time)."""
    best: dict[str, dict] = {}
    funcs = {"old": run_old, "new": run_new}
    for _ in range(repeats):
        for name, func in ((c, funcs[c]) for c in codes):
            for item in items:
                item["copies"] = [s.copy() for s, _ in reversed(item["rows"])]
            steps = Steps()
            with timed_steps(steps, new=name == "new"):
                t0 = time.perf_counter()
                for item in items:
                    func(item)
                total = time.perf_counter() - t0
            if name not in best or total < best[name]["total"]:
                best[name] = {"total": total, "steps": dict(steps.times)}
    return best


def agreement(items: list[dict]) -> dict:
    """Old against new objects (IoU 0.9) and both against the truth (pooled AP)."""
    matched = total = 0
    old_scores, new_scores = [], []
    for item in items:
        item["copies"] = [s.copy() for s, _ in reversed(item["rows"])]
        old, new = run_old(item), run_new(item)
        m = match_instances(new, old, thresholds=[0.9])
        matched, total = matched + int(m.tp[0]), total + m.n_true
        old_scores.append(match_instances(old, item["truth"]))
        new_scores.append(match_instances(new, item["truth"]))
    po, pn = pool_scores(old_scores), pool_scores(new_scores)
    return {
        "matched": matched / max(total, 1), "objects": total, "ap50": (po.at(0.5), pn.at(0.5)),
        "map": (po.mean_ap, pn.mean_ap),
    }  # fmt: skip


def speed_table(runs: dict[str, tuple[dict, int]]) -> str:
    """Per-step milliseconds and MPix/s, old -> new (or now alone), for each saved set."""
    names = list(runs)
    codes = [k for k in ("old", "new") if k in runs[names[0]][0]]
    label = {"old": "before ms", "new": "now ms"}
    head = "| step | " + " | ".join(f"{n}: {label[k]}" for n in names for k in codes) + " |"
    lines = [head, "|---|" + "---|" * len(names) * len(codes)]
    for step in STEPS:
        cells = []
        for n in names:
            best, _ = runs[n]
            cells += [f"{1000 * best[k]['steps'].get(step, 0.0):.1f}" for k in codes]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    total = [f"**{1000 * runs[n][0][k]['total']:.1f}**" for n in names for k in codes]
    speed = [f"**{runs[n][1] / 1e6 / runs[n][0][k]['total']:.1f}**" for n in names for k in codes]
    lines.append("| **total** | " + " | ".join(total) + " |")
    lines.append("| **MPix/s (image pixels)** | " + " | ".join(speed) + " |")
    return "\n".join(lines)


@contextmanager
def network_pixels():
    """Count the pixels put through the network (``TileRunner.run`` batches) in ``seen[0]``."""
    seen = [0]

    def count(batch: np.ndarray) -> None:
        seen[0] += int(batch.shape[0] * batch.shape[-2] * batch.shape[-1])

    with tile_batches(count):
        yield seen


def estimate_share(data: Path, model_name: str, repeats: int) -> dict:
    """The diameter estimate (``inference.object_size``) against the whole default run on the
    mosaic: seconds (best of ``repeats``, alternating) and network pixels of each."""
    model = load_model(model_name)
    image = mosaic(dsb_tiles(data), 2048)
    segment(image[:512, :512], model, outputs=("instances",))  # warm-up
    est, run = np.inf, np.inf
    for _ in range(repeats):
        with network_pixels() as est_pixels:
            t0 = time.perf_counter()
            object_size(image, model, axes="YX")
            t1 = time.perf_counter()
        with network_pixels() as run_pixels:
            t2 = time.perf_counter()
            segment(image, model, outputs=("classes", "instances"))
            t3 = time.perf_counter()
        est, run = min(est, t1 - t0), min(run, t3 - t2)
    return {"estimate": est, "run": run, "pixels": (est_pixels[0], run_pixels[0])}


def docs_body(mosaic_run: dict, images: int, args: argparse.Namespace, text: str, both: bool) -> str:
    """The docs section: what was measured, the printed results, the command."""
    h, w = mosaic_run["prob"].shape[1:]
    model = "the bundled `nuclei` model" if args.model == "nuclei" else f"the model `{args.model}`"
    model += "" if both else " (its distance output seeds the instances)"
    codes = (
        "Before: the code of commit 4c0dca3 (`benchmarks/_postprocess_before.py`); now: the package. "
        "Both in one process, alternately"
        if both
        else "The package's code alone (the code of commit 4c0dca3 has no distance seeding)"
    )
    command = "python benchmarks/postprocess_speed.py ../shared/data/dsb2018 --estimate --write-docs"
    command += "" if args.model == "nuclei" else f" --model {args.model}"
    return (
        "Post-processing alone (class map, softmax of the blended logits into the float16 rows kept "
        "for instances, instances, mapping to the image grid with outlines) from saved probabilities "
        f"of {model}, object diameter auto: the 2048x2048 DSB2018 val fluorescence "
        f"mosaic (run at {h}x{w}) and the {images} DSB2018 val images. {codes}, "
        f"best of {args.repeats}; milliseconds per step (time inside the step's own "
        f"functions; the rest of a total is glue).\n\n{text}\n\n"
        f"Reproduce: `{command}`"
    )


def agreement_text(val: list[dict]) -> tuple[str, bool]:
    """The agreement of before and now on the val images, and whether it meets the criteria."""
    agree = agreement(val)
    ok = agree["matched"] >= 0.995 and all(abs(a - b) <= 0.002 for a, b in (agree["ap50"], agree["map"]))
    return (
        f"Agreement on the {len(val)} DSB2018 val images (auto diameter): "
        f"{100 * agree['matched']:.2f}% of the {agree['objects']} objects of before matched by one of now "
        f"at IoU >= 0.9; pooled AP@0.5 {agree['ap50'][0]:.4f} before, {agree['ap50'][1]:.4f} now; mean AP "
        f"0.5:0.95 {agree['map'][0]:.4f} before, {agree['map'][1]:.4f} now. "
        f"Criteria (>= 99.5% matched, AP within 0.002): {'met' if ok else 'NOT met'}."
    ), ok


def estimate_text(data: Path, model_name: str, repeats: int) -> str:
    """The diameter estimate's share of a default run on the mosaic."""
    share = estimate_share(data, model_name, max(2, repeats // 2))
    (est_pixels, run_pixels), est, run = share["pixels"], share["estimate"], share["run"]
    return (
        f"Diameter estimate (`inference.object_size`, auto) on the mosaic: {est:.2f} s, the whole "
        f"default run (`segment()`, classes + instances, estimate included) {run:.2f} s: "
        f"**{100 * est / run:.1f}%** of the run (best of {max(2, repeats // 2)}, alternating). "
        f"Network pixels: the estimate {est_pixels / 1e6:.2f} M, the run {run_pixels / 1e6:.2f} M "
        f"({100 * est_pixels / run_pixels:.1f}%)."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--model", default="nuclei", help="a model name or file (default: the bundled nuclei)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "deepseg-postprocess-speed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="only the first N val images")
    ap.add_argument("--estimate", action="store_true", help="also time the diameter estimate")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"skip: DSB2018 not found at {args.data} (pass the folder as the first argument)")
        return 0
    mosaic_run, val = prepare(args.data, args.cache, args.limit, args.model)
    both = mosaic_run["settings"].get("seed_method", "threshold") in BEFORE_SEEDS
    codes = ("old", "new") if both else ("new",)
    load = os.getloadavg()[0]
    runs = {
        "mosaic": (time_runs([mosaic_run], args.repeats, codes), mosaic_run["pixels"]),
        "DSB val": (time_runs(val, args.repeats, codes), sum(v["pixels"] for v in val)),
    }
    text, ok = speed_table(runs), True
    if both:
        agree, ok = agreement_text(val)
        text += f"\n\n{agree}"
    load = max(load, os.getloadavg()[0])
    if args.estimate:
        text += f"\n\n{estimate_text(args.data, args.model, args.repeats)}"
        load = max(load, os.getloadavg()[0])
    text += f"\n\nMachine: {machine()}; highest 1-minute load average seen during the run {load:.2f}."
    print(text)
    if args.write_docs:
        title = "Post-processing speed" if both else "Post-processing speed of the distance-seeded model"
        write_section(title, docs_body(mosaic_run, len(val), args, text, both))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
