"""Pooled-window validation on held-out TRAIN rooms: the loss and MAE that pick the best epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dualmic.core.labels import slot_errors, source_counts
from dualmic.learn.decoding import decode_angles, decode_known_count
from dualmic.learn.inference import pooled_log_probs
from dualmic.learn.objective import slot_targets


@dataclass
class ValResult:
    loss: float
    mae_deg: float
    count_acc: float | None = None  # counting models: fraction of rooms with the right count


def validate(model, data, indices: np.ndarray, device, batch_size: int) -> ValResult:
    """Loss and MAE (degrees, every source, the model told each room's count; paired and measured
    as evaluate does, so a circular label's errors go the closest way round) of ``model`` on
    rows ``indices`` of ``data`` (a :class:`~dualmic.learn.trainer.TrainData`), pooled over
    windows as evaluate does; a counting model's count accuracy too."""
    logp = pooled_log_probs(model, _Rows(data.features, indices), data.hop_frames, batch_size, device)
    true = np.asarray(data.angles[indices], dtype=np.float64)
    targets = slot_targets(torch.from_numpy(true), data.coding).numpy().astype(np.float64)
    nll = -(targets * logp).sum(-1)
    k_true = source_counts(true)
    err = slot_errors(decode_known_count(logp, k_true, data.coding), true, data.coding.period)
    mae = float(np.nanmean(err)) if np.isfinite(err).any() else 0.0
    count_acc = None
    if data.coding.counting:
        count_acc = float((source_counts(decode_angles(logp, data.coding)) == k_true).mean())
    return ValResult(loss=float(nll.mean(0).sum()), mae_deg=mae, count_acc=count_acc)


class _Rows:
    """A lazy row selection of a memmap that pooled_log_probs can slice like an array."""

    def __init__(self, array: np.ndarray, rows: np.ndarray):
        self.array, self.rows = array, rows
        self.shape = (len(rows), *array.shape[1:])

    def __getitem__(self, sl: slice) -> np.ndarray:
        return np.asarray(self.array[self.rows[sl]])
