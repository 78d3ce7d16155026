"""Pick the best training snapshot on the DSB2018 val split and ship it as the bundled model.

Scores every ``RUN/snapshot_*.pt`` with ``benchmarks/accuracy_dsb.py``'s scorer, selects the
one with the best pooled AP@0.5 over all val images, records the val metrics in its
provenance and writes it, with float16 weights, to ``src/napari_deepseg/bundled/nuclei.pt``.

    python scripts/select_default_model.py --run runs/nuclei --data ../shared/data/dsb2018
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy_dsb import score_model, table  # noqa: E402
from napari_deepseg.models import load_model, save_model  # noqa: E402

BUNDLED = ROOT / "src" / "napari_deepseg" / "bundled" / "nuclei.pt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "nuclei")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    ap.add_argument("--last", type=int, default=4, help="score only the last N snapshots")
    ap.add_argument("--out", type=Path, default=BUNDLED)
    args = ap.parse_args(argv)
    if not (args.data / "index.json").exists():
        print(f"dataset not found at {args.data}; pass --data (skipping)")
        return 0
    snapshots = sorted(args.run.glob("snapshot_*.pt"))[-args.last :]
    if not snapshots:
        print(f"no snapshots in {args.run}", file=sys.stderr)
        return 1
    best = None
    for path in snapshots:
        results = score_model(load_model(path), args.data, "val")
        ap50 = results["kinds"]["all"]["ap"]["0.5"]
        print(
            f"{path.name}: val AP@0.5 all {ap50:.3f}, "
            f"fluorescence {results['kinds'].get('fluorescence', {}).get('ap', {}).get('0.5', 0):.3f}"
        )
        if best is None or ap50 > best[1]["kinds"]["all"]["ap"]["0.5"]:
            best = (path, results)
    path, results = best
    print(f"selected {path.name}\n{table(results)}")
    model = load_model(path)
    meta = model.deepseg_meta
    meta.provenance.update(
        {
            "selected_snapshot": path.name,
            "selection": "best pooled AP@0.5 over the DSB2018 val split (all kinds)",
            "val_metrics": {
                k: {"ap": v["ap"], "mean_ap": v["mean_ap"], "fg_iou": v["fg_iou"], "images": v["images"]}
                for k, v in results["kinds"].items()
            },
        }
    )
    save_model(args.out, model, meta, half=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    (args.run / "selection.json").write_text(json.dumps({"selected": path.name, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
