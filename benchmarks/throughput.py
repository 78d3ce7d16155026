"""End-to-end throughput against the network alone, in one run (issue 36's table, re-measured).

On a 2048x2048 mosaic of real DSB val fluorescence tiles, with the bundled ``nuclei`` model:

- the network alone: the run's tile runner on 512x512 tiles without overlap (fp32, and the
  precision ``auto`` picks on this machine), nothing else;
- ``segment()``: classes only and classes + instances at the model's own object size
  (``object_diameter=16``), and the default run (classes + instances, diameter estimated);
- the stages of the default run (diameter estimate, network, post-processing) from a profile.

Then ``deepseg predict``'s generator over a folder of 200 real 512x512 images (mosaics of DSB
train fluorescence tiles), start-up excluded (the model is loaded and a first file run before
the clock starts), against the network alone on the same images.

Old and new configurations alternate and the best of ``--repeats`` is kept, so a busy machine
slows all alike; the load average is printed with the table. ``--device cuda`` also reports the
share of the wall time the device is busy (CUDA events around each forward pass).

    python benchmarks/throughput.py ../shared/data/dsb2018 --write-docs
    python benchmarks/throughput.py ../shared/data/dsb2018 --device cuda --write-docs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_deepseg.batch import predict_iter
from napari_deepseg.inference import blockwise, job, rescaled, resolve_device, resolve_precision, segment
from napari_deepseg.inference.runner import TileRunner
from napari_deepseg.models import load_model
from napari_deepseg.models.catalog import resolve_model_path
from napari_deepseg.progress import drain

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.throughput
    from _common import machine, replace_section, tile_batches
    from _mosaic import dsb_tiles, mosaic
except ImportError:
    from benchmarks._common import machine, replace_section, tile_batches
    from benchmarks._mosaic import dsb_tiles, mosaic

SIDE, TILE, FILES = 2048, 512, 200


class StageClock:
    """Seconds spent in the run's stages, by wrapping them at class/module level: the diameter
    estimate, the network's forward passes (CUDA events on a GPU: device-busy time) and the
    post-processing (on the pipeline's thread, so it may overlap the network)."""

    def __init__(self) -> None:
        self.seconds = {"estimate": 0.0, "network": 0.0, "instances": 0.0}
        self._saved: list[tuple[object, str, object]] = []

    def __enter__(self) -> StageClock:
        self._wrap(rescaled, "estimate_diameter", "estimate")
        self._wrap(job, "plane_instances", "instances")
        self._wrap(blockwise, "block_instances", "instances")
        forward = TileRunner._forward

        def timed(runner, x):
            if x.device.type != "cuda":
                return self._timed("network", forward, runner, x)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = forward(runner, x)
            end.record()
            end.synchronize()
            self.seconds["network"] += start.elapsed_time(end) / 1000
            return out

        self._saved.append((TileRunner, "_forward", forward))
        TileRunner._forward = timed
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, value in reversed(self._saved):
            setattr(owner, name, value)

    def _wrap(self, owner, name: str, stage: str) -> None:
        original = getattr(owner, name)
        self._saved.append((owner, name, original))
        setattr(owner, name, lambda *a, **k: self._timed(stage, original, *a, **k))

    def _timed(self, stage: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[stage] += time.perf_counter() - t0


def network_alone(model, images: list[np.ndarray], device: str, precision: str, repeats: int) -> float:
    """MPix/s of the tile runner alone on non-overlapping 512x512 tiles of ``images``
    (normalized to [0, 1] beforehand, as the run's percentile normalization would)."""
    tiles = [
        (im[y : y + TILE, x : x + TILE].astype(np.float32) / 255.0)[None]
        for im in images
        for y in range(0, im.shape[0], TILE)
        for x in range(0, im.shape[1], TILE)
    ]
    batches = [np.stack(tiles[i : i + 2]) for i in range(0, len(tiles), 2)]
    return replay(model, batches, sum(im.size for im in images), device, repeats, precision)


def run_batches(model, image: np.ndarray, device: str) -> list[np.ndarray]:
    """The input batches one default run feeds its network (the estimate's crops, then the
    tiles with their overlaps), copied as they come."""
    seen: list[np.ndarray] = []
    with tile_batches(lambda batch: seen.append(np.array(batch, copy=True))):
        segment(image, model, device=device, outputs=("classes", "instances"))
    return seen


def replay(
    model, batches: list[np.ndarray], pixels: int, device: str, repeats: int, precision: str = "auto"
) -> float:
    """MPix/s (``pixels`` of the image) of the tile runner alone on ``batches``, nothing else
    (best of ``repeats``, after a warm-up batch)."""
    dev = resolve_device(device)
    agreement = model.deepseg_meta.bf16_agreement
    chosen = resolve_precision(precision, dev, mode="inference", bf16_agreement=agreement)
    runner = TileRunner(model, dev, chosen, max(len(b) for b in batches), False)
    runner.run(batches[-1])  # warm-up
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for batch in batches:
            runner.run(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return pixels / 1e6 / best


def segment_speed(model, image: np.ndarray, repeats: int, **options) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        segment(image, model, **options)
        best = min(best, time.perf_counter() - t0)
    return image.size / 1e6 / best


def stages(model, image: np.ndarray, device: str) -> dict[str, float]:
    """Seconds of one default run and of its stages (:class:`StageClock`)."""
    with StageClock() as clock:
        t0 = time.perf_counter()
        segment(image, model, device=device, outputs=("classes", "instances"))
        wall = time.perf_counter() - t0
    return {"wall": wall, **clock.seconds}


def folder_of_images(data: Path, folder: Path) -> list[np.ndarray]:
    """``FILES`` real 512x512 images (mosaics of DSB train fluorescence tiles) written as TIFFs."""
    tiles = dsb_tiles(data, "train", "fluorescence")
    images = [mosaic(tiles, TILE, seed=i) for i in range(FILES)]
    for i, image in enumerate(images):
        tifffile.imwrite(folder / f"img{i:03d}.tif", image)
    return images


def predict_speed(model_path: str, folder: Path, out: Path, device: str) -> float:
    """Seconds of predict_iter over the folder, after a first run over one file (start-up)."""
    warm = folder.parent / "warm"
    warm.mkdir(exist_ok=True)
    (warm / "a.tif").write_bytes(next(folder.glob("*.tif")).read_bytes())
    drain(predict_iter([warm], out.parent / "warm-out", model=model_path, device=device))
    t0 = time.perf_counter()
    summary = drain(predict_iter([folder], out, model=model_path, device=device))
    seconds = time.perf_counter() - t0
    if len(summary.done) != FILES:
        raise SystemExit(f"predict segmented {len(summary.done)} of {FILES} files: {summary.text()}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, nargs="?", default=Path("../shared/data/dsb2018"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass its path (skipping)", file=sys.stderr)
        return 0
    rows, text = measure(args)
    print(text)
    if args.write_docs:
        replace_section(text)
    return 0 if rows["ratio"] >= 0.8 else 1


def measure(args: argparse.Namespace) -> tuple[dict, str]:
    model = load_model("nuclei")
    image = mosaic(dsb_tiles(args.data, "val", "fluorescence"), SIDE)
    dev, r = args.device, args.repeats
    segment(image[:512, :512], model, device=dev, outputs=("instances",))  # warm-up
    load0 = os.getloadavg()[0]
    rows = {
        "net fp32": network_alone(model, [image], dev, "fp32", r),
        "net auto": network_alone(model, [image], dev, "auto", r),
        "classes d16": segment_speed(model, image, r, device=dev, object_diameter=16),
        "both d16": segment_speed(
            model, image, r, device=dev, outputs=("classes", "instances"), object_diameter=16
        ),
        "default": segment_speed(model, image, r, device=dev, outputs=("classes", "instances")),
    }
    rows["ratio"] = rows["default"] / rows["net auto"]
    batches = run_batches(model, image, dev)
    rows["net own"] = replay(model, batches, image.size, dev, r)
    rows["own pixels"] = sum(b.shape[0] * b.shape[-2] * b.shape[-1] for b in batches) / image.size
    steps = stages(model, image, dev)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        images = folder_of_images(args.data, folder)
        net = network_alone(model, images, dev, "auto", r)
        seconds = predict_speed(str(resolve_model_path("nuclei")), folder, Path(tmp) / "out", dev)
    rows["predict"] = FILES * TILE * TILE / 1e6 / seconds
    rows["predict net"] = net
    return rows, table(rows, steps, args, load0)


def table(rows: dict, steps: dict, args: argparse.Namespace, load0: float) -> str:
    wall = steps["wall"]
    share = {k: 100 * steps[k] / wall for k in ("estimate", "network", "instances")}
    lines = [
        f"## Throughput on {args.device}: end to end against the network alone",
        "",
        f"Machine: {machine()}; device {args.device}; load average {load0:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end; best of {args.repeats}.",
        "",
        "| what | MPix/s |",
        "|---|---|",
        f"| network alone (512x512 tiles, no overlap, fp32) | {rows['net fp32']:.2f} |",
        f"| network alone (the precision `auto` picks) | {rows['net auto']:.2f} |",
        f"| `segment()`, classes only, diameter 16 | {rows['classes d16']:.2f} |",
        f"| `segment()`, classes + instances, diameter 16 | {rows['both d16']:.2f} |",
        f"| `segment()`, classes + instances, diameter auto (the default) | {rows['default']:.2f} |",
        f"| default run / network alone (`auto`) | {rows['ratio']:.2f} |",
        f"| network alone on the default run's own batches (the estimate's crops and the tiles "
        f"with their overlaps: {rows['own pixels']:.2f} network pixels per image pixel) "
        f"| {rows['net own']:.2f} |",
        f"| default run / network alone on its own batches (the share of the run that is not "
        f"the network) | {rows['default'] / rows['net own']:.2f} |",
        f"| `deepseg predict` (generator), {FILES} real 512x512 images, no start-up "
        f"| {rows['predict']:.2f} |",
        f"| network alone on those images | {rows['predict net']:.2f} |",
        f"| predict / network alone | {rows['predict'] / rows['predict net']:.2f} |",
        "",
        "Issue 36's table, for comparison (an AVX2 machine without bf16, fp32): network alone "
        "1.58-1.80, default run 0.77-0.80 MPix/s, a ratio of about 0.5.",
        "",
        f"Stages of one default run ({wall:.2f} s): diameter estimate {share['estimate']:.0f}% of the "
        f"wall time, the network's forward passes {share['network']:.0f}% (device busy; the "
        f"estimate's own included), instances {share['instances']:.0f}% (on the pipeline's thread, "
        "beside the network where a run has several units).",
        "",
        "Reproduce: `python benchmarks/throughput.py ../shared/data/dsb2018 "
        f"--device {args.device} --write-docs`",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
