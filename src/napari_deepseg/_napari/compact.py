"""Keep dock widgets narrow: long status lines wrap and long choices elide inside the dock
instead of widening it."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QLabel, QSizePolicy


def fit_label(label: QLabel) -> None:
    """Let a status line wrap within the dock's width (never widening the dock); full text as tooltip."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(1)


def fit_labels(*labels: Any) -> None:
    """Apply :func:`fit_label` to magicgui Labels (their native QLabel)."""
    for label in labels:
        fit_label(label.native)


def fit_combos(*combos: Any, chars: int = 16) -> None:
    """Let magicgui ComboBoxes shrink to ``chars`` characters (long entries elide; the open list
    still shows them whole) instead of sizing the dock to their longest entry."""
    for combo in combos:
        native: QComboBox = combo.native
        native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        native.setMinimumContentsLength(chars)
