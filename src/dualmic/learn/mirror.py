"""Mirror averaging (``evaluate.mirror``): a pair of receivers is symmetric under swapping them.

The recording with its channels swapped is the recording of the mirrored scene, every angle
``a`` becoming ``180 - a``. So the model also scores the swapped channels
(:func:`mirror_features`), that answer is mapped back (classes mirrored, slots matched) and the
two are averaged (:func:`mirror_average`): a two-view ensemble of one model at twice the
inference cost, with no training change.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from dualmic.core.errors import DualmicError
from dualmic.core.labels import LabelCoding
from dualmic.learn.decoding import pooled_probs


def mirror_features(x: torch.Tensor) -> torch.Tensor:
    """Features (B, C, F, T) of the same audio with mic 0 and mic 1 swapped: the phase
    difference changes sign (cos kept, sin negated) and each later pair of per-mic channels
    (log-magnitudes, onsets) trades places."""
    out = x.clone()
    out[:, 1] = -x[:, 1]
    for c in range(2, x.shape[1] - 1, 2):
        out[:, c], out[:, c + 1] = x[:, c + 1], x[:, c]
    return out


def mirror_classes(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Outputs (..., S, K) about a mirrored scene, re-indexed so class k holds the angle
    ``180 - a`` of the class it held (class k ↔ class 180/width - 1 - k, modulo the classes on a
    circle); "no source" stays. Needs class edges symmetric about 90° (180 / width whole)."""
    half = 180.0 / coding.class_width_deg
    if abs(half - round(half)) > 1e-9:
        raise DualmicError(
            f"labels.class_width_deg {coding.class_width_deg} does not divide 180; evaluate.mirror "
            "needs classes symmetric about 90 degrees (set evaluate.mirror: false)"
        )
    k = np.arange(coding.n_classes)
    source = (round(half) - 1 - k) % coding.n_classes
    out = np.array(log_probs, copy=True)
    out[..., : coding.n_classes] = np.asarray(log_probs)[..., source]
    return out


def match_slots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b``'s slots (N, S, K) reordered to agree best with ``a``'s: for each example, the
    assignment that maximises the summed Bhattacharyya overlap of the slots' probabilities.
    (Mirroring reverses the sorted order of the talkers but not the "no source" slots after
    them, so slots are matched, not just reversed.)"""
    pa, pb = np.sqrt(pooled_probs(a)), np.sqrt(pooled_probs(b))
    overlap = np.einsum("nsk,ntk->nst", pa, pb)
    out = np.empty_like(b)
    for i in range(len(b)):
        _, cols = linear_sum_assignment(-overlap[i])
        out[i] = b[i, cols]
    return out


def mirror_average(log_probs: np.ndarray, swapped: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """The mean of pooled log-probabilities (N, S, K) and those of the swapped channels
    (``swapped``, about the mirrored scene) mapped back: classes mirrored, slots matched."""
    back = match_slots(log_probs, mirror_classes(swapped, coding))
    return (0.5 * (log_probs.astype(np.float64) + back)).astype(np.float32)
