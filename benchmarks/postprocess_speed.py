"""Post-processing speed alone, from saved probabilities: before (benchmarks/_postprocess_before.py,
the code of commit 4c0dca3) against now (``napari_deepseg.inference``), step by step.

Post-processing is what follows the network for a block: the class map and the softmax of the
blended logits (``Job._finalize_rows``, float16 rows kept for instances), instances from the
probabilities (foreground and relief, 8-connected groups, h-maxima seeds, seeded watershed,
small-object removal and renumbering) and, for a rescaled run, the mapping of the instances to
the image's grid with their outlines (``GridMap``). The bundled ``nuclei`` model's probabilities
(and blended logits) of the 2048x2048 DSB2018 val fluorescence mosaic of
``benchmarks/default_model_speed.py`` and of every DSB2018 val image (object diameter on auto,
as a default run) are saved once in ``--cache``; both implementations then run on them in the
same process, alternately, best of ``--repeats``. MPix/s count the image's own pixels.

Agreement on the DSB2018 val images: the share of the old objects that a new object matches at
IoU >= 0.9, and the pooled AP (old and new against the ground truth).

``--estimate`` also times the object-diameter estimate (``inference.object_size``) against the
whole default run (``segment()``, classes and instances, diameter auto) on the mosaic.

    python benchmarks/postprocess_speed.py ../shared/data/dsb2018 --estimate --write-docs
"""

from __future__ import annotations

import argparse
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
from napari_deepseg.inference import object_size, postprocess, probability, runner, segment
from napari_deepseg.inference.gridmap import GridMap
from napari_deepseg.models import load_model

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.postprocess_speed
    import _postprocess_before as before
    from _common import dsb_records, machine, read_dsb, write_section
    from _mosaic import dsb_tiles, mosaic
except ImportError:
    from benchmarks import _postprocess_before as before
    from benchmarks._common import dsb_records, machine, read_dsb, write_section
    from benchmarks._mosaic import dsb_tiles, mosaic

STEPS = (
    "class map",
    "softmax + float16 rows",
    "foreground + relief",
    "groups + bands/sheets",
    "seeds (h-maxima)",
    "watershed",
    "small objects + renumbering",
    "grid mapping + outlines",
)


class Steps:
    """Exclusive time per step of wrapped functions (a wrapped call inside another counts for
    its own step only)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.stack: list[float] = []

    def wrap(self, owner, name: str, step: str, saved: list) -> None:
        func = getattr(owner, name)
        saved.append((owner, name, func))

        def timed(*args, **kwargs):
            self.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                inner = self.stack.pop()
                self.times[step] = self.times.get(step, 0.0) + spent - inner
                if self.stack:
                    self.stack[-1] += spent

        setattr(owner, name, timed)


OLD_STEPS = {
    "class_map": "class map",
    "finalize_softmax": "softmax + float16 rows",
    "write_rows": "softmax + float16 rows",
    "_foreground": "foreground + relief",
    "_relief": "foreground + relief",
    "instances_from_probabilities": "groups + bands/sheets",  # its own lines: label, find_objects, bands
    "dynamic_maxima": "seeds (h-maxima)",
    "_group_instances": "watershed",
    "_remove_small": "small objects + renumbering",
    "consecutive": "small objects + renumbering",
    "grid_labels": "grid mapping + outlines",
}
NEW_STEPS = [
    (postprocess, "class_map", "class map"),
    (probability, "softmax", "softmax + float16 rows"),
    (probability, "write_float16", "softmax + float16 rows"),
    (postprocess, "_planes", "foreground + relief"),
    (postprocess, "_smooth", "foreground + relief"),
    (postprocess, "instances_from_probabilities", "groups + bands/sheets"),
    (postprocess, "sheet_of", "groups + bands/sheets"),
    (postprocess, "dynamic_maxima", "seeds (h-maxima)"),
    (postprocess, "_group_instances", "watershed"),
    (postprocess, "_remove_small", "small objects + renumbering"),
    (postprocess, "_in_raster_order", "small objects + renumbering"),
    (GridMap, "instances", "grid mapping + outlines"),
]


@contextmanager
def timed_steps(steps: Steps, new: bool):
    saved: list = []
    if new:
        for owner, name, step in NEW_STEPS:
            steps.wrap(owner, name, step, saved)
    else:
        for name, step in OLD_STEPS.items():
            steps.wrap(before, name, step, saved)
    try:
        yield
    finally:
        for owner, name, func in reversed(saved):
            setattr(owner, name, func)


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
    for sums, wsum in item["rows"]:
        postprocess.class_map(sums)
        prob = probability.softmax(item["copies"].pop(), wsum)
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
        jobmod.instances_from_probabilities,
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

    jobmod.instances_from_probabilities, jobmod.Job._finalize_rows = spy_ifp, spy_finalize
    GridMap.instances = spy_instances
    try:
        yield seen
    finally:
        jobmod.instances_from_probabilities, jobmod.Job._finalize_rows = ifp, finalize
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
    np.savez(path, prob=seen["prob"], small=grid[0], full=grid[1], settings=json.dumps(seen["settings"]),
             rows=len(seen["rows"]), pixels=result.instances.size, **rows, **extra)  # fmt: skip


def load_run(path: Path) -> dict:
    z = np.load(path)
    small, full = tuple(int(v) for v in z["small"]), tuple(int(v) for v in z["full"])
    rows = [(z[f"sums{i}"], z[f"wsum{i}"]) for i in range(int(z["rows"]))]
    item = {
        "prob": z["prob"],
        "settings": json.loads(str(z["settings"])),
        "rows": rows,
        "pixels": int(z["pixels"]),
    }
    item["grid"] = GridMap.between(small, full) if small != (0, 0) else None
    item["truth"] = z.get("truth")
    item["name"] = path.stem
    return item


def prepare(data: Path, cache: Path, limit: int | None) -> tuple[dict, list[dict]]:
    """(mosaic run, val image runs), saved into ``cache`` on the first call."""
    cache.mkdir(parents=True, exist_ok=True)
    records = dsb_records(data, "val")[:limit]
    model = None
    todo = [("mosaic", None)] + [(r["id"], r) for r in records]
    for name, rec in todo:
        if (cache / f"{name}.npz").exists():
            continue
        model = model or load_model("nuclei")
        print(f"saving the probabilities of {name}", flush=True)
        if rec is None:
            save_run(model, mosaic(dsb_tiles(data), 2048), cache / "mosaic.npz")
        else:
            image, truth = read_dsb(data, rec)
            save_run(model, image, cache / f"{name}.npz", np.asarray(truth))
    return load_run(cache / "mosaic.npz"), [load_run(cache / f"{r['id']}.npz") for r in records]


def time_runs(items: list[dict], repeats: int) -> dict[str, dict]:
    """{"old"/"new": {"total": s, "steps": {step: s}}} of the fastest of ``repeats`` alternating
    passes over ``items``."""
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for name, func in (("old", run_old), ("new", run_new)):
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
    """Per-step milliseconds and MPix/s, old -> new, for each saved set."""
    names = list(runs)
    head = "| step | " + " | ".join(f"{n}: before ms | {n}: now ms" for n in names) + " |"
    lines = [head, "|---|" + "---|---|" * len(names)]
    for step in STEPS:
        cells = []
        for n in names:
            best, _ = runs[n]
            cells += [f"{1000 * best[k]['steps'].get(step, 0.0):.1f}" for k in ("old", "new")]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    total = [f"**{1000 * runs[n][0][k]['total']:.1f}**" for n in names for k in ("old", "new")]
    speed = [f"**{runs[n][1] / 1e6 / runs[n][0][k]['total']:.1f}**" for n in names for k in ("old", "new")]
    lines.append("| **total** | " + " | ".join(total) + " |")
    lines.append("| **MPix/s (image pixels)** | " + " | ".join(speed) + " |")
    return "\n".join(lines)


@contextmanager
def network_pixels():
    """Count the pixels put through the network (``TileRunner.run`` batches) in ``seen[0]``."""
    seen = [0]
    run = runner.TileRunner.run

    def counting(self, batch):
        seen[0] += int(batch.shape[0] * batch.shape[-2] * batch.shape[-1])
        return run(self, batch)

    runner.TileRunner.run = counting
    try:
        yield seen
    finally:
        runner.TileRunner.run = run


def estimate_share(data: Path, repeats: int) -> dict:
    """The diameter estimate (``inference.object_size``) against the whole default run on the
    mosaic: seconds (best of ``repeats``, alternating) and network pixels of each."""
    model = load_model("nuclei")
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


def docs_body(mosaic_run: dict, images: int, repeats: int, text: str) -> str:
    """The docs section: what was measured, the printed results, the command."""
    h, w = mosaic_run["prob"].shape[1:]
    return (
        "Post-processing alone (class map, softmax of the blended logits into the float16 rows kept "
        "for instances, instances, mapping to the image grid with outlines) from saved probabilities "
        "of the bundled `nuclei` model, object diameter auto: the 2048x2048 DSB2018 val fluorescence "
        f"mosaic (run at {h}x{w}) and the {images} DSB2018 val images. Before: the code of commit "
        "4c0dca3 (`benchmarks/_postprocess_before.py`); now: the package. Both in one process, "
        f"alternately, best of {repeats}; milliseconds per step (time inside the step's own "
        f"functions; the rest of a total is glue).\n\n{text}\n\n"
        "Reproduce: `python benchmarks/postprocess_speed.py ../shared/data/dsb2018 --estimate --write-docs`"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "deepseg-postprocess-speed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="only the first N val images")
    ap.add_argument("--estimate", action="store_true", help="also time the diameter estimate")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"skip: DSB2018 not found at {args.data} (pass the folder as the first argument)")
        return 0
    mosaic_run, val = prepare(args.data, args.cache, args.limit)
    load = os.getloadavg()[0]
    runs = {
        "mosaic": (time_runs([mosaic_run], args.repeats), mosaic_run["pixels"]),
        "DSB val": (time_runs(val, args.repeats), sum(v["pixels"] for v in val)),
    }
    table = speed_table(runs)
    agree = agreement(val)
    load = max(load, os.getloadavg()[0])
    text = (
        f"{table}\n\nAgreement on the {len(val)} DSB2018 val images (auto diameter): "
        f"{100 * agree['matched']:.2f}% of the {agree['objects']} objects of before matched by one of now "
        f"at IoU >= 0.9; pooled AP@0.5 {agree['ap50'][0]:.4f} before, {agree['ap50'][1]:.4f} now; mean AP "
        f"0.5:0.95 {agree['map'][0]:.4f} before, {agree['map'][1]:.4f} now."
    )
    ok = agree["matched"] >= 0.995 and all(abs(a - b) <= 0.002 for a, b in (agree["ap50"], agree["map"]))
    text += f" Criteria (>= 99.5% matched, AP within 0.002): {'met' if ok else 'NOT met'}."
    if args.estimate:
        share = estimate_share(args.data, max(2, args.repeats // 2))
        load = max(load, os.getloadavg()[0])
        (est_pixels, run_pixels), est, run = share["pixels"], share["estimate"], share["run"]
        text += (
            f"\n\nDiameter estimate (`inference.object_size`, auto) on the mosaic: {est:.2f} s, the whole "
            f"default run (`segment()`, classes + instances, estimate included) {run:.2f} s: "
            f"**{100 * est / run:.1f}%** of the run (best of {max(2, args.repeats // 2)}, alternating). "
            f"Network pixels: the estimate {est_pixels / 1e6:.2f} M, the run {run_pixels / 1e6:.2f} M "
            f"({100 * est_pixels / run_pixels:.1f}%)."
        )
    where = f"{machine()}; highest 1-minute load average seen during the run {load:.2f}"
    text += f"\n\nMachine: {where}."
    print(text)
    if args.write_docs:
        write_section("Post-processing speed", docs_body(mosaic_run, len(val), args.repeats, text))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
