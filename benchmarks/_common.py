"""Helpers shared by the benchmark and model scripts: machine description, docs table updates and
the one DSB2018 loader (``../shared/data/dsb2018``: ``index.json`` records, ``SPLIT/images`` and
``SPLIT/masks`` TIFFs)."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile
import torch

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """One line naming the CPU (and GPU), core count and torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def write_section(title: str, body: str, path: Path = DOCS) -> None:
    """Replace (or append) the ``## title`` section of docs/benchmarks.md with ``body``."""
    replace_section(f"## {title}\n\n{body.strip()}\n", path)


def replace_section(section: str, path: Path = DOCS) -> None:
    """Replace (or append) the section of ``path`` whose ``## title`` line starts ``section``."""
    title = section.split("\n", 1)[0].removeprefix("## ").strip()
    section = section.strip() + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


def dsb_records(root: Path, split: str, kind: str | None = None, min_nuclei: int = 0) -> list[dict]:
    """The DSB2018 index records of ``split`` (and ``kind``, at least ``min_nuclei``), in index order."""
    index = json.loads((Path(root) / "index.json").read_text())
    return [
        r
        for r in index
        if r["split"] == split and kind in (None, r["kind"]) and r.get("nuclei", 0) >= min_nuclei
    ]


def read_dsb(root: Path, record: dict) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W) or (H, W, C), instance masks (H, W)) of one DSB2018 record."""
    folder = Path(root) / record["split"]
    image = tifffile.imread(folder / "images" / f"{record['id']}.tif")
    return image, tifffile.imread(folder / "masks" / f"{record['id']}.tif")


def selection_split(
    records: list[dict], fraction: float = 0.12, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """(train, selection): ``fraction`` of each image kind (at least one image), drawn with
    ``seed``, carved out of ``records`` (the DSB2018 train split) to choose snapshots and
    post-processing on, so the val split is scored only once, at the end."""
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for kind in sorted({r["kind"] for r in records}):
        ids = sorted(r["id"] for r in records if r["kind"] == kind)
        n = max(1, round(len(ids) * fraction))
        chosen.update(rng.choice(ids, size=n, replace=False).tolist())
    return [r for r in records if r["id"] not in chosen], [r for r in records if r["id"] in chosen]


@contextmanager
def tile_batches(record: Callable[[np.ndarray], None]) -> Iterator[None]:
    """Call ``record`` with every (B, C, h, w) input batch the network is given inside the block
    (``TileRunner.run``: the estimate's crops, the tiles with their overlaps), before it runs."""
    from napari_deepseg.inference.runner import TileRunner

    run = TileRunner.run

    def spied(runner, batch):
        record(batch)
        return run(runner, batch)

    TileRunner.run = spied
    try:
        yield
    finally:
        TileRunner.run = run
