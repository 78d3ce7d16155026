"""The ``deepseg`` flags of the segmentation options, made from ``inference.options.SPECS`` (help,
unit, true default) and read by the same checks as ``SegmentOptions``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..errors import DeepsegError
from ..inference.options import PRECISIONS, SPECS, SegmentOptions, make_options


def add_arguments(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add the flags of the options ``names`` to ``parser`` (dest = the option's name), with
    their help, unit and true default from :data:`SPECS`; each value is read and checked by
    the same check as :class:`SegmentOptions` (argparse then names the flag)."""
    for name in names:
        spec = SPECS[name]
        unit = f" ({spec.unit})" if spec.unit and spec.unit != "bytes" else ""
        text = f"{spec.help}{unit}; default: {spec.default_text}"
        if name == "tta":
            parser.add_argument(spec.flag, dest=name, action="store_true", help=text)
            continue
        metavar = {"object_diameter": "auto|off|PIXELS", "max_memory": "SIZE", "channels": "C[,C...]"}
        parser.add_argument(
            spec.flag, dest=name, default=None, type=_flag_reader(name), metavar=metavar.get(name),
            choices=PRECISIONS if name == "precision" else None, help=text,
        )  # fmt: skip


def from_arguments(args: argparse.Namespace, names: Sequence[str], **changes: Any) -> SegmentOptions:
    """The :class:`SegmentOptions` of the parsed flags ``names`` (unset flags keep the defaults)."""
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return make_options(**{**values, **changes})


def _flag_reader(name: str):
    """argparse ``type=`` for option ``name``: text -> value, checked as SegmentOptions checks it."""

    def read(text: str) -> Any:
        try:
            value = _from_text(name, text)
            return getattr(make_options(**{name: value}), name)
        except DeepsegError as err:
            message = str(err).replace(f"{name}=", f"{SPECS[name].flag} ")
            shown = message if repr(text) in message else f"{text!r}: {message}"
            raise argparse.ArgumentTypeError(shown) from None

    read.__name__ = SPECS[name].range
    return read


def _from_text(name: str, text: str) -> Any:
    """The value a flag's text stands for (numbers for number options; sizes stay text)."""
    if name in ("precision", "device", "max_memory", "object_diameter"):
        return text
    if name == "channels":
        try:
            return tuple(int(c) for c in text.split(",") if c.strip())
        except ValueError:
            raise DeepsegError(
                f"give comma-separated channel numbers, e.g. 0 or 1,2,0, not {text!r}"
            ) from None
    try:
        return float(text) if name == "stitch_3d" else int(text)
    except ValueError:
        raise DeepsegError(
            f"give a {'number' if name == 'stitch_3d' else 'whole number'}, not {text!r}"
        ) from None
