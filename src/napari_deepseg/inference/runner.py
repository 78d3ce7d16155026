"""Running a model on batches of tiles: device transfer, autocast, TTA and out-of-memory fallback."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..models.contract import contract_of
from .device import Precision, prepare_model

# Test-time augmentation: the 8 symmetries of the square as (k rot90, flip last axis).
TTA_TRANSFORMS = [(k, flip) for flip in (False, True) for k in range(4)]


class TileTooLarge(RuntimeError):
    """Raised when even one tile does not fit in device memory; the caller shrinks the tile."""


def is_oom(err: BaseException) -> bool:
    """True for CUDA/MPS/CPU out-of-memory errors."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def model_in_channels(model: nn.Module) -> int:
    """Input channels of a model, from its contract (:func:`napari_deepseg.models.contract_of`)."""
    return int(contract_of(model).in_channels)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class TileRunner:
    """Runs (B, C, h, w) float32 numpy batches through the model; returns (B, K, h', w') float32 logits.

    On out-of-memory it halves ``batch_size`` (with a warning) and retries; at batch size 1 it
    raises :class:`TileTooLarge` so the engine can retry the plane with a smaller tile.
    """

    def __init__(
        self, model: nn.Module, device: torch.device, precision: Precision, batch_size: int, tta: bool
    ) -> None:
        self.device, self.dtype, self.tta = device, precision.dtype, tta
        self.channels_last = precision.channels_last
        self.contract = contract_of(model)
        self.model = prepare_model(model, device, self.channels_last)
        self.batch_size = batch_size
        self.forward_calls = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a batch, split into chunks of the current batch size."""
        outs, i = [], 0
        while i < len(batch):
            size = self.batch_size
            try:
                outs.append(self._run_chunk(batch[i : i + size]))
            except (RuntimeError, MemoryError) as err:
                if not (isinstance(err, MemoryError) or is_oom(err)):
                    raise
                self._free()
                if self.batch_size == 1:
                    raise TileTooLarge(str(err).splitlines()[0] if str(err) else "out of memory") from None
                self.batch_size = max(1, self.batch_size // 2)
                warnings.warn(
                    f"out of memory on {self.device}; retrying with tile batch {self.batch_size}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            i += size
        return np.concatenate(outs)

    def _run_chunk(self, chunk: np.ndarray) -> np.ndarray:
        self.contract.check_input(chunk.shape)
        x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), eval_mode(self.model):
            if not self.tta:
                return self._forward(x).cpu().numpy()
            total = None
            for k, flip in TTA_TRANSFORMS:
                xt = torch.rot90(x, k, (2, 3))
                xt = torch.flip(xt, (3,)) if flip else xt
                yt = self._forward(xt)
                yt = torch.flip(yt, (3,)) if flip else yt
                yt = torch.rot90(yt, -k, (2, 3))
                total = yt if total is None else total + yt
            return (total / len(TTA_TRANSFORMS)).cpu().numpy()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        dtype, enabled = self.dtype or torch.float32, self.dtype is not None
        with torch.autocast(self.device.type, dtype=dtype, enabled=enabled):
            out = self.model(x)
        if isinstance(out, dict):
            out = out["out"]
        return out.float()

    def _free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()
