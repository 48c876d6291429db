"""Which angle a label is, and how an angle becomes a class.

Both angles live in the array frame, whose x axis runs from mic 0 to mic 1:

* ``lateral_deg`` = acos(x / |d|) in [0, 180]: the angle between the source direction and the
  mic axis. A two-mic array observes exactly this angle (through the TDOA); it is the same for
  every source on a cone around the axis, so front/back and elevation are not observable.
* ``azimuth_deg`` = |atan2(y, x)| in [0, 180]: the published recipe's label, the horizontal-plane
  azimuth with front/back folded. It equals the lateral angle only for sources at the array's
  height; above or below it, the two differ and the azimuth is not recoverable from two mics.
"""

from __future__ import annotations

import numpy as np

ANGLE_KINDS = ("lateral", "azimuth")


def lateral_deg(direction: np.ndarray) -> np.ndarray:
    """Angle to the mic axis. ``direction``: (..., 3) array-frame vectors → (...) degrees."""
    norm = np.linalg.norm(direction, axis=-1)
    cos = np.clip(direction[..., 0] / norm, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def azimuth_deg(direction: np.ndarray) -> np.ndarray:
    """Front/back-folded azimuth |atan2(y, x)|. ``direction``: (..., 3) → (...) degrees."""
    return np.abs(np.degrees(np.arctan2(direction[..., 1], direction[..., 0])))


def angle_to_class(angle_deg: np.ndarray, class_width_deg: float, n_classes: int) -> np.ndarray:
    """Class index floor(angle / width), clipped to 0..n_classes-1 (so 180° is the last class)."""
    cls = np.floor(np.asarray(angle_deg, dtype=np.float64) / class_width_deg).astype(np.int64)
    return np.clip(cls, 0, n_classes - 1)


def class_centre_deg(cls: np.ndarray, class_width_deg: float) -> np.ndarray:
    """Centre angle of a class, e.g. class 3 of 5° → 17.5°."""
    return (np.asarray(cls, dtype=np.float64) + 0.5) * class_width_deg
