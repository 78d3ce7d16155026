"""Live training curves for the Fine-tune widget, drawn with QPainter (no plotting library).

:class:`CurveData` collects the numbers from :func:`~napari_deepseg.training.finetune_iter`'s
events (plain Python, no Qt). :class:`CurvesWidget` draws them in two panels that repaint as
events arrive:

- left: training loss per optimizer step (line) and validation loss per epoch (dots, placed at
  the epoch's last step; epoch 0 = the starting model);
- right: validation scores per epoch: mean IoU over the foreground classes, foreground-vs-
  background IoU and, for instance models, AP@0.5 (the figure the verdict uses).

Each panel's axes are labelled with what they count and in which unit (:class:`Panel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from ..progress import Progress

MIN_WIDTH = 300
PANEL_HEIGHT = 150


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


@dataclass(frozen=True)
class Panel:
    """One panel: title, curves, fixed y range (or None: fitted), and the axes' labels with units."""

    title: str
    series: list[Series]
    y_range: tuple[float, float] | None
    x_label: str
    y_label: str


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
        self.fg_iou = Series("fg IoU", "#d62728", dots=True)
        self.ap50 = Series("AP@0.5", "#9467bd", dots=True)

    @property
    def panels(self) -> list[Panel]:
        """The panels, top to bottom."""
        return [
            Panel("loss", [self.loss, self.val_loss], None, "optimizer step", "loss (CE + Dice)"),
            Panel(
                "scores", [self.mean_iou, self.fg_iou, self.ap50], (0.0, 1.0),
                "epoch (0 = starting model)", "IoU, AP@0.5",
            ),
        ]  # fmt: skip

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
        changed |= self.ap50.append(epoch, info.get("val_ap50"))
        return changed

    @property
    def empty(self) -> bool:
        """No point in any curve."""
        return not any(s.x for panel in self.panels for s in panel.series)


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
        for i, panel in enumerate(self.data.panels):
            _draw_panel(painter, QRectF(0, i * height, self.width(), height), panel)
        painter.end()


def _bounds(values: list[float], *, floor_zero: bool = False) -> tuple[float, float]:
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if floor_zero:
        lo = min(lo, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _draw_panel(painter: QPainter, rect: QRectF, panel: Panel) -> None:
    """Title and legend in the top row, then the axes box, its labels (with units), the curves."""
    fg = QColor("#bbbbbb")
    box = rect.adjusted(56, 18, -6, -30)
    painter.setPen(QPen(fg, 1))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRect(box)
    painter.drawText(QRectF(box.left(), rect.top(), box.width(), 16), Qt.AlignmentFlag.AlignLeft, panel.title)
    metrics = painter.fontMetrics()
    legend_x = box.left() + metrics.horizontalAdvance(panel.title) + 12
    series = panel.series
    xs = [x for s in series for x in s.x]
    ys = [y for s in series for y in s.y]
    x0, x1 = _bounds(xs, floor_zero=True)
    y0, y1 = panel.y_range or _bounds(ys, floor_zero=True)
    _axis_labels(painter, rect, box, panel, (x0, x1, y0, y1))

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


def _axis_labels(painter: QPainter, rect: QRectF, box: QRectF, panel: Panel, bounds: tuple) -> None:
    """The axes' end values, the x label under the box and the y label up its left side."""
    x0, x1, y0, y1 = bounds
    left = QRectF(rect.left() + 14, box.top() - 6, 40, 14)
    painter.drawText(left, Qt.AlignmentFlag.AlignRight, f"{y1:.3g}")
    painter.drawText(left.translated(0, box.height()), Qt.AlignmentFlag.AlignRight, f"{y0:.3g}")
    under = QRectF(box.left(), box.bottom() + 1, box.width(), 14)
    painter.drawText(under, Qt.AlignmentFlag.AlignLeft, f"{x0:.0f}")
    painter.drawText(under, Qt.AlignmentFlag.AlignRight, f"{x1:.0f}")
    painter.drawText(under.translated(0, 13), Qt.AlignmentFlag.AlignHCenter, panel.x_label)
    painter.save()
    painter.translate(rect.left() + 12, box.center().y())
    painter.rotate(-90)
    along = QRectF(-box.height() / 2, -12, box.height(), 14)
    painter.drawText(along, Qt.AlignmentFlag.AlignHCenter, panel.y_label)
    painter.restore()
