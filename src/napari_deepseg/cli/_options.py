"""argparse ``type=`` checkers: options are checked once, before any file is read or model loaded."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_at_least(low: int) -> Callable[[str], int]:
    """A whole number ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"give a whole number of at least {low}, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"give a whole number of at least {low}, not {text!r}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def float_in(
    low: float, high: float, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """A number in the interval [low, high] (ends excluded when ``*_open``)."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"give a number in {shown}, not {text!r}") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"give a number in {shown}, not {text!r}")
        return value

    parse.__name__ = f"number in {shown}"
    return parse


def size(text: str) -> str:
    """A byte size such as ``512M`` or ``2G`` (checked here, passed on as text)."""
    from ..inference.memory import parse_size

    try:
        if parse_size(text) <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"give a size such as 512M, 2G or a number of bytes, not {text!r}"
        ) from None
    return text


def check_device(value: str) -> str:
    """``--device`` checked once before any work (a one-line DeepsegError naming the option)."""
    from ..errors import DeepsegError
    from ..inference.device import resolve_device

    try:
        resolve_device(value)
    except DeepsegError as err:
        raise DeepsegError(f"--device {value}: {err}") from None
    return value
