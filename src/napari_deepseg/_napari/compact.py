"""Keep dock widgets narrow: long status lines wrap and long choices elide inside the dock
instead of widening it."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QComboBox, QLabel, QSizePolicy, QStyle, QStyleOptionComboBox, QStylePainter


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
    """Let magicgui ComboBoxes shrink to ``chars`` characters instead of sizing the dock to their
    longest entry: a long entry is elided in the middle (its start and end stay readable, e.g.
    ``nuclei (nuclei in…bright field)``), its full text is the tooltip, and the open list still
    shows entries whole."""
    for combo in combos:
        native: QComboBox = combo.native
        native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        native.setMinimumContentsLength(chars)
        elide = _MiddleElide(native)
        native.installEventFilter(elide)
        native.currentTextChanged.connect(elide.set_tooltip)
        elide.set_tooltip(native.currentText())


def shown_text(combo: QComboBox) -> str:
    """The text a combo box shows: its current entry, elided in the middle to the field's width."""
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    field = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    return combo.fontMetrics().elidedText(option.currentText, Qt.TextElideMode.ElideMiddle, field.width())


class _MiddleElide(QObject):
    """Paints a combo box's closed field with :func:`shown_text`; keeps its tooltip the full text."""

    def __init__(self, combo: QComboBox) -> None:
        super().__init__(combo)
        self.combo = combo
        self.help = combo.toolTip()  # the field's own tooltip follows the full entry

    def set_tooltip(self, text: str) -> None:
        self.combo.setToolTip(f"{text}\n\n{self.help}" if self.help and text else text or self.help)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if obj is not self.combo or event.type() != QEvent.Type.Paint or self.combo.isEditable():
            return False
        painter = QStylePainter(self.combo)
        option = QStyleOptionComboBox()
        self.combo.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        option.currentText = shown_text(self.combo)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)
        painter.end()
        return True
