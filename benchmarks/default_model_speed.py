"""Speed of the bundled default model (`nuclei`) on this machine, fp32 versus bf16 autocast.

Segments a 2048x2048 synthetic nuclei image (classes and instances, watershed included) with
``segment()`` at each precision, and measures the bf16/fp32 class-map agreement on the DSB2018
val images (the rule: ``precision="auto"`` runs a model in bf16 on a CPU only when its file
records an agreement of at least 99.9%). ``--record FILE`` writes the measured agreement into a
model file's metadata (``bf16_agreement``, with its source in the provenance).

    python benchmarks/default_model_speed.py --data ../shared/data/dsb2018 --write-docs \
        --record src/napari_deepseg/bundled/nuclei.pt
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_deepseg._files import atomic_path
from napari_deepseg.inference import cpu_has_native_bf16, segment
from napari_deepseg.inference.runner import model_in_channels
from napari_deepseg.models import load_model
from napari_deepseg.models.modelfile import read_model_file
from napari_deepseg.samples import synthetic_nuclei

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.default_model_speed
    from _common import dsb_records, read_dsb, selection_split
except ImportError:
    from benchmarks._common import dsb_records, read_dsb, selection_split


def mpix_per_s(model, image: np.ndarray, precision: str, device: str, repeats: int = 2) -> float:
    """Best of ``repeats`` timed runs after one warm-up."""
    segment(image[:512, :512], model, device=device, precision=precision, outputs=("instances",))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        segment(image, model, device=device, precision=precision, outputs=("classes", "instances"))
        best = min(best, time.perf_counter() - t0)
    return image.size / 1e6 / best


def layout_speeds(model, repeats: int = 5) -> tuple[float, float]:
    """(contiguous, channels_last) fp32 MPix/s of the network alone on 2 x 512 x 512 batches,
    alternating the two layouts so both see the same machine load."""
    x = torch.randn(2, model_in_channels(model), 512, 512)
    nchw = copy.deepcopy(model).eval()
    nhwc = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    times = {"nchw": [], "nhwc": []}
    with torch.inference_mode():
        nchw(x), nhwc(xc)  # warm-up
        for _ in range(repeats):
            for name, net, inp in (("nchw", nchw, x), ("nhwc", nhwc, xc)):
                t0 = time.perf_counter()
                net(inp)
                times[name].append(time.perf_counter() - t0)
    mpix = x.shape[0] * 512 * 512 / 1e6
    return mpix / min(times["nchw"]), mpix / min(times["nhwc"])


def agreement(model, root: Path, device: str, limit: int | None = None) -> tuple[float, int] | None:
    """(pixel fraction where bf16 and fp32 class maps agree, image count) over the DSB2018
    selection images (carved from train; the val split stays unread until the final score)."""
    if not (root / "index.json").exists():
        return None
    same = total = images = 0
    records = selection_split(dsb_records(root, "train"))[1]
    if limit is not None:  # every k-th record: all kinds stay represented
        records = records[:: max(1, len(records) // limit)][:limit]
    for rec in records:
        image, _ = read_dsb(root, rec)
        axes = "YXC" if image.ndim == 3 else "YX"
        a = segment(image, model, axes=axes, device=device, precision="fp32").classes
        b = segment(image, model, axes=axes, device=device, precision="bf16").classes
        same, total, images = same + int((a == b).sum()), total + a.size, images + 1
    return same / total, images


def record_agreement(path: Path, agreement: float, images: int) -> None:
    """Write ``agreement`` into the model file's metadata; weights and their dtype are untouched."""
    payload = read_model_file(Path(path))
    meta = json.loads(payload["meta"])
    meta["bf16_agreement"] = round(float(agreement), 5)
    meta.setdefault("provenance", {})["bf16_agreement"] = (
        f"bf16/fp32 class-map pixel agreement over the {images} DSB2018 selection images "
        "(carved from train), measured by benchmarks/default_model_speed.py"
    )
    payload["meta"] = json.dumps(meta)
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--record", type=Path, help="write the measured agreement into this model file")
    ap.add_argument(
        "--agreement", action="store_true", help="measure the bf16 agreement even without native bf16 (slow)"
    )
    ap.add_argument("--agreement-images", type=int, default=None, help="measure it on this many images")
    args = ap.parse_args(argv)
    model = load_model("nuclei")
    image, _ = synthetic_nuclei((args.size, args.size), seed=5)
    sizing = segment(image[:1024, :1024], model, device=args.device).meta.get("object_diameter")
    precisions = ["fp32"] + (["bf16"] if args.device != "cpu" or cpu_has_native_bf16() else [])
    speed = {p: mpix_per_s(model, image, p, args.device) for p in precisions}
    measure = "bf16" in speed or args.agreement
    agree = agreement(model, args.data, args.device, args.agreement_images) if measure else None
    rows = ["| precision | MPix/s | speed-up |", "|---|---|---|"]
    rows += [f"| {p} | {v:.2f} | {v / speed['fp32']:.2f}x |" for p, v in speed.items()]
    nchw, nhwc = layout_speeds(model)
    text = "\n".join(rows) + (
        f"\n\nNetwork alone, fp32, batches of 2 x 512 x 512 (the layout the policy picks for CPU fp32 "
        f"inference): channels_last {nhwc:.2f} MPix/s, contiguous {nchw:.2f} MPix/s ({nhwc / nchw:.2f}x)."
    )
    if agree is not None:
        fraction, images = agree
        text += (
            f"\n\nbf16/fp32 class-map agreement over the {images} DSB2018 selection images: "
            f"{100 * fraction:.3f}%."
        )
    print(text)
    if args.record is not None and agree is not None:
        record_agreement(args.record, *agree)
    if args.write_docs:
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import machine, write_section

        arch = model.deepseg_arch
        options = ", ".join(f"{k} {v}" for k, v in arch.options.items())
        size = "" if sizing is None else (
            f" The object diameter is on auto (the default): estimated {sizing['object_diameter']:.1f} "
            f"px against the model's {sizing['model_diameter']:g} px, so the image runs at scale "
            f"{sizing['scale']:.2f}; the MPix/s count the image's own pixels."
        )  # fmt: skip
        write_section(
            "Default model speed",
            f"Bundled `nuclei` model ({arch.name}, {options}), `segment()` on a {args.size}x{args.size} "
            f"synthetic nuclei image, classes and instances (watershed included), device "
            f"{args.device}, {torch.get_num_threads()} threads, on {machine()}.{size}\n\n{text}\n\n"
            "Reproduce: `python benchmarks/default_model_speed.py "
            "--data ../shared/data/dsb2018 --write-docs`",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
