"""Batch throughput and peak memory: in-process versus 1 and 2 local dask workers.

Generates, in a temporary work folder (deleted at the end):
* a folder of ``--n-images`` synthetic nuclei images (``--size`` square, uint16 TIFF);
* one uint16 TIFF stack of at least ``--stack-gb`` GB on disk (planes ``--plane`` square).

For each configuration it runs :func:`napari_deepseg.batch.predict_iter` on the folder (to the
end) and on the stack (read lazily, one plane per chunk into OME-Zarr, stopped after
``--stack-chunks`` chunks: at CPU speed the whole stack would take hours, and memory use is
the point), with a U-Net of base width 8 (random weights: speed does not depend on them).
Peak resident memory is sampled every 0.1 s in the process that runs the model (the
benchmark process in-process, else each worker process).

    .venv/bin/python benchmarks/batch.py            # about 10 minutes on 2 busy cores
    .venv/bin/python benchmarks/batch.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import tifffile

from napari_deepseg.batch import predict_iter
from napari_deepseg.batch.dask import open_client
from napari_deepseg.models import ModelMeta, build_model, save_model
from napari_deepseg.progress import Cancelled, drain
from napari_deepseg.samples import synthetic_nuclei

try:
    from _common import machine, write_section
except ImportError:  # run as a module
    from benchmarks._common import machine, write_section


class PeakRSS:
    """Samples the resident memory of some processes in a thread; ``peaks`` in MiB per pid."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.peaks = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.procs:
                with contextlib.suppress(psutil.Error):
                    self.peaks[p.pid] = max(self.peaks[p.pid], p.memory_info().rss / 2**20)
            self._stop.wait(0.1)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_data(work: Path, n_images: int, size: int, stack_gb: float, plane: int) -> tuple[Path, Path]:
    folder = work / "images"
    folder.mkdir()
    distinct = [synthetic_nuclei((size, size), seed=i)[0] for i in range(8)]
    for i in range(n_images):
        tifffile.imwrite(folder / f"img{i:04d}.tif", distinct[i % 8])
    n_planes = int(np.ceil(stack_gb * 1e9 / (plane * plane * 2)))
    tile, _ = synthetic_nuclei((plane, plane), seed=99)
    stack = work / "stack.tif"
    with tifffile.TiffWriter(stack, bigtiff=True) as tif:
        for z in range(n_planes):
            tif.write(np.roll(tile, z * 7, axis=1), photometric="minisblack", contiguous=True)
    return folder, stack


def run_config(name, workers, folder, stack, model, work, stack_chunks, plane) -> dict:
    out = work / f"out_{name}"
    opts = dict(model=model, device="cpu", zarr_threshold="16M", chunk_bytes=plane * plane * 2)
    with open_client(workers=workers) if workers else contextlib.nullcontext() as client:
        pids = list(client.run(_pid).values()) if client else [psutil.Process().pid]
        row = {"config": name, "workers": len(pids)}
        with PeakRSS(pids) as mem:
            t0 = time.perf_counter()
            summary = drain(predict_iter([folder], out, client=client, **opts))
            row["folder_s"] = time.perf_counter() - t0
            assert summary.exit_code == 0, summary.text()
            chunks: list[int] = []
            t0 = time.perf_counter()
            gen = predict_iter([stack], out, client=client, **opts)
            with contextlib.suppress(Cancelled):
                drain(
                    gen,
                    lambda e: e.stage == "chunks" and chunks.append(e.done),
                    lambda: len(chunks) >= stack_chunks,
                )
            row["stack_s"] = time.perf_counter() - t0
        row["peak_mib"] = max(mem.peaks.values())
        row["n_images"] = len(summary.done)
        row["stack_chunks"] = len(chunks)
    shutil.rmtree(out, ignore_errors=True)
    return row


def _pid() -> int:
    import os

    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--stack-gb", type=float, default=2.1)
    parser.add_argument("--plane", type=int, default=1024)
    parser.add_argument("--stack-chunks", type=int, default=4)
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temporary data folder")
    parser.add_argument("--quick", action="store_true", help="20 images, 0.05 GB stack, no docs update")
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.stack_gb, args.stack_chunks = 20, 0.05, 2
    work = Path(tempfile.mkdtemp(prefix="deepseg_batch_bench_", dir=args.work_dir))
    try:
        t0 = time.perf_counter()
        folder, stack = make_data(work, args.n_images, args.size, args.stack_gb, args.plane)
        stack_gb = stack.stat().st_size / 1e9
        print(f"data: {args.n_images} images, stack {stack_gb:.2f} GB in {time.perf_counter() - t0:.0f} s")
        net = build_model("unet", in_channels=1, num_classes=3, base=8)
        net.deepseg_meta = ModelMeta(name="unet-base8", task="instance-boundary").complete(3)
        model = save_model(work / "unet8.pt", net.eval())
        rows = []
        for name, workers in (("in-process", 0), ("1 worker", 1), ("2 workers", 2)):
            rows.append(run_config(name, workers, folder, stack, model, work, args.stack_chunks, args.plane))
            print(rows[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = _table(rows, args, stack_gb)
    print(table)
    if not args.quick:
        write_section("Batch segmentation (benchmarks/batch.py)", table)


def _table(rows, args, stack_gb) -> str:
    mpix_folder = args.n_images * args.size**2 / 1e6
    lines = [
        f"Machine: {machine()}; shared with other jobs (load average about "
        f"{psutil.getloadavg()[0]:.0f} during the run), so absolute speeds are low and noisy.",
        f"Model: U-Net base 8, 3 classes (instances by watershed), CPU. Folder: {args.n_images} images "
        f"{args.size}x{args.size} uint16 TIFF. Stack: {stack_gb:.2f} GB uint16 TIFF of "
        f"{args.plane}x{args.plane} planes, read lazily, one plane per chunk into OME-Zarr, "
        f"stopped after {args.stack_chunks} chunks (the whole stack would take hours on this CPU).",
        "Command: `.venv/bin/python benchmarks/batch.py`",
        "",
        "| configuration | folder: images/s | folder: MPix/s | stack: MPix/s "
        "| peak RSS per model process (MiB) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        stack_mpix = r["stack_chunks"] * args.plane**2 / 1e6
        lines.append(
            f"| {r['config']} | {r['n_images'] / r['folder_s']:.1f} | {mpix_folder / r['folder_s']:.2f} "
            f"| {stack_mpix / r['stack_s']:.2f} | {r['peak_mib']:.0f} |"
        )
    peak = max(r["peak_mib"] for r in rows)
    lines += [
        "",
        f"Peak memory per process is at most {peak:.0f} MiB, most of it the torch runtime, although the "
        f"stack is {stack_gb * 1e3 / 1.048576:.0f} MiB on disk: it is read one chunk at a time. Worker "
        "figures include starting the cluster and each worker loading the model once; a 2-core machine "
        "shared with other jobs cannot show scaling, so the 1- versus 2-worker columns mostly show noise.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
