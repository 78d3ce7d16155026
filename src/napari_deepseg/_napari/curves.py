"""Live training curves for the Fine-tune widget, drawn with QPainter (no plotting library).

:class:`CurveData` collects the numbers from :func:`~napari_deepseg.training.finetune_iter`'s
events (plain Python, no Qt). :class:`CurvesWidget` draws them in two panels that repaint as
events arrive:

- left: training loss per optimizer step (line) and validation loss per epoch (dots, placed at
  the epoch's last step; epoch 0 = the starting model);
- right: validation IoU per epoch: mean over the foreground classes and foreground-vs-background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from ..progress import Progress

MIN_WIDTH = 300
PANEL_HEIGHT = 130


@dataclass
class Series:
    """One curve: points ``(x, y)`` drawn as a line, or as dots when ``dots``."""

    name: str
    color: str
    dots: bool = False
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def append(self, x: float, y: float | None) -> bool:
        """Add a point unless ``y`` is missing or not finite; True when added."""
        if y is None or not math.isfinite(float(y)):
            return False
        self.x.append(float(x))
        self.y.append(float(y))
        return True


class CurveData:
    """Numbers for the two panels, fed one :class:`Progress` event at a time."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget all points (a new run)."""
        self.steps_per_epoch: int | None = None
        self.loss = Series("train loss", "#1f77b4")
        self.val_loss = Series("val loss", "#ff7f0e", dots=True)
        self.mean_iou = Series("mean IoU", "#2ca02c", dots=True)
        self.fg_iou = Series("foreground IoU", "#d62728", dots=True)

    @property
    def panels(self) -> list[tuple[str, list[Series], tuple[float, float] | None]]:
        """``(title, series, fixed y range or None)`` per panel, left to right."""
        return [
            ("loss / step", [self.loss, self.val_loss], None),
            ("val IoU / epoch", [self.mean_iou, self.fg_iou], (0.0, 1.0)),
        ]

    def add(self, event: Progress) -> bool:
        """Take the numbers of a ``step`` or ``epoch`` event; True when a curve changed."""
        info = event.info
        if event.stage == "step":
            self.steps_per_epoch = info.get("steps_per_epoch") or self.steps_per_epoch
            return self.loss.append(event.done, info.get("loss"))
        if event.stage != "epoch":
            return False
        epoch = int(info.get("epoch", event.done))
        changed = self.val_loss.append(epoch * (self.steps_per_epoch or 0), info.get("val_loss"))
        changed |= self.mean_iou.append(epoch, info.get("mean_iou"))
        changed |= self.fg_iou.append(epoch, info.get("foreground_iou"))
        return changed

    @property
    def empty(self) -> bool:
        """No point in any curve."""
        return not any(s.x for _, series, _ in self.panels for s in series)


class CurvesWidget(QWidget):
    """Two-panel live plot of a :class:`CurveData` (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data = CurveData()
        self.setMinimumSize(MIN_WIDTH, 2 * PANEL_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def clear(self) -> None:
        """Start empty (a new run)."""
        self.data.clear()
        self.update()

    def add(self, event: Progress) -> None:
        """Take an event; repaint when a curve changed."""
        if self.data.add(event):
            self.update()

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        height = self.height() / 2
        for i, (title, series, y_range) in enumerate(self.data.panels):
            _draw_panel(painter, QRectF(0, i * height, self.width(), height), title, series, y_range)
        painter.end()


def _bounds(values: list[float], *, floor_zero: bool = False) -> tuple[float, float]:
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if floor_zero:
        lo = min(lo, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _draw_panel(
    painter: QPainter, rect: QRectF, title: str, series: list[Series], y_range: tuple[float, float] | None
) -> None:
    """Title and legend in the top row, then the axes box, min/max labels and the curves."""
    fg = QColor("#bbbbbb")
    box = rect.adjusted(42, 18, -6, -16)
    painter.setPen(QPen(fg, 1))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRect(box)
    painter.drawText(QRectF(box.left(), rect.top(), box.width(), 16), Qt.AlignmentFlag.AlignLeft, title)
    metrics = painter.fontMetrics()
    legend_x = box.left() + metrics.horizontalAdvance(title) + 12
    xs = [x for s in series for x in s.x]
    ys = [y for s in series for y in s.y]
    x0, x1 = _bounds(xs, floor_zero=True)
    y0, y1 = y_range or _bounds(ys, floor_zero=True)
    left_label = QRectF(rect.left(), box.top() - 6, 40, 14)
    painter.drawText(left_label, Qt.AlignmentFlag.AlignRight, f"{y1:.3g}")
    painter.drawText(left_label.translated(0, box.height()), Qt.AlignmentFlag.AlignRight, f"{y0:.3g}")
    painter.drawText(
        QRectF(box.left(), box.bottom() + 1, box.width(), 14), Qt.AlignmentFlag.AlignRight, f"{x1:.0f}"
    )

    def to_px(x: float, y: float) -> QPointF:
        return QPointF(
            box.left() + (x - x0) / (x1 - x0) * box.width(),
            box.bottom() - (y - y0) / (y1 - y0) * box.height(),
        )

    for s in series:
        color = QColor(s.color)
        painter.setPen(QPen(color, 1.5))
        points = [to_px(x, y) for x, y in zip(s.x, s.y)]
        if s.dots or len(points) == 1:
            painter.setBrush(color)
            for p in points:
                painter.drawEllipse(p, 2.5, 2.5)
        else:
            painter.drawPolyline(QPolygonF(points))
        painter.drawText(QPointF(legend_x, rect.top() + 12), s.name)  # legend: the title row, off the data
        legend_x += metrics.horizontalAdvance(s.name) + 10
