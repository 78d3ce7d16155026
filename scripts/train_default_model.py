"""Train the bundled default nuclei model with the product's training core (resumable).

A thin layer over :func:`napari_deepseg.training.finetune_iter`: it reads the DSB2018 `train`
split, carves the *selection* split out of it (stratified by image kind, seeded: see
``benchmarks/_common.selection_split``), gives each training image a sampling weight from its
kind's share, and trains a new instance-boundary U-Net through the core with these options:

- ``channel_mode="gray-hed"``: gray images as they are, colour (H&E) images as their
  hematoxylin optical density (the same code path at inference);
- ``object_diameter``: every training image is resampled so its nuclei have this median
  diameter (inference estimates the diameter and resamples the same way); ``zoom`` adds
  random scale augmentation around it;
- ``minutes``: a wall-clock budget (the run ends, validated and saved, when it is spent);
- ``snapshots``: each epoch's weights are kept for selection on the selection split
  (``scripts/select_default_model.py``); the val split is never read here.

    python scripts/train_default_model.py --data ../shared/data/dsb2018 --out runs/nuclei-v2 \\
        --minutes 95

On a GPU (``--device cuda``) the core's policy trains in mixed precision (bf16 autocast where
the GPU has it, else fp16 with a gradient scaler) on channels-last tensors, and worker
processes make the batches ahead of the steps (``--workers``); checkpoints and snapshots are
written each epoch as on the CPU. The GPU recipe (docs/models.md) is the shipped one with a
fixed number of epochs instead of a time budget.

Rerunning the same command resumes from ``OUT/checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import dsb_records, read_dsb, selection_split  # noqa: E402
from napari_deepseg.training import finetune_iter  # noqa: E402


def parse_kind_weights(text: str) -> dict[str, float]:
    """ "fluorescence=0.65,histology=0.28,brightfield=0.07" -> {kind: share}."""
    weights = {}
    for item in text.split(","):
        kind, _, value = item.partition("=")
        weights[kind.strip()] = float(value)
    missing = {"fluorescence", "histology", "brightfield"} - set(weights)
    if missing:
        raise SystemExit(f"--kind-weights lacks {', '.join(sorted(missing))}")
    return weights


def load_pairs(root: Path, records: list[dict], shares: dict[str, float] | None) -> list[dict]:
    """Training pairs (dicts for finetune_iter) with per-image weights from the kind shares.

    A kind whose share is 0 is left out (e.g. ``histology=0``: a model that never saw H&E)."""
    if shares is not None:
        records = [rec for rec in records if shares[rec["kind"]] > 0]
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec["kind"]] = counts.get(rec["kind"], 0) + 1
    pairs = []
    for rec in records:
        image, labels = read_dsb(root, rec)
        pair = {"image": image, "labels": labels, "name": rec["id"]}
        if shares is not None:
            pair["weight"] = shares[rec["kind"]] / counts[rec["kind"]]
        pairs.append(pair)
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--out", type=Path, default=Path("runs/nuclei-v2"))
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--diameter", type=float, default=16.0, help="training object diameter (pixels)")
    ap.add_argument("--zoom", type=float, default=1.25, help="scale augmentation range [1/z, z]")
    ap.add_argument("--patch", type=int, default=192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps-per-epoch", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget of this run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--kind-weights", default="fluorescence=0.65,histology=0.28,brightfield=0.07",
        help="share of the patches drawn from each image kind (0 leaves the kind out)",
    )  # fmt: skip
    ap.add_argument("--schedule", choices=("onecycle", "cosine"), default="onecycle")
    ap.add_argument("--warmup", type=float, default=0.0, help="cosine: warm-up fraction of the steps")
    ap.add_argument(
        "--contact-weight", type=float, default=1.0,
        help="cross-entropy weight of pixels between two nuclei (the core's contact_weight)",
    )  # fmt: skip
    ap.add_argument(
        "--boundary-width", type=int, default=1,
        help="width in pixels of the boundary rim the model learns (the core's boundary_width)",
    )  # fmt: skip
    ap.add_argument(
        "--distance", action="store_true",
        help="a new model with a distance output (instances seeded from its maxima; the core's distance)",
    )  # fmt: skip
    ap.add_argument("--distance-weight", type=float, default=1.0, help="weight of the distance loss")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    ap.add_argument(
        "--precision", default="auto", help="auto (the policy: bf16/fp16 autocast on GPUs), fp32, bf16, fp16"
    )
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    ap.add_argument(
        "--workers", type=int, default=None,
        help="processes that make batches ahead of the steps (default: none on the CPU, up to 8 on a GPU)",
    )  # fmt: skip
    ap.add_argument(
        "--init", type=Path, default=None,
        help="continue training this model file (its architecture, channel mode and diameter)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick its fastest kernels
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data (skipping)", file=sys.stderr)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    train_recs, select_recs = selection_split(dsb_records(args.data, "train"))
    (args.out / "split.json").write_text(
        json.dumps({"train": [r["id"] for r in train_recs], "selection": [r["id"] for r in select_recs]})
    )
    pairs = load_pairs(args.data, train_recs, parse_kind_weights(args.kind_weights))
    selection = load_pairs(args.data, select_recs, None)
    command = "python scripts/train_default_model.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "command.txt").write_text(command + "\n")  # the selection script records it
    checkpoint = args.out / "checkpoint.pt"
    options = dict(
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, lr=args.lr, batch_size=args.batch,
        patch_size=args.patch, schedule=args.schedule, warmup=args.warmup, zoom=args.zoom,
        minutes=args.minutes, snapshots=True, seed=args.seed, name="nuclei", val_fraction=0.0,
        contact_weight=args.contact_weight, distance_weight=args.distance_weight, loader_workers=args.workers,
    )  # fmt: skip
    if args.init is None:  # a new model: these define it (a starting model brings its own)
        options.update(
            object_diameter=args.diameter, channel_mode="gray-hed", task="instance-boundary",
            arch_options={"base": args.base, "depth": args.depth}, boundary_width=args.boundary_width,
            distance=args.distance,
        )  # fmt: skip
    gen = finetune_iter(
        pairs,
        None if args.init is None else str(args.init),
        val_pairs=selection,
        output=args.out / "nuclei.pt",
        checkpoint=checkpoint,
        resume=checkpoint if checkpoint.exists() else None,
        device=args.device,
        precision=args.precision,
        **({} if checkpoint.exists() else options),
    )
    start = time.time()
    print(f"{len(pairs)} training images, {len(selection)} selection images; {command}", flush=True)
    try:
        while True:
            event = next(gen)
            if event.stage == "epoch" or event.done % 50 == 0:
                print(f"{event.message} [{time.time() - start:.0f} s]", flush=True)
    except StopIteration as stop:
        result = stop.value
    print(f"done: best epoch {result.best_epoch}, {result.path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
