"""Validation of a training run on held-out data: pixel scores and, for instance models, AP@0.5.

The held-out regions (the last strip of each training image, or the validation pairs) are run
window by window; the loss and a pooled confusion matrix give the pixel scores. When a region
carries its instance labels (dense labels of an instance-boundary model) its windows are put
together into the region's probabilities, turned into instances exactly as ``segment()`` does
(the model file's post-processing) and matched to the labels: pooled AP@0.5 =
TP / (TP + FP + FN) at IoU 0.5, the figure users judge a model by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..evaluation import match_instances, pool_scores
from ..models.contract import map_count
from .data import Region, tile_windows
from .losses import segmentation_loss

VAL_KEYS = ("val_loss", "val_iou", "mean_iou", "foreground_iou", "val_ap50")
BETTER_MARGIN = 0.005
"""How much a fine-tuned epoch's held-out score (AP@0.5, else mean IoU) must exceed the
starting model's to count as better; a tie or a smaller gain keeps the starting model."""


def is_new_best(
    score: float, best_score: float | None, best_epoch: int | None, from_scratch: bool = False
) -> bool:
    """THE BEST-EPOCH RULE: the first score is the best; a later one replaces the starting model
    (epoch 0) only when higher by at least :data:`BETTER_MARGIN`, and a fine-tuned best only when
    strictly higher (a tie keeps the earlier epoch). ``from_scratch``: epoch 0 is a random
    initialization, not a model to keep: the first trained epoch replaces it whatever it scores."""
    if best_score is None:
        return True
    if best_epoch == 0:
        return from_scratch or score >= best_score + BETTER_MARGIN - 1e-12
    return score > best_score


@dataclass
class Validator:
    """Scores a model on ``regions`` (see the module docstring); ``postprocess`` holds the
    instance settings (``segment()``'s keywords) or None for models without instances."""

    regions: list[Region]
    in_size: int
    out_size: int
    batch_size: int
    class_names: list[str]
    class_weights: torch.Tensor | None
    dice_weight: float
    postprocess: dict[str, Any] | None

    @torch.no_grad()
    def run(self, model: nn.Module, to_device, autocast) -> dict[str, Any]:
        """The scores of ``model`` (``to_device``: numpy batch -> tensor; ``autocast``: context)."""
        k = len(self.class_names)
        cm = torch.zeros(k * k, dtype=torch.int64)
        loss_sum, n_valid, matches = 0.0, 0, []
        model.eval()
        for region in self.regions:
            canvas = self._canvas(region, map_count(model) or k)  # the classes, then a distance map
            for chunk, x, y in self._batches(region, to_device):
                y_t = torch.from_numpy(y).to(x.device)
                with autocast():
                    maps = model(x)
                logits = maps[:, :k]  # the classes (a distance map may follow)
                valid = y_t >= 0
                nv = int(valid.sum())
                if nv:
                    loss = segmentation_loss(logits, y_t, self.class_weights, self.dice_weight)
                    loss_sum, n_valid = loss_sum + float(loss) * nv, n_valid + nv
                    pred = logits.argmax(1)
                    cm += torch.bincount((y_t[valid] * k + pred[valid]).cpu(), minlength=k * k)
                if canvas is not None:
                    maps = maps.float()
                    probs = torch.cat([maps[:, :k].softmax(1), maps[:, k:].sigmoid()], 1).cpu().numpy()
                    for (wy, wx), p in zip(chunk, probs):
                        canvas[:, wy : wy + self.out_size, wx : wx + self.out_size] = p
            if canvas is not None:
                matches.append(self._match(region, canvas))
        model.train()
        return _scores(cm.reshape(k, k).double(), loss_sum, n_valid, self.class_names, matches)

    def _batches(self, region: Region, to_device):
        n, out = self.in_size, self.out_size
        m = (n - out) // 2
        windows = tile_windows(region, n, out)
        for i in range(0, len(windows), self.batch_size):
            chunk = windows[i : i + self.batch_size]
            xs = np.stack([region.image[:, y : y + n, x : x + n] for y, x in chunk]).astype(np.float32)
            ys = np.stack([region.target[y + m : y + m + out, x + m : x + m + out] for y, x in chunk])
            yield chunk, to_device(xs), ys.astype(np.int64)

    def _canvas(self, region: Region, k: int) -> np.ndarray | None:
        """A (K, h, w) probability canvas over the region's windows, when its AP can be scored."""
        if self.postprocess is None or region.labels is None:
            return None
        m = (self.in_size - self.out_size) // 2
        h, w = region.target.shape[0] - 2 * m, region.target.shape[1] - 2 * m
        return np.zeros((k, h, w), np.float32)

    def _match(self, region: Region, canvas: np.ndarray):
        from ..inference.postprocess import instances_from_probabilities

        h, w = region.labels.shape
        labels = instances_from_probabilities(canvas[:, :h, :w], **self.postprocess)
        return match_instances(labels, region.labels, thresholds=(0.5,))


def _scores(cm: torch.Tensor, loss_sum: float, n_valid: int, names: list[str], matches: list) -> dict:
    inter, union = cm.diag(), cm.sum(0) + cm.sum(1) - cm.diag()
    ious = [float(i / u) if u > 0 else None for i, u in zip(inter, union)]
    fg = [v for v in ious[1:] if v is not None]
    tp = float(cm[1:, 1:].sum())
    fg_union = float(cm[1:, :].sum() + cm[:, 1:].sum()) - tp
    return {
        "val_loss": loss_sum / n_valid if n_valid else None,
        "val_iou": dict(zip(names, ious)),
        "mean_iou": float(np.mean(fg)) if fg else None,
        "foreground_iou": tp / fg_union if fg_union > 0 else None,
        "val_ap50": pool_scores(matches).at(0.5) if matches else None,
    }


def verdict(history: list[dict[str, Any]], best_epoch: int | None) -> str | None:
    """One line: did training beat the starting model on the held-out data? None without a
    starting-model score (no validation data, or a model trained from scratch)."""
    start = next((h for h in history if h["epoch"] == 0), None)
    if start is None or best_epoch is None:
        return None
    key = "val_ap50" if start.get("val_ap50") is not None else "mean_iou"
    if start.get(key) is None:
        return None
    name = "AP@0.5" if key == "val_ap50" else "mean IoU"
    trained = [h[key] for h in history if h["epoch"] >= 1 and h.get(key) is not None]
    if not trained:
        return None
    rule = f"better means at least +{BETTER_MARGIN}"
    if best_epoch == 0:
        return (
            f"not better than the starting model on the held-out data ({name} {start[key]:.3f}, "
            f"best fine-tuned {max(trained):.3f}; {rule}): the starting model was kept. Correct more "
            "objects (or add images) and train longer (more epochs or minutes)"
        )
    best = next(h for h in history if h["epoch"] == best_epoch)
    if best.get(key) is None or best[key] < start[key] + BETTER_MARGIN - 1e-12:  # e.g. an older run's tie
        return (
            f"not better than the starting model on the held-out data: {name} {start[key]:.3f} -> "
            f"{best[key] if best.get(key) is not None else float('nan'):.3f} (epoch {best_epoch}; {rule})"
        )
    return (
        f"better than the starting model on the held-out data: {name} {start[key]:.3f} -> "
        f"{best[key]:.3f} (epoch {best_epoch}; {rule})"
    )


def epoch_message(entry: dict[str, Any]) -> str:
    """One line for an epoch's history entry: its losses, scores and whether it is the best."""
    parts = [f"epoch {entry['epoch']}"]
    if entry.get("train_loss") is not None:
        parts.append(f"loss {entry['train_loss']:.4f}")
    if entry.get("val_loss") is not None:
        parts.append(f"val loss {entry['val_loss']:.4f}")
    if entry.get("mean_iou") is not None:
        parts.append(f"mean IoU {entry['mean_iou']:.3f}")
    if entry.get("val_ap50") is not None:
        parts.append(f"AP@0.5 {entry['val_ap50']:.3f}")
    return " ".join(parts) + (" (best)" if entry.get("best") else "")


def instance_settings(model: nn.Module) -> dict[str, Any] | None:
    """``segment()``'s instance post-processing for the model, or None when it makes none."""
    from ..inference.engine import postprocess_settings
    from ..models.modelfile import makes_instances

    return postprocess_settings(model) if makes_instances(model) else None
