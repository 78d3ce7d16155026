"""``deepseg models``: the architecture table and the bundled model files."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list architectures and bundled models",
        description="List the registered architectures and the bundled model files.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models import bundled_models, list_models

    rows = list_models()
    width = max(len(r["name"]) for r in rows)
    print(f"{'architecture':<{width}}  description")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
    bundled = bundled_models()
    print("\nbundled model files: " + (", ".join(bundled) if bundled else "none"))
    return 0
