"""Cross-entropy plus soft Dice, both ignoring pixels whose target is ``IGNORE`` (-1).

Shapes: logits (N, K, H, W) float; target (N, H, W) int64 with values -1 (ignored) or 0..K-1.
Ignored pixels contribute nothing to the loss or its gradient, so in sparse mode the loss is the
same whatever the model predicts on unannotated pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .labels import IGNORE


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, skip_background: bool = True
) -> torch.Tensor:
    """1 - mean soft Dice over classes (background excluded by default), on valid pixels only.

    Dice per class c is ``(2 sum p_c t_c + s) / (sum p_c + sum t_c + s)`` over the valid pixels
    of the whole batch (p = softmax probabilities, t = one-hot target, s = ``smooth``).
    """
    num_classes = logits.shape[1]
    valid = (target != IGNORE).unsqueeze(1).to(logits.dtype)
    prob = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp(min=0), num_classes).permute(0, 3, 1, 2).to(logits.dtype) * valid
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    dice = (2 * inter + smooth) / (prob.sum(dims) + onehot.sum(dims) + smooth)
    if skip_background and num_classes > 1:
        dice = dice[1:]
    return 1 - dice.mean()


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    dice_weight: float = 1.0,
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy (``ignore_index=-1``, optional class weights) + ``dice_weight`` x soft Dice.

    ``pixel_weights`` (N, H, W) multiply each pixel's cross-entropy (a weighted mean: corrected
    pixels count more). Computed in float32 whatever the autocast dtype. A batch without valid
    pixels gives a zero loss that still has a graph (so ``backward`` works and changes nothing).
    """
    logits = logits.float()
    if not (target != IGNORE).any():
        return logits.sum() * 0.0
    if pixel_weights is None:
        ce = F.cross_entropy(logits, target, weight=class_weights, ignore_index=IGNORE)
    else:
        per_pixel = F.cross_entropy(
            logits, target, weight=class_weights, ignore_index=IGNORE, reduction="none"
        )
        cls = class_weights[target.clamp(min=0)] if class_weights is not None else torch.ones_like(per_pixel)
        w = pixel_weights * cls * (target != IGNORE)
        ce = (per_pixel * pixel_weights).sum() / w.sum().clamp(min=1e-12)
    if dice_weight == 0:
        return ce
    return ce + dice_weight * soft_dice_loss(logits, target)


def distance_loss(
    logit: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, pixel_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy between the distance map ``sigmoid(logit)`` and the (N, H, W)
    distance targets in [0, 1], over the ``valid`` (annotated) pixels, a weighted mean with
    ``pixel_weights`` (N, H, W) when given; zero (with a graph) when no pixel is valid."""
    logit = logit.float()
    w = valid.to(logit.dtype) if pixel_weights is None else pixel_weights.float() * valid
    total = w.sum()
    if not bool(total > 0):
        return logit.sum() * 0.0
    per_pixel = F.binary_cross_entropy_with_logits(logit, target.float(), reduction="none")
    return (per_pixel * w).sum() / total


def training_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    classes: int,
    class_weights: torch.Tensor | None = None,
    dice_weight: float = 1.0,
    pixel_weights: torch.Tensor | None = None,
    distance: torch.Tensor | None = None,
    distance_weight: float = 1.0,
) -> torch.Tensor:
    """The loss of one batch: :func:`segmentation_loss` on the first ``classes`` maps of the
    (N, K [+ 1], H, W) ``logits``, plus ``distance_weight`` x :func:`distance_loss` of the map
    after them against the (N, H, W) ``distance`` targets (models with a distance output)."""
    loss = segmentation_loss(logits[:, :classes], target, class_weights, dice_weight, pixel_weights)
    if distance is None or logits.shape[1] <= classes or distance_weight == 0:
        return loss
    valid = target != IGNORE
    return loss + distance_weight * distance_loss(logits[:, classes], distance, valid, pixel_weights)
