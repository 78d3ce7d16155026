"""Keep dock widgets narrow: long status lines wrap inside the dock instead of widening it."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QLabel, QSizePolicy


def fit_label(label: QLabel) -> None:
    """Let a status line wrap within the dock's width (never widening the dock); full text as tooltip."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(1)


def fit_labels(*labels: Any) -> None:
    """Apply :func:`fit_label` to magicgui Labels (their native QLabel)."""
    for label in labels:
        fit_label(label.native)
