"""Training of the SSL model: crops of memory-mapped features, validation on held-out TRAIN
rooms, per-epoch checkpoints that a restarted run resumes from.

Everything random is drawn from ``train.seed``: the validation split, the initial weights, the
batch order (per epoch), the crop of each example (per epoch and example) and dropout (its RNG
state is checkpointed), so a resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from dualmic.inference import decode_angles, pooled_log_probs


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted (train, val) room indices of the train split."""
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    order = np.random.default_rng([seed, 0x7A1]).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class CropDataset(Dataset):
    """Random windows of ``window`` frames from memory-mapped features (n, C, F, T).

    The crop of example ``i`` in epoch ``e`` comes from ``default_rng([seed, e, i])``, so it does
    not depend on batch order, process count or restarts.
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray, indices: np.ndarray, window: int, seed: int):
        self.features, self.labels, self.indices = features, labels, indices
        self.window, self.seed, self.epoch = window, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        n_frames = self.features.shape[-1]
        start = 0
        if n_frames > self.window:
            start = int(
                np.random.default_rng([self.seed, self.epoch, i]).integers(n_frames - self.window + 1)
            )
        x = torch.from_numpy(np.asarray(self.features[i, ..., start : start + self.window], dtype=np.float32))
        if x.shape[-1] < self.window:
            x = torch.nn.functional.pad(x, (0, self.window - x.shape[-1]))
        return x, torch.from_numpy(np.asarray(self.labels[i], dtype=np.int64))


def lr_factor(
    step: int, steps_per_epoch: int, epochs: int, schedule: str, warmup_epochs: int, step_epochs: int
) -> float:
    """Learning-rate multiplier at optimiser step ``step``."""
    epoch = step // max(steps_per_epoch, 1)
    if schedule == "step":
        return 0.1 ** (epoch // step_epochs)
    warm = warmup_epochs * steps_per_epoch
    total = max(epochs * steps_per_epoch, 1)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(total - warm, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def slot_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of slot 1 + slot 2 (+ …): logits (B, S, K), labels (B, S) sorted classes."""
    per = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none")
    return per.mean(0).sum()


@dataclass
class ValResult:
    loss: float
    mae_deg: float


def validate(
    model, features, labels, angles, indices, hop_frames, class_width_deg, device, batch_size
) -> ValResult:
    """Pooled-window validation on held-out train rooms: loss and MAE (degrees, both slots)."""
    logp = pooled_log_probs(model, _Rows(features, indices), hop_frames, batch_size, device)
    y = np.asarray(labels[indices])
    nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    pred = decode_angles(logp, class_width_deg)
    mae = np.abs(pred - np.asarray(angles[indices])).mean()
    return ValResult(loss=float(nll.mean(0).sum()), mae_deg=float(mae))


class _Rows:
    """A lazy row selection of a memmap that pooled_log_probs can slice like an array."""

    def __init__(self, array: np.ndarray, rows: np.ndarray):
        self.array, self.rows = array, rows
        self.shape = (len(rows), *array.shape[1:])

    def __getitem__(self, sl: slice) -> np.ndarray:
        return np.asarray(self.array[self.rows[sl]])
