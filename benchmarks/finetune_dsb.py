"""Fine-tuning benchmark on DSB2018: fluorescence-only model -> 2 annotated histology images.

1. Start from a model trained only on fluorescence images (``--base MODEL``, or train one here
   for ``--pretrain-minutes`` on the fluorescence train split, from scratch).
2. Score it on the histology *val* images: pooled foreground IoU, instance AP@0.5 and DSB
   mean AP (``napari_deepseg.inference.segment`` + ``napari_deepseg.evaluation``).
3. Fine-tune it with ``napari_deepseg.training.finetune_iter`` on ``--n-train`` histology
   *train* images (dense masks, default settings), for at most ``--finetune-minutes``.
4. Score again; print a table and, with ``--write docs/benchmarks.md``, replace this script's
   section there.

Usage:
    python benchmarks/finetune_dsb.py ../shared/data/dsb2018 --write docs/benchmarks.md
Skips (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_deepseg.evaluation import foreground_scores, match_instances, pool_foreground, pool_scores
from napari_deepseg.inference import segment
from napari_deepseg.models import load_model
from napari_deepseg.training import finetune_iter

try:
    from _common import dsb_records, machine, read_dsb, replace_section
except ImportError:  # run as a module
    from benchmarks._common import dsb_records, machine, read_dsb, replace_section

THREADS_NOTE = (
    "One torch thread: on this shared, oversubscribed 2-core machine two OpenMP threads spin-wait "
    "for each other and each step was 3-10x slower than with one."
)


def load_split(root: Path, split: str, kind: str, limit: int | None = None, min_nuclei: int = 0) -> list:
    """(image, labels, id) triples of one split and kind, in index order."""
    return [(*read_dsb(root, r), r["id"]) for r in dsb_records(root, split, kind, min_nuclei)[:limit]]


def drive(gen, minutes: float) -> tuple[object | None, int, float]:
    """Run a finetune generator, closing it after ``minutes``; (result or None, steps, seconds)."""
    start, steps = time.perf_counter(), 0
    try:
        while True:
            event = next(gen)
            if event.stage == "step":
                steps = event.done
                if time.perf_counter() - start > 60 * minutes:
                    gen.close()  # stop: the best model so far is written to the output file
                    return None, steps, time.perf_counter() - start
            elif event.stage == "epoch":
                print(f"  {event.message}", flush=True)
    except StopIteration as stop:
        return stop.value, steps, time.perf_counter() - start


def seconds_per_step(pairs, model, kw: dict) -> float:
    """Time a few training steps of the given configuration (first step excluded)."""
    times = []
    gen = finetune_iter(pairs[:8], model, epochs=1, steps_per_epoch=4, val_fraction=0, **kw)
    last = time.perf_counter()
    for event in gen:
        if event.stage == "step":
            now = time.perf_counter()
            times.append(now - last)
            last = now
    return float(np.median(times[1:]))


def evaluate(model, triples, device: str) -> dict:
    """Pooled foreground IoU, AP@0.5 and DSB mean AP of the model's instances."""
    fg, inst = [], []
    for image, truth, _ in triples:
        res = segment(image, model, device=device, outputs=("classes", "instances"))
        fg.append(foreground_scores(res.classes, truth))
        inst.append(match_instances(res.instances, truth))
    pooled = pool_scores(inst)
    return {"fg_iou": pool_foreground(fg)["iou"], "ap50": pooled.at(0.5), "mean_ap": pooled.mean_ap}


def pretrain(args, kw: dict) -> tuple[Path, dict]:
    fluo = load_split(args.data, "train", "fluorescence")
    pairs = [(i, m) for i, m, _ in fluo]
    arch = {"base": args.width, "depth": 4}
    sps = seconds_per_step(pairs, None, {**kw, "arch_options": arch})
    steps = max(20, int(60 * args.pretrain_minutes / sps * 0.9))
    path = args.out / "fluorescence_base.pt"
    print(f"pretraining on {len(pairs)} fluorescence images: {steps} steps at ~{sps:.2f} s/step", flush=True)
    gen = finetune_iter(
        pairs, epochs=1, steps_per_epoch=steps, val_fraction=0, lr=3e-3, schedule="onecycle",
        arch_options=arch, output=path, overwrite=True, name="fluorescence-only", **kw,
    )  # fmt: skip
    _, done, secs = drive(gen, args.pretrain_minutes * 1.5)
    return path, {"images": len(pairs), "steps": done, "seconds": secs, "s_per_step": sps}


def finetune_histology(args, base: Path, kw: dict, sps: float) -> tuple[Path, dict]:
    hist = load_split(args.data, "train", "histology", limit=args.n_train, min_nuclei=30)
    steps = max(10, min(200, int(60 * args.finetune_minutes / sps * 0.85)))
    epochs = max(1, steps // 10)
    path = args.out / "histology_finetuned.pt"
    print(f"fine-tuning on {[h[2] for h in hist]}: {epochs} x 10 steps", flush=True)
    gen = finetune_iter(
        [(i, m) for i, m, _ in hist],
        base,
        epochs=epochs,
        steps_per_epoch=10,
        output=path,
        overwrite=True,
        **kw,
    )  # the benchmark's own files: a rerun replaces them
    result, done, secs = drive(gen, args.finetune_minutes)
    best = result.best_epoch if result is not None else load_model(path).deepseg_meta.provenance["best_epoch"]
    return path, {"ids": [h[2] for h in hist], "steps": done, "seconds": secs, "best_epoch": best}


def host() -> str:
    """The machine line, with the load at the start and the torch threads used."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{machine()}, load average {load:.1f} at start, {torch.get_num_threads()} torch thread(s)"


def table(before: dict, after: dict, info: dict) -> str:
    keys = ("fg_iou", "ap50", "mean_ap")
    rows = [
        "| model | histology val fg IoU | AP@0.5 | DSB mean AP |",
        "|---|---|---|---|",
        "| fluorescence-only base | " + " | ".join(f"{before[k]:.3f}" for k in keys) + " |",
        f"| fine-tuned on {info['n_train']} histology images | "
        + " | ".join(f"{after[k]:.3f}" for k in keys)
        + " |",
        "| **gain** | " + " | ".join(f"**{after[k] - before[k]:+.3f}**" for k in keys) + " |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--base", type=Path, default=None, help="fluorescence-only model (default: train one)")
    ap.add_argument("--pretrain-minutes", type=float, default=4.0)
    ap.add_argument("--finetune-minutes", type=float, default=5.0)
    ap.add_argument("--n-train", type=int, default=2, help="histology train images to fine-tune on")
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=16, help="U-Net base width of the pretrained model")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=Path("runs/finetune_dsb"))
    ap.add_argument("--write", type=Path, default=None, help="markdown file whose section to replace")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"skip: DSB2018 not found at {args.data} (pass the folder as the first argument)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    host_line = host()
    kw = {"patch_size": args.patch, "batch_size": args.batch, "device": args.device, "seed": 0}
    t0 = time.perf_counter()
    if args.base is None:
        base, pre = pretrain(args, kw)
        sps = pre["s_per_step"]
    else:
        base, pre = args.base, {"given": str(args.base)}
        hist = [(i, m) for i, m, _ in load_split(args.data, "train", "histology", 2)]
        sps = seconds_per_step(hist, base, kw)
    val = load_split(args.data, "val", "histology")
    before = evaluate(load_model(base), val, args.device)
    print(f"before: {before}", flush=True)
    tuned, ft = finetune_histology(args, base, kw, sps)
    after = evaluate(load_model(tuned), val, args.device)
    print(f"after: {after}", flush=True)
    info = {"n_train": len(ft["ids"]), "n_val": len(val)}
    text = _report(args, host_line, pre, ft, before, after, info, time.perf_counter() - t0)
    print(text)
    if args.write:
        replace_section(text, args.write)
    return 0


def _report(args, host, pre, ft, before, after, info, total) -> str:
    if "given" in pre:
        base_line = f"base model: {pre['given']} (fluorescence only)"
    else:
        base_line = (
            f"base model: U-Net base {args.width}, trained here from scratch on {pre['images']} "
            f"fluorescence train images for {pre['steps']} steps ({pre['seconds'] / 60:.1f} min)"
        )
    cmd = "python benchmarks/finetune_dsb.py " + " ".join(sys.argv[1:] if sys.argv[1:] else [str(args.data)])
    return "\n".join(
        [
            "## Fine-tuning on 2 histology images (benchmarks/finetune_dsb.py)",
            "",
            f"Command: `{cmd}`  ",
            f"Machine: {host}; device {args.device}.  ",
            f"{base_line}.  ",
            f"Fine-tuning: images {', '.join(ft['ids'])} (dense masks), patch {args.patch}, "
            f"batch {args.batch}, {ft['steps']} steps in **{ft['seconds'] / 60:.1f} min** wall time "
            f"(best epoch {ft['best_epoch']}; limit {args.finetune_minutes:g} min). Scores pooled over "
            f"the {info['n_val']} histology val images; instances by the inference engine's "
            "seeded watershed.",
            "",
            table(before, after, info),
            "",
            f"Total benchmark wall time {total / 60:.1f} min.",
            *([THREADS_NOTE] if args.threads == 1 else []),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
