"""``deepseg`` command line: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func(args) -> int``. User errors print one line (``deepseg: error: ...``) and exit 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..progress import Cancelled

# subcommand modules, in the order shown by --help
COMMANDS = ["models", "evaluate", "predict", "demo", "train"]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if "invalid choice" in message and "command" in message.lower():
            bad = message.split("invalid choice: ")[1].split("'")[1]
            message = f"unknown command {bad!r}; run 'deepseg --help' for the list"
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``deepseg`` parser with every subcommand registered."""
    parser = _Parser(
        prog="deepseg",
        description="Deep-learning segmentation for microscopy: predict, train, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"napari-deepseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepseg`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("deepseg: interrupted", file=sys.stderr)
        return 130
    except Cancelled:
        print("deepseg: cancelled", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        if args.debug:
            raise
        text = str(err).strip().splitlines()
        print(f"deepseg: error: {text[0] if text else type(err).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
