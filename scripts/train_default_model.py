"""Train the bundled default nuclei model on the DSB2018 train split (resumable, CPU or GPU).

The model: an instance-boundary U-Net (classes background, interior, boundary) on grayscale
input (RGB images averaged to gray), percentile-normalised per image, as the default model
`nuclei` describes in its model file. Snapshots are written every ``--snapshot-every`` steps;
``scripts/select_default_model.py`` scores them on the val split and ships the best.

Usage (records itself in each snapshot's provenance):
    python scripts/train_default_model.py --data ../shared/data/dsb2018 --out runs/nuclei \
        --minutes 70
Rerunning the same command resumes from ``OUT/checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_deepseg.inference.device import available_devices, resolve_device, resolve_precision
from napari_deepseg.models import ModelMeta, build_model, load_model, save_model
from napari_deepseg.training.data import normalize_plane, to_model_input
from napari_deepseg.training.labels import boundary_targets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from _common import dsb_records, read_dsb

NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8, "scope": "plane"}


def load_split(root: Path, split: str) -> list[dict]:
    """The split's images as the model sees them (the core's channel rule and normalization, the
    same code inference runs) and their 3-class targets."""
    records = []
    for rec in dsb_records(root, split):
        image, labels = read_dsb(root, rec)
        x = normalize_plane(to_model_input(image, 1, "gray"), NORMALIZATION)[0]
        records.append({"id": rec["id"], "kind": rec["kind"], "image": x, "target": boundary_targets(labels)})
    return records


def sample_batch(records, probs, rng, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = np.zeros((batch, 1, size, size), np.float32), np.zeros((batch, size, size), np.int64)
    for b in range(batch):
        rec = records[rng.choice(len(records), p=probs)]
        img, tgt = rec["image"], rec["target"]
        h, w = img.shape
        ph, pw = max(0, size - h), max(0, size - w)
        if ph or pw:
            img = np.pad(img, ((0, ph), (0, pw)), mode="reflect")
            tgt = np.pad(tgt, ((0, ph), (0, pw)), mode="reflect")
        y0 = rng.integers(0, img.shape[0] - size + 1)
        x0 = rng.integers(0, img.shape[1] - size + 1)
        pi, pt = img[y0 : y0 + size, x0 : x0 + size], tgt[y0 : y0 + size, x0 : x0 + size]
        k = rng.integers(4)
        pi, pt = np.rot90(pi, k), np.rot90(pt, k)
        if rng.random() < 0.5:
            pi, pt = pi[:, ::-1], pt[:, ::-1]
        # intensity augmentation: scale, shift, gamma on the normalised image
        pi = np.clip(pi, 0, None) ** rng.uniform(0.7, 1.4) * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
        xs[b, 0], ys[b] = pi, pt
    return torch.from_numpy(xs), torch.from_numpy(ys)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy plus soft Dice over the foreground classes."""
    logits = logits.float()
    ce = F.cross_entropy(logits, target, weight=weights)
    prob = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (prob * onehot).sum((0, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
    return ce + dice[1:].mean()


def parse_kind_weights(text: str) -> dict[str, float]:
    """ "fluorescence=0.6,histology=0.3,brightfield=0.1" -> {kind: share}."""
    weights = {}
    for item in text.split(","):
        kind, _, value = item.partition("=")
        weights[kind.strip()] = float(value)
    missing = {"fluorescence", "histology", "brightfield"} - set(weights)
    if missing:
        raise SystemExit(f"--kind-weights lacks {', '.join(sorted(missing))}")
    return weights


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--out", type=Path, default=Path("runs/nuclei"))
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--patch", type=int, default=192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=6000, help="schedule length")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this wall time")
    ap.add_argument("--snapshot-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--kind-weights",
        default="fluorescence=0.6,histology=0.3,brightfield=0.1",
        help="sampling share of each image kind, e.g. fluorescence=0.8,histology=0.15,brightfield=0.05",
    )
    ap.add_argument(
        "--init", type=Path, help="start from this model file's weights (a new cycle: fresh optimizer)"
    )
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data", file=sys.stderr)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    device = resolve_device("cuda" if available_devices()["cuda"] else "cpu").type
    policy = resolve_precision("auto", device, mode="training")
    amp = policy.dtype

    kind_weight = parse_kind_weights(args.kind_weights)
    records = load_split(args.data, "train")
    w = np.array([kind_weight[r["kind"]] / sum(q["kind"] == r["kind"] for q in records) for r in records])
    probs = w / w.sum()
    model = build_model("unet", in_channels=1, num_classes=3, base=args.base, depth=4)
    if args.init:
        model.load_state_dict(load_model(args.init).state_dict())
    model = model.to(device)
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    weights = torch.tensor([1.0, 1.0, 2.0], device=device)
    step, rng = 0, np.random.default_rng(args.seed)
    ckpt = args.out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = int(state["step"])
        rng = np.random.default_rng([args.seed, step])
        print(f"resumed at step {step}", flush=True)
    torch.manual_seed(args.seed + step)

    start, losses = time.time(), []
    command = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    while step < args.steps:
        if args.minutes and (time.time() - start) / 60 > args.minutes:
            break
        model.train()
        x, y = sample_batch(records, probs, rng, args.batch, args.patch)
        x = x.to(device)
        x = x.to(memory_format=torch.channels_last) if policy.channels_last else x
        y = y.to(device)
        with torch.autocast(device_type=device, dtype=amp, enabled=amp is not None):
            logits = model(x)
        loss = loss_fn(logits, y, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            rate = (time.time() - start) / max(1, len(losses))
            print(f"step {step} loss {np.mean(losses[-50:]):.4f} {rate:.2f}s/step", flush=True)
        if step % args.snapshot_every == 0 or step == args.steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "step": step,
                },
                tmp,
            )
            os.replace(tmp, ckpt)
            meta = ModelMeta(
                name="nuclei",
                description="Nuclei in fluorescence, brightfield and histology (DSB2018), instances",
                task="instance-boundary",
                class_names=["background", "interior", "boundary"],
                normalization=dict(NORMALIZATION),
                channel_mode="gray",
                provenance={
                    "data": f"DSB2018 stage1_train (BBBC038, community-fixed masks), split 'train', "
                    f"{len(records)} images, all kinds",
                    "command": command,
                    "steps": step,
                    "initialised_from": str(args.init) if args.init else None,
                    "batch": args.batch,
                    "patch": args.patch,
                    "train_loss": float(np.mean(losses[-100:])),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "device": device,
                    "precision": f"{policy.name} autocast" if amp else "fp32",
                },
            )
            save_model(
                args.out / f"snapshot_{step:06d}.pt", model.to(memory_format=torch.contiguous_format), meta
            )
            if policy.channels_last:
                model.to(memory_format=torch.channels_last)
            print(f"snapshot at step {step}", flush=True)
    print(f"done: step {step}, {math.floor(time.time() - start)} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
