"""Pooled-window validation on held-out TRAIN rooms: the loss and MAE that pick the best epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dualmic.learn.inference import decode_angles, pooled_log_probs


@dataclass
class ValResult:
    loss: float
    mae_deg: float


def validate(model, data, indices: np.ndarray, device, batch_size: int) -> ValResult:
    """Loss and MAE (degrees, both slots) of ``model`` on rows ``indices`` of ``data``
    (a :class:`~dualmic.learn.trainer.TrainData`), pooled over windows as evaluate does."""
    logp = pooled_log_probs(model, _Rows(data.features, indices), data.hop_frames, batch_size, device)
    y = np.asarray(data.labels[indices])
    nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    pred = decode_angles(logp, data.class_width_deg)
    mae = np.abs(pred - np.asarray(data.angles[indices])).mean()
    return ValResult(loss=float(nll.mean(0).sum()), mae_deg=float(mae))


class _Rows:
    """A lazy row selection of a memmap that pooled_log_probs can slice like an array."""

    def __init__(self, array: np.ndarray, rows: np.ndarray):
        self.array, self.rows = array, rows
        self.shape = (len(rows), *array.shape[1:])

    def __getitem__(self, sl: slice) -> np.ndarray:
        return np.asarray(self.array[self.rows[sl]])
