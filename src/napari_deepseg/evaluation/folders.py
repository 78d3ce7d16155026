"""Scoring folders of label images against ground truth: file pairing (the io pairing rule),
label-image checks and the per-image and pooled report that ``deepseg evaluate`` prints.

Files pair by name: the stem without image suffixes and without one or more trailing tags such as
``_labels``, ``_mask``, ``_pred`` or ``_gt`` (``a_labels.tif`` pairs with ``a.tif`` or ``a_mask.png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._checks import looks_like_intensity
from ..errors import DeepsegError
from ..io.images import files_by_key, pairing_key

LABEL_SUFFIXES = (".tif", ".tiff", ".png", ".npy")
REPORT_THRESHOLDS = (0.5, 0.75, 0.9)


def _label_files(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {pairing_key(path): path}
    if not path.is_dir():
        raise DeepsegError(f"{path} not found; give a folder of label images or one label file")
    files = [
        f
        for f in sorted(path.iterdir())
        if f.is_file() and f.name.lower().endswith(LABEL_SUFFIXES) and not f.name.startswith(".")
    ]
    clash = "{first.name} and {second.name} in " + str(path).replace("{", "{{").replace("}", "}}")
    found = files_by_key(files, clash + " both pair as {key!r}; keep one of them")
    if not found:
        raise DeepsegError(f"no label images (.tif, .png, .npy) in {path}")
    return found


def pair_files(pred: Path, truth: Path, skip_missing: bool = False) -> list[tuple[str, Path, Path]]:
    """``(key, pred_file, truth_file)`` for every name present in both; unpaired files are an error
    unless ``skip_missing``."""
    p, t = _label_files(pred), _label_files(truth)
    if pred.is_file() and truth.is_file():
        return [(pairing_key(truth), pred, truth)]
    no_truth, no_pred = sorted(set(p) - set(t)), sorted(set(t) - set(p))
    if (no_truth or no_pred) and not skip_missing:
        first = (
            f"prediction {p[no_truth[0]]} has no ground truth in {truth}"
            if no_truth
            else f"ground truth {t[no_pred[0]]} has no prediction in {pred}"
        )
        raise DeepsegError(
            f"{first} ({len(no_truth)} predictions and {len(no_pred)} ground truths unpaired); "
            "name the files alike or pass --skip-missing"
        )
    keys = sorted(set(p) & set(t))
    if not keys:
        raise DeepsegError(f"no file names in common between {pred} and {truth}; name the files alike")
    return [(k, p[k], t[k]) for k in keys]


def read_labels(path: Path) -> np.ndarray:
    """A label image as an integer numpy array (RGB(A) files are refused)."""
    from ..io.images import read_image

    arr, axes = read_image(path)
    arr = np.asarray(arr)
    if "C" in axes:
        raise DeepsegError(f"{path} has colour channels (axes {axes}); give single-channel label images")
    return check_label_image(arr, path)


def check_label_image(arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` as integer labels, or a one-line DeepsegError when it is clearly not a label image.

    Refused: fractional or non-finite float values, negative values, and integer images whose
    one-valued regions are many times more numerous than their values and tiny on average
    (an intensity image: in a label image each id is one or a few regions of many pixels).
    """
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise DeepsegError(
                f"{path} holds fractional or NaN values (a float image): an intensity image or "
                "probabilities, not labels; give the integer label image"
            )
        arr = arr.astype(np.int64)
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.size and arr.min() < 0:
        raise DeepsegError(f"{path} holds negative values, not labels; give the integer label image")
    if looks_like_intensity(arr):
        raise DeepsegError(
            f"{path} looks like an intensity image, not labels (its values form thousands of tiny "
            "regions); give the label image, e.g. the *_labels.tif that deepseg predict wrote"
        )
    return arr


def _load_pair(pred_file: Path, truth_file: Path) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = read_labels(pred_file), read_labels(truth_file)
    if pred.shape != truth.shape and pred.squeeze().shape == truth.squeeze().shape:
        pred, truth = pred.squeeze(), truth.squeeze()
    if pred.shape != truth.shape:
        raise DeepsegError(
            f"{pred_file} has shape {pred.shape} but {truth_file} has {truth.shape}; "
            "give predictions and ground truth of the same images"
        )
    return pred, truth


def evaluate_folders(pred: Path, truth: Path, skip_missing: bool = False) -> dict:
    """Score every pair of label files; returns the JSON-ready report (images, pooled, mean)."""
    from ..evaluation import foreground_scores, match_instances, pool_foreground, pool_scores

    images, inst, fgs = [], [], []
    for key, pred_file, truth_file in pair_files(pred, truth, skip_missing):
        p, t = _load_pair(pred_file, truth_file)
        try:
            scores, fg = match_instances(p, t, name=key), foreground_scores(p, t)
        except DeepsegError as err:
            raise DeepsegError(f"{pred_file.name}: {err}") from None
        inst.append(scores)
        fgs.append(fg)
        images.append({"name": key, "pred": str(pred_file), "truth": str(truth_file), **_row(scores, fg)})
    pooled = _row(pool_scores(inst), pool_foreground(fgs))
    keys = ["iou", "dice", "mean_ap"] + [f"ap@{t}" for t in REPORT_THRESHOLDS]
    mean = {k: float(np.mean([im[k] for im in images])) for k in keys}
    return {"images": images, "pooled": pooled, "mean_over_images": mean}


def _row(scores, fg: dict) -> dict:
    row = {"iou": fg["iou"], "dice": fg["dice"], "n_true": scores.n_true, "n_pred": scores.n_pred}
    row.update({f"ap@{t}": scores.at(t) for t in REPORT_THRESHOLDS})
    row["mean_ap"] = scores.mean_ap
    row["instance"] = scores.to_dict()
    row["pixels"] = {k: fg[k] for k in ("tp", "fp", "fn")}
    return row
