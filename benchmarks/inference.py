"""Inference engine benchmark: throughput, peak memory, tiling overhead, MONAI comparison, efficiency.

Each measurement runs in its own subprocess (so peak RSS is that measurement's alone) on the same
image and model: a U-Net of base 32 (the bundled "nuclei" model when present, else random
weights), a 4096x4096 uint16 synthetic nuclei image, tile 512, overlap 64. Rows:

- segment(): this engine (fp32, bf16 autocast + channels_last);
- untiled: one forward pass over a 2048x2048 crop (tiling overhead = 1 - segment / untiled);
  segment and untiled run ``--repeats`` times, interleaved, and the median run is reported
  (the spread is shown), so one noisy run does not decide the overhead;
- MONAI sliding_window_inference, same model, overlap 64/512, Gaussian blending, batch 2;
- achieved GFLOP/s of segment (U-Net FLOPs x pixels actually run, overlaps included) against
  a 4096^3 matmul of the same precision;
- memory point: 8192x8192 uint16 image, peak RSS over the image + class map size;
- bf16 vs fp32 class-map agreement (on random weights; the per-model figure that sets
  the CPU ``precision="auto"`` choice is measured by default_model_speed.py).

Usage: ``python benchmarks/inference.py [--size 4096] [--memory-size 8192] [--repeats 3] [--no-write]``;
writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

try:
    from _common import machine, replace_section
except ImportError:  # run as a module
    from benchmarks._common import machine, replace_section

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
TILE, OVERLAP, BATCH = 512, 64, 2


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _model(path: str | None = None, base: int = 32):
    from napari_deepseg.models import build_model, bundled_models, load_model

    if path:
        return load_model(path), Path(path).name
    if base == 32 and "nuclei" in bundled_models():
        model = load_model("nuclei")
        if getattr(model, "deepseg_arch", None) and model.deepseg_arch.options.get("base", 32) == 32:
            return model, "bundled nuclei"
    torch.manual_seed(0)
    return build_model("unet", in_channels=1, num_classes=3, base=base).eval(), f"base {base}, random weights"


def _image(size: int) -> np.ndarray:
    from napari_deepseg.samples import synthetic_nuclei

    block, _ = synthetic_nuclei((1024, 1024), seed=0)
    reps = -(-size // 1024)
    return np.tile(block, (reps, reps))[:size, :size]


def _normalized(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99.8])
    return ((image.astype(np.float32) - lo) / (hi - lo)).astype(np.float32)


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def _prepared(model, precision: str):
    if precision == "bf16":
        import copy

        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return model


def _engine_model(model, precision: str):
    """The network exactly as segment() runs it: eval copy, batch norm folded, channels_last for bf16."""
    from napari_deepseg.inference.device import prepare_model

    return prepare_model(model, torch.device("cpu"), channels_last=precision == "bf16")


def _warm(model, precision: str) -> None:
    x = torch.zeros(1, 1, 256, 256)
    if precision == "bf16":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), _autocast(precision):
        model(x)


def worker(kind: str, size: int, precision: str, save: str | None, model_path: str | None, base: int) -> dict:
    """One measurement in this process; returns its figures."""
    from napari_deepseg.inference import segment
    from napari_deepseg.inference.tiling import TileGrid

    model, source = _model(model_path, base)
    image = (
        _image(size)
        if kind != "memory"
        else np.random.default_rng(0).integers(0, 4000, (size, size), np.uint16)
    )
    base_rss = _rss_mb()
    out: dict = {"kind": kind, "precision": precision, "size": size, "model": source}
    t0 = time.perf_counter()
    if kind in ("segment", "memory"):
        res = segment(
            image, model, device="cpu", precision=precision, tile=TILE, overlap=OVERLAP, batch_size=BATCH
        )
        classes = res.classes
        grid = TileGrid.plan(size, size, TILE, OVERLAP, model)
        out["run_pixels"] = grid.count * TILE * TILE
    elif kind == "untiled":
        m = _engine_model(model, precision)
        _warm(m, precision)
        x = torch.from_numpy(_normalized(image))[None, None]
        if precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        with torch.inference_mode(), _autocast(precision):
            classes = m(x)[0].float().argmax(0).to(torch.uint8).numpy()
        out["run_pixels"] = size * size
    elif kind in ("monai", "monai_folded"):
        from monai.inferers import sliding_window_inference

        m = _prepared(model, precision) if kind == "monai" else _engine_model(model, precision)
        _warm(m, precision)
        t0 = time.perf_counter()
        x = torch.from_numpy(_normalized(image))[None, None]
        with torch.inference_mode(), _autocast(precision):
            y = sliding_window_inference(
                x, (TILE, TILE), BATCH, m, overlap=OVERLAP / TILE, mode="gaussian", sigma_scale=0.125
            )
            classes = y[0].float().argmax(0).to(torch.uint8).numpy()
        grid = TileGrid.plan(size, size, TILE, OVERLAP, model)
        out["run_pixels"] = grid.count * TILE * TILE
    elif kind == "matmul":
        n = 4096
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            a @ b
        out["gflops"] = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
        return out
    seconds = time.perf_counter() - t0
    out.update(
        seconds=seconds, mpix_s=size * size / seconds / 1e6, peak_rss_mb=_peak_rss_mb(), base_rss_mb=base_rss
    )
    out["image_labels_mb"] = (image.nbytes + classes.nbytes) / 2**20
    if save:
        np.save(save, classes)
    return out


def _flops_per_pixel(model) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 1, 256, 256))
    return counter.get_total_flops() / 256**2


def _run(kind: str, size: int, precision: str, save: str | None = None, model=None, base=32) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--size", str(size), "--precision", precision]
    cmd += ["--memory-base", str(base)] + (["--model", model] if model else [])
    if save:
        cmd += ["--save", save]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--memory-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the segment and untiled rows")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--model", help="model file for every row (default: bundled nuclei or random)")
    parser.add_argument("--memory-base", type=int, default=32, help="U-Net base of the memory point")
    parser.add_argument("--memory-only", action="store_true", help="run only the memory point")
    parser.add_argument("--worker")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--save")
    args = parser.parse_args()
    if args.worker:
        print(
            json.dumps(
                worker(args.worker, args.size, args.precision, args.save, args.model, args.memory_base)
            )
        )
        return
    if args.memory_only:
        _run("memory", args.memory_size, "auto", base=args.memory_base)
        return
    started = time.time()
    load = os.getloadavg()[0]
    rows, agree, spread = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            runs: dict[str, list[dict]] = {"segment": [], "untiled": []}
            for repeat in range(max(1, args.repeats)):  # interleaved, so drift hits both alike
                for kind in runs:
                    size = args.size if kind == "segment" else args.size // 2
                    save = (
                        str(Path(tmp) / f"segment_{precision}.npy")
                        if kind == "segment" and not repeat
                        else None
                    )
                    runs[kind].append(_run(kind, size, precision, save, args.model))
            for kind, results in runs.items():
                results.sort(key=lambda r: r["seconds"])
                rows[kind, precision] = results[len(results) // 2]
                spread[kind, precision] = (results[-1]["mpix_s"], results[0]["mpix_s"])  # slowest, fastest
            for kind in ("monai", "monai_folded", "matmul"):
                rows[kind, precision] = _run(kind, args.size, precision, None, args.model)
        a, b = (np.load(Path(tmp) / f"segment_{p}.npy") for p in ("fp32", "bf16"))
        agree["bf16"] = float((a == b).mean())
    memory = _run("memory", args.memory_size, "auto", base=args.memory_base)
    model, source = _model(args.model)
    flops = _flops_per_pixel(model)
    table = _table(
        rows, agree, spread, memory, flops, source, load, os.getloadavg()[0], time.time() - started, args
    )
    print(table)
    if not args.no_write:
        replace_section(table, DOC)


def _table(rows, agree, spread, memory, flops, source, load0, load1, seconds, args) -> str:
    lines = [
        "## Inference engine",
        "",
        f"Machine: {machine()}; model: U-Net base 32 "
        f"({source}); image {args.size}x{args.size} uint16 synthetic nuclei; tile {TILE}, overlap {OVERLAP}, "
        f"tile batch {BATCH}. Load average {load0:.1f} at the start and {load1:.1f} at the end on 2 cores; "
        f"the ratios were measured in the same run. Benchmark took {seconds / 60:.1f} min. segment() runs "
        "an eval copy of the model with batch norms folded into the convolutions; the untiled pass uses that "
        "same network, so the overhead below is tiling alone; MONAI runs both the model as given and the "
        f"folded network. segment() and the untiled pass ran {args.repeats} times each, interleaved; "
        "their rows are the median run, with the range over the runs in the ratios below.",
        "",
        "| precision | method | MPix/s (image) | peak RSS (MB) | achieved GFLOP/s | matmul GFLOP/s "
        "| efficiency |",
        "|---|---|---|---|---|---|---|",
    ]
    for precision in ("fp32", "bf16"):
        mm = rows["matmul", precision]["gflops"]
        for kind, label in (
            ("segment", "segment()"),
            ("untiled", f"untiled forward, {args.size // 2}x{args.size // 2} crop"),
            ("monai", "MONAI sliding_window_inference (Gaussian), the model as given"),
            ("monai_folded", "MONAI, the same folded network as segment()"),
        ):
            r = rows[kind, precision]
            gf = flops * r["run_pixels"] / r["seconds"] / 1e9
            lines.append(
                f"| {precision} | {label} | {r['mpix_s']:.3f} | {r['peak_rss_mb']:.0f} | {gf:.1f} | {mm:.0f} "
                f"| {gf / mm:.0%} |"
            )
    lines += ["", "Ratios (same run):", ""]
    for precision in ("fp32", "bf16"):
        seg, unt, mon, monf = (rows[k, precision] for k in ("segment", "untiled", "monai", "monai_folded"))
        per_run_pixel = seg["run_pixels"] / seg["seconds"] / (unt["run_pixels"] / unt["seconds"])
        lines.append(
            f"- {precision}: segment / MONAI throughput {seg['mpix_s'] / mon['mpix_s']:.2f}x at "
            f"{seg['peak_rss_mb'] / mon['peak_rss_mb']:.2f}x its peak RSS "
            f"({seg['mpix_s'] / monf['mpix_s']:.2f}x at {seg['peak_rss_mb'] / monf['peak_rss_mb']:.2f}x "
            "against MONAI on the folded network); "
            "tiling overhead "
            f"{1 - seg['mpix_s'] / unt['mpix_s']:.0%} per image pixel, of which the overlap recomputation is "
            f"{1 - args.size**2 / seg['run_pixels']:.0%}; per pixel actually run, "
            f"segment runs at {per_run_pixel:.2f}x the untiled speed (MPix/s over the {args.repeats} runs: "
            f"segment {spread['segment', precision][0]:.3f}-{spread['segment', precision][1]:.3f}, "
            f"untiled {spread['untiled', precision][0]:.3f}-{spread['untiled', precision][1]:.3f})."
        )
    fp32, bf16 = rows["segment", "fp32"], rows["segment", "bf16"]
    over = memory["peak_rss_mb"] - memory["base_rss_mb"]
    lines += [
        f"- bf16 vs fp32: {bf16['mpix_s'] / fp32['mpix_s']:.2f}x faster; class maps agree on "
        f"{agree['bf16']:.4%} of pixels with {source} (random weights make this degenerate; see "
        "'Default model speed' for the agreement of the trained default model). precision='auto' runs bf16 "
        "on a CPU only for a model whose file records >= 99.9% agreement (the bundled nuclei model does).",
        f"- Memory point ({memory['model']}): {args.memory_size}x{args.memory_size} uint16 image, "
        f"precision auto: peak RSS "
        f"{memory['peak_rss_mb']:.0f} MB, {over:.0f} MB above the process before the run (which already held "
        f"the image); image + class map = {memory['image_labels_mb']:.0f} MB; "
        f"{memory['mpix_s']:.3f} MPix/s.",
        "",
        "Reproduce: `.venv/bin/python benchmarks/inference.py` (about 17 minutes on 2 idle cores).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
