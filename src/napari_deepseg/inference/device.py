"""The device and precision policy (the one place that decides both), and a per-device model cache.

Inference, training, batch runs, the GUI and the scripts ask this module; none re-derives it.

- :func:`available_devices`: which device choices work here (``auto`` and ``cpu`` always).
- :func:`resolve_device`: ``"auto"`` picks CUDA, then Apple MPS, then the CPU.
- :func:`resolve_precision` (``mode="inference"`` or ``"training"``) returns a :class:`Precision`
  (autocast dtype, channels_last, gradient scaler). ``precision="auto"``:

  - CUDA: bf16 where supported, else fp16 (training then uses a gradient scaler);
  - MPS: fp32;
  - CPU with native bf16 (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo): training bf16;
    inference bf16 only for a model whose file records a measured bf16/fp32 class-map agreement
    (``ModelMeta.bf16_agreement``) of at least :data:`BF16_AGREEMENT_MIN`, else fp32;
  - any other CPU: fp32.

  ``"fp32"`` always means no autocast (users can force it); ``"bf16"`` / ``"fp16"`` autocast to
  that type (fp16 not on the CPU, and fp16 training only on CUDA). channels_last is used with
  autocast on CUDA and the CPU (oneDNN), and for fp32 inference on the CPU (the bundled U-Net's
  forward pass ran 1.5x faster in channels_last on a 2-core AMD EPYC, see
  ``benchmarks/default_model_speed.py``); never on MPS or for CPU fp32 training.

Models are copied to the device (and to channels_last where it helps) once; the copy is cached
per (model, device, memory format) and refreshed when the model's weights change in place
(fine-tuning, ``load_state_dict``), so repeated calls do not move weights again.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import DeepsegError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MODES = ("inference", "training")
# "auto" runs a model in bf16 on a CPU only when its file records at least this bf16/fp32
# class-map agreement (measured on validation images, e.g. by benchmarks/default_model_speed.py).
BF16_AGREEMENT_MIN = 0.999
_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Precision:
    """How to run a model: autocast ``dtype`` (None = plain fp32), ``channels_last`` memory
    format for 4D weights and inputs, and ``grad_scaler`` (fp16 training only)."""

    dtype: torch.dtype | None
    channels_last: bool = False
    grad_scaler: bool = False

    @property
    def name(self) -> str:
        """``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        return _NAMES[self.dtype]


def available_devices() -> dict[str, bool]:
    """Which device choices work here, in display order: ``auto`` and ``cpu`` always,
    ``cuda`` and ``mps`` when present."""
    return {"auto": True, "cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a device."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise DeepsegError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeepsegError("device 'cuda' requested but no CUDA GPU is available; use device='auto'")
    if dev.type == "mps" and not _mps_available():
        raise DeepsegError("device 'mps' requested but Apple MPS is not available; use device='auto'")
    return dev


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU reports AVX512-BF16 or AMX-BF16 (Linux /proc/cpuinfo flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(
    precision: str = "auto",
    device: torch.device | str = "cpu",
    *,
    mode: str = "inference",
    bf16_agreement: float | None = None,
) -> Precision:
    """The :class:`Precision` for ``precision`` on ``device`` (rules in the module docstring).

    Args:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: a resolved torch device (or its name).
        mode: ``"inference"`` or ``"training"``.
        bf16_agreement: the model file's measured bf16/fp32 class-map agreement (0..1), or None;
            only read by inference ``"auto"`` on the CPU.
    """
    if precision not in PRECISIONS:
        raise DeepsegError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    device = torch.device(device)
    if precision == "auto":
        precision = _auto_precision(device, mode, bf16_agreement)
    if precision == "fp32":  # channels_last: oneDNN's fp32 kernels are faster on it on the CPU
        return Precision(None, channels_last=device.type == "cpu" and mode == "inference")
    if precision == "fp16" and device.type == "cpu":
        raise DeepsegError("precision 'fp16' is not supported on the CPU; use 'bf16' or 'fp32'")
    if precision == "fp16" and mode == "training" and device.type != "cuda":
        raise DeepsegError("fp16 training needs CUDA; use precision='bf16' or 'fp32'")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    channels_last = device.type in ("cuda", "cpu")
    return Precision(dtype, channels_last, grad_scaler=mode == "training" and precision == "fp16")


def _auto_precision(device: torch.device, mode: str, bf16_agreement: float | None) -> str:
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type != "cpu" or not cpu_has_native_bf16():
        return "fp32"
    if mode == "training":
        return "bf16"
    agreed = bf16_agreement is not None and bf16_agreement >= BF16_AGREEMENT_MIN
    return "bf16" if agreed else "fp32"


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _fingerprint(model: nn.Module) -> tuple:
    return tuple((id(p), p._version) for p in model.parameters()) + tuple(
        (id(b), b._version) for b in model.buffers()
    )


def _on_device(model: nn.Module, device: torch.device, channels_last: bool) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.device != device and not (t.device.type == device.type == "cuda") for t in tensors):
        return False
    if channels_last:
        return all(t.dim() != 4 or t.is_contiguous(memory_format=torch.channels_last) for t in tensors)
    return all(t.is_contiguous() for t in tensors)


def _foldable_pairs(model: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, conv name, batch-norm name) for every Conv2d directly followed by a BatchNorm2d
    with running statistics inside an ``nn.Sequential`` (the conv's output feeds only the norm)."""
    pairs = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = seq._modules[a], seq._modules[b]
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and bn.running_mean is not None
                and bn.running_var is not None
            ):
                pairs.append((seq, a, b))
    return pairs


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold eval-mode batch norms into the convolutions before them (in place; returns ``model``).

    Inference only: each (Conv2d, BatchNorm2d) pair of an ``nn.Sequential`` becomes one conv with
    scaled weights and a bias, the norm an ``nn.Identity``; outputs are unchanged up to float
    rounding, and one pass over the activations is saved per pair.
    """
    for seq, conv_name, bn_name in _foldable_pairs(model):
        seq._modules[conv_name] = fuse_conv_bn_eval(seq._modules[conv_name], seq._modules[bn_name])
        seq._modules[bn_name] = nn.Identity()
    return model


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """The model ready for inference on ``device`` in eval mode (cached; the caller's model is untouched).

    The ready copy is made once, with batch norms folded into their convolutions
    (:func:`fold_batchnorm`), moved to ``device`` (channels_last where asked), and kept until the
    original's weights change. A model with nothing to fold that already sits on the device in
    the wanted memory format is used directly (its train/eval mode is restored by ``eval_mode``).
    """
    if _on_device(model, device, channels_last) and not _foldable_pairs(model):
        return model
    key = (str(device), channels_last)
    entries = _CACHE.setdefault(model, {})
    fp = _fingerprint(model)
    hit = entries.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]
    moved = fold_batchnorm(copy.deepcopy(model).eval()).to(device)
    if channels_last:
        moved = moved.to(memory_format=torch.channels_last)
    entries.clear()  # keep one copy per model: device memory is precious
    entries[key] = (fp, moved)
    return moved


def clear_model_cache() -> None:
    """Forget all cached device copies (frees their memory)."""
    _CACHE.clear()


def loader_workers(device: torch.device) -> int:
    """Processes that make training batches ahead of the steps (:mod:`napari_deepseg.training.feeder`):
    none on the CPU (they would take the cores the step runs on), else up to 8, leaving two
    cores to the main process."""
    if device.type == "cpu":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 2))
