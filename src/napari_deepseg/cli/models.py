"""``deepseg models``: the architecture table, then the model catalogue (``models.model_catalog``):
ready pretrained models, bundled model files and the user models folder."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list architectures, ready pretrained models, bundled models and your models",
        description=(
            "List the registered architectures with parameters and GMAC (multiply-accumulates) for "
            "one 512x512 image with 3 input channels and 21 classes, the pretrained weights that "
            "exist, the ready pretrained models, the bundled model files and the model files in your "
            "models folder ($DEEPSEG_MODELS_DIR or the platform's user data folder)."
        ),
    )
    p.add_argument("--all", action="store_true", help="also list other backbones/encoders as rows")
    p.set_defaults(func=run)


def format_table(rows: list[dict]) -> list[str]:
    """Text lines of the model table (name, params, GMAC, pretrained, description)."""

    def label(r: dict) -> str:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items())
        return f"{r['name']}[{opts}]" if opts else r["name"]

    width = max(len(label(r)) for r in rows)
    lines = [f"{'architecture':<{width}}  {'params':>7}  {'GMAC@512':>8}  {'pretrained':<13}  description"]
    for r in rows:
        weights = ",".join(r["pretrained"]) or "-"
        figures = f"{r['params'] / 1e6:>6.1f}M  {r['gmac']:>8.1f}"
        lines.append(f"{label(r):<{width}}  {figures}  {weights:<13}  {r['description']}")
    return lines


def run(args: argparse.Namespace) -> int:
    from ..models import list_models, model_catalog, user_models_dir
    from ..models.catalog import user_model_problems

    print("\n".join(format_table(list_models(variants=args.all))))
    entries = model_catalog()
    ready = [e for e in entries if e.kind == "pretrained"]
    print("\nready pretrained models with their weights here (load_model(NAME) / --model NAME):")
    print("\n".join(f"  {e.name:<34}  {e.description}" for e in ready) or "  none")
    absent = [
        e for e in model_catalog(include_absent=True) if e.kind == "pretrained" and not e.weights_cached
    ]
    if absent:
        print("more ready models, weights fetched into the torch hub cache on first use (--model NAME):")
        for e in absent:
            print(f"  {e.name:<34}  {e.description}")
    bundled = [e.name for e in entries if e.kind == "bundled"]
    print("\nbundled model files: " + (", ".join(bundled) if bundled else "none"))
    user = [e for e in entries if e.kind == "user"]
    print(f"\nyour models ({user_models_dir()}): " + (", ".join(e.name for e in user) if user else "none"))
    for problem in user_model_problems():
        print(f"deepseg: warning: {problem}", file=sys.stderr)
    return 0
