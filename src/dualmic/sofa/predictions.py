"""Which source each predicted angle belongs to, for the SOFA export.

The model answers a room's angles sorted ascending (NaN where it finds no source), not per
source; the export stores one predicted angle per (room, source). The predictions go to the
talking sources in the order of their true angles, and a silent source (``features.active_sources``)
gets NaN.
"""

from __future__ import annotations

import numpy as np

from dualmic.core.errors import DualmicError


def predictions_per_source(
    sorted_pred: np.ndarray, true_angles: np.ndarray, active: np.ndarray | None = None
) -> np.ndarray:
    """Assign a room's sorted predictions to its sources by the order of their true angles.

    ``sorted_pred`` (R, S) ascending per room (NaN = no source found, sorted last),
    ``true_angles`` (R, S) in source order → (R, S) predictions in source order: the j-th
    smallest prediction goes to the talking source (``active``, None = all) whose true angle is
    the j-th smallest of the room's talkers (stable: equal true angles keep the source order).
    Silent sources, and talkers beyond the number of predictions, get NaN.
    """
    sorted_pred = np.asarray(sorted_pred, dtype=np.float64)
    true_angles = np.asarray(true_angles, dtype=np.float64)
    if sorted_pred.shape != true_angles.shape or sorted_pred.ndim != 2:
        raise DualmicError(
            f"predictions {sorted_pred.shape} and true angles {true_angles.shape} must both be "
            "(rooms, sources)"
        )
    active = np.ones(true_angles.shape, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    out = np.full(sorted_pred.shape, np.nan)
    for i in range(len(out)):
        talkers = np.flatnonzero(active[i])
        talkers = talkers[np.argsort(true_angles[i, talkers], kind="stable")]
        found = np.sort(sorted_pred[i][np.isfinite(sorted_pred[i])])
        k = min(len(talkers), len(found))
        out[i, talkers[:k]] = found[:k]
    return out


def talking_sources(
    label_angles: np.ndarray, true_angles: np.ndarray, atol: float = 1e-3
) -> np.ndarray | None:
    """Which sources talk, from a split's slot labels (R, S) sorted, NaN = no source, and the
    rooms' angles (R, S) in source order: (R, S) bool, or None when a label matches no source
    of its room (the labels come from other rooms)."""
    labels = np.asarray(label_angles, dtype=np.float64)
    true = np.asarray(true_angles, dtype=np.float64)
    if labels.shape != true.shape:
        return None
    active = np.zeros(true.shape, dtype=bool)
    for i in range(len(true)):
        for a in labels[i][np.isfinite(labels[i])]:
            free = np.flatnonzero(~active[i] & np.isclose(true[i], a, atol=atol))
            if len(free) == 0:
                return None
            active[i, free[0]] = True
    return active
