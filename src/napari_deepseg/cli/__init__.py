"""``deepseg`` command line: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func(args) -> int``. Every failure is one line on stderr (``deepseg: error: ...``) naming the
user's path or option, the problem and the fix (see :mod:`._errors`); usage errors exit 2, other
failures 1, an interrupt 130. ``--debug`` shows the traceback instead. Warnings are one line too.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence

from .. import __version__
from ..progress import Cancelled
from ._errors import cli_message, warning_printer

# subcommand modules, in the order shown by --help
COMMANDS = ["models", "evaluate", "predict", "demo", "train", "export"]
#: libraries whose log lines are hidden unless --debug
LIBRARY_LOGGERS = ("tifffile", "imageio", "bioimageio", "bioimageio.spec", "PIL", "zarr", "numcodecs")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if "invalid choice" in message and "command" in message.lower():
            bad = message.split("invalid choice: ")[1].split("'")[1]
            message = f"unknown command {bad!r}; run 'deepseg --help' for the list"
        else:
            message = f"{message}; see '{self.prog} --help'"
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
    parser.set_defaults(_subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepseg`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # usage errors (2), --help and --version (0)
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    command = args._subparsers.choices[args.command]
    with warnings.catch_warnings(), _quiet_library_logs(args.debug):
        warnings.showwarning = warning_printer(command, debug=args.debug)
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("deepseg: interrupted", file=sys.stderr)
            return 130
        except Cancelled:
            print("deepseg: cancelled", file=sys.stderr)
            return 130
        except Exception as err:  # one line; an unexpected type says to rerun with --debug and report it
            if args.debug:
                raise
            print(f"deepseg: error: {cli_message(err, command)}", file=sys.stderr)
            return 1


@contextlib.contextmanager
def _quiet_library_logs(debug: bool) -> Iterator[None]:
    """Libraries' own log lines (tifffile's notes on odd files) reach the user only with --debug;
    the command's one-line message says what matters."""
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG if debug else logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
