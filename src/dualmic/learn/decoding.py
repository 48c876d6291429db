"""Decode pooled slot log-probabilities (N, S, n_outputs) into angles and counts.

Pooled log-probabilities are averages over model windows (:mod:`dualmic.learn.inference`), so
they are first renormalised (:func:`pooled_probs`). A slot's angle is read at its best class or
between the classes (``labels.decode``); a counting model's slot holds a source when its
presence (1 - p(no source)) is above ``evaluate.presence``, 0.5 by default: "no source" has less
than half its probability.
"""

from __future__ import annotations

import numpy as np

from dualmic.core.labels import LabelCoding, class_centre_deg

PRESENCE = 0.5  # default evaluate.presence: a slot holds a source when "no source" has < half its probability


def slot_peak_deg(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """The angle each slot points at, ignoring "no source": (..., S) degrees.

    ``argmax``: the centre of the best angle class. ``peak``: the vertex of the parabola through
    the pooled log-probabilities of the best class and its two neighbours (exact for a Gaussian
    peak, which ``labels.sigma_deg`` trains for), kept within the best class; edge classes keep
    their centre (on a circular label, the classes wrap round and none is an edge).
    """
    logp = np.asarray(log_probs, dtype=np.float64)[..., : coding.n_classes]
    best = logp.argmax(-1)
    return peak_angle(logp, best, coding)


def peak_angle(logp: np.ndarray, best: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """The angle of class ``best`` (...) of log-values ``logp`` (..., n_classes), read between
    the classes as :func:`slot_peak_deg` says."""
    angle = class_centre_deg(best, coding.class_width_deg)
    if coding.decode != "peak" or coding.n_classes < 3:
        return angle
    n = coding.n_classes
    inner = best if coding.circular else np.clip(best, 1, n - 2)  # a circle has no edge class
    y0, y1, y2 = (np.take_along_axis(logp, ((inner + d) % n)[..., None], -1)[..., 0] for d in (-1, 0, 1))
    curve = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curve < 0, 0.5 * (y0 - y2) / curve, 0.0)
    shift = np.where(best == inner, np.clip(shift, -0.5, 0.5), 0.0)
    angle = angle + shift * coding.class_width_deg
    return angle % (n * coding.class_width_deg) if coding.circular else angle


def pooled_probs(log_probs: np.ndarray) -> np.ndarray:
    """Pooled log-probabilities (averaged over windows, so no longer normalised) as
    probabilities that sum to 1 per slot: (..., K) float64."""
    logp = np.asarray(log_probs, dtype=np.float64)
    prob = np.exp(logp - logp.max(-1, keepdims=True))
    return prob / prob.sum(-1, keepdims=True)


def slot_presence(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """How sure each slot is that it holds a source, 0..1: (..., S). A counting model's
    1 - p(no source); otherwise the pooled probability of the best class."""
    prob = pooled_probs(log_probs)
    return 1.0 - prob[..., coding.n_classes] if coding.counting else prob.max(-1)


def most_sure_slots(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Slot indices (..., S) from the slot most sure to hold a source (:func:`slot_presence`) to
    the least; ties keep slot order. The slots that answer when the count is known."""
    return np.argsort(-slot_presence(log_probs, coding), axis=-1, kind="stable")


def decode_angles(log_probs: np.ndarray, coding: LabelCoding, presence: float = PRESENCE) -> np.ndarray:
    """Predicted slot angles (N, S) degrees, sorted ascending; NaN (sorted last) where a counting
    model's :func:`slot_presence` is ``presence`` or less (at 0.5: "no source" holds half or more
    of the slot's probability). (Not the single best class: a source's probability is spread over
    neighbouring angle classes, "no source" is one class.) A lower ``presence`` reports weak
    second talkers more readily and invents more; README: "How sure before a talker counts"."""
    angle = slot_peak_deg(log_probs, coding)
    if coding.counting:
        angle = np.where(slot_presence(log_probs, coding) <= presence, np.nan, angle)
    return np.sort(angle, axis=-1)


def decode_known_count(log_probs: np.ndarray, counts: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Slot angles (N, S) when the number of sources of each room is given: the ``counts[i]``
    slots most sure to hold a source (:func:`slot_presence`) give their angles, sorted, then NaN.
    Scores models with and without counting (and baselines) on the same footing."""
    angle = slot_peak_deg(log_probs, coding)
    order = most_sure_slots(log_probs, coding)
    out = np.full(angle.shape, np.nan)
    for i, k in enumerate(np.asarray(counts, dtype=np.int64)):
        out[i, :k] = np.sort(angle[i, order[i, :k]])
    return out
