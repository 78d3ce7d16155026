"""Argument checks at the public API boundary: one-line ``TypeError``/``ValueError`` messages.

Public functions (``segment``, ``load_model``, ``build_model``, ``finetune``) check their
arguments here before any work, so a wrong type or value never surfaces as an internal
exception deep in numpy or torch, and is never silently changed (``batch_size=0`` is not
"the default", ``tile=100.5`` is not 100). Messages use ``name=value`` so that the CLI can show
them as its own options.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

from .errors import DeepsegError


class ArgumentTypeError(DeepsegError, TypeError):
    """A public argument of the wrong type (both a ``TypeError`` and a one-line DeepsegError)."""


def integer(value: Any, name: str, minimum: int | None = None, optional: bool = False) -> int | None:
    """``value`` as an int: whole numbers only (no bool, no 100.5, no "5"), at least ``minimum``."""
    if value is None and optional:
        return None
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise ArgumentTypeError(f"{name} must be a whole number, not {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise DeepsegError(f"{name}={value} is too small; use {name}={minimum} or more")
    return value


def number(
    value: Any, name: str, low: float | None = None, high: float | None = None, low_open: bool = False
) -> float:
    """``value`` as a finite float in [low, high] (``(low, high]`` when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number, not {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    if not math.isfinite(value) or too_low or (high is not None and value > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bounds = (
            f"a value in {'(' if low_open else '['}{lo}, {hi}]" if low is not None or high is not None else ""
        )
        if not math.isfinite(value):
            raise DeepsegError(f"{name}={value:g} is not a finite number; use {bounds or 'a finite value'}")
        raise DeepsegError(f"{name}={value:g} is out of range; use {bounds}")
    return value


def path_like(value: Any, name: str, what: str) -> str | os.PathLike:
    """``value`` when it is a ``str`` or ``os.PathLike``; else an ArgumentTypeError naming ``what``."""
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value.strip()):
        raise ArgumentTypeError(f"{name} must be {what} (a str or path), not {short_repr(value)}")
    return value


def short_repr(value: Any) -> str:
    """``repr(value)`` when short and on one line, else the type's name (a module's repr is pages)."""
    text = repr(value)
    return text if len(text) <= 80 and "\n" not in text else f"a {type(value).__name__} object"


def names(value: Any, name: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """A tuple of names from one name or a sequence of them, each one of ``allowed``."""
    items = (value,) if isinstance(value, str) else value
    try:
        items = tuple(items)
    except TypeError:
        raise ArgumentTypeError(f"{name} must be a name or a list of names, not {value!r}") from None
    for item in items:
        if not isinstance(item, str):
            raise ArgumentTypeError(f"{name} must hold names such as {allowed[0]!r}, not {item!r}")
        if item not in allowed:
            raise DeepsegError(f"{name} has unknown {item!r}; choose from {', '.join(allowed)}")
    return items


def looks_like_intensity(labels: Any) -> bool:
    """Whether an integer image is an intensity image rather than labels: THE LABEL-NESS RULE of
    training, fine-tuning and evaluation alike.

    In a label image each id is one or a few regions of many pixels; in an intensity image the
    regions of one value are many times more numerous than its values (> 3x, >= 16 values) and
    tiny on average (< 16 pixels).
    """
    import numpy as np
    from skimage.measure import label

    arr = np.asarray(labels)
    nonzero = int(np.count_nonzero(arr))
    if nonzero < 64 or arr.dtype.kind not in "biu":
        return False
    values = len(np.unique(arr[arr != 0]))
    if values < 16:
        return False
    regions = int(label(arr, background=0, connectivity=1).max())
    return regions > 3 * values and nonzero / max(regions, 1) < 16
