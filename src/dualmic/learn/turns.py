"""Talkers who take turns (``evaluate.turns``).

Pooling the windows' log-probabilities suits talkers who speak through the whole input. Two
people in conversation take turns: each window hears one of them, the pooled slots settle on
whichever spoke more and the other is lost. :func:`add_turn_talkers` adds, to what the pooled
slots found, a talker that windows heard in part of the input only (:func:`turn_evidence`).
"""

from __future__ import annotations

import numpy as np

from dualmic.core.labels import LabelCoding, angle_difference
from dualmic.learn.decoding import peak_angle

# A talker heard in part of the input only is added when the windows that hear a source give its
# class and the two beside it this much of a source on average, at least one window this much,
# and it is this far from every talker found already.
TURN_MEAN_MASS = 0.3
TURN_PEAK_MASS = 0.8
TURN_MIN_SEPARATION_DEG = 10.0


def _class_and_neighbours(values: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Each class's value plus its two neighbours' (..., n_classes); on a circle they wrap."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[..., 1:] += values[..., :-1]
    out[..., :-1] += values[..., 1:]
    if coding.circular:
        out[..., 0] += values[..., -1]
        out[..., -1] += values[..., 0]
    return out


def turn_evidence(window_log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Where windows hear sources: window log-probabilities (N, W, S, n_outputs) → (N, 2,
    n_classes). A window's source density is the probability its slots put on each angle class
    (summed over slots: the expected number of sources per class). Row 0: the mean density over
    the windows that hear a source (expected count 0.5 or more; all windows if none does). Row
    1: over all windows, the highest density of each class and its two neighbours."""
    prob = np.exp(np.asarray(window_log_probs, dtype=np.float64)[..., : coding.n_classes])
    density = prob.sum(-2)  # (N, W, K)
    heard = density.sum(-1) >= 0.5
    heard[~heard.any(1)] = True
    mean = (density * heard[..., None]).sum(1) / heard.sum(1)[:, None]
    peak = _class_and_neighbours(density, coding).max(1)
    return np.stack([mean, peak], axis=1)


def add_turn_talkers(
    angles: np.ndarray, evidence: np.ndarray, coding: LabelCoding, confidence: np.ndarray | None = None
) -> np.ndarray:
    """Decoded angles (N, S) (:func:`decode_angles`, NaN = no source) with the talkers the
    pooled slots missed added from :func:`turn_evidence` (N, 2, n_classes), sorted again.

    The classes of the mean density are visited from the highest down, each taking its
    neighbours out of the running: a class whose mean density, with its neighbours', is below
    TURN_MEAN_MASS ends the search; one that some window was at least TURN_PEAK_MASS sure of
    and lies more than TURN_MIN_SEPARATION_DEG from every talker found is a talker (its angle
    read between the classes as ``labels.decode`` says), until every slot holds one.
    ``confidence`` (N, S), if given, is reordered alike, a found talker's being its mass
    (at most 1)."""
    out = np.array(angles, dtype=np.float64, copy=True)
    if not coding.counting:
        return out
    period = coding.period
    n_slots = out.shape[1]
    for i in range(len(out)):
        found = [float(a) for a in out[i] if np.isfinite(a)]
        conf = [] if confidence is None else [float(c) for c in confidence[i][np.isfinite(out[i])]]
        mean, peak = evidence[i]
        mass = _class_and_neighbours(mean, coding)
        log_mean = np.log(np.maximum(mean, 1e-12))
        left = mean.copy()
        for _ in range(n_slots):
            if len(found) >= n_slots:
                break
            k = int(left.argmax())
            if mass[k] < TURN_MEAN_MASS:
                break
            n = coding.n_classes
            left[[(k + d) % n for d in (-1, 0, 1) if coding.circular or 0 <= k + d < n]] = -np.inf
            if peak[k] < TURN_PEAK_MASS:
                continue
            a = float(peak_angle(log_mean, np.array(k), coding))
            if all(abs(angle_difference(a, h, period)) > TURN_MIN_SEPARATION_DEG for h in found):
                found.append(a)
                conf.append(min(1.0, float(mass[k])))
        order = np.argsort(found, kind="stable")
        out[i] = np.nan
        out[i, : len(found)] = np.asarray(found)[order]
        if confidence is not None:
            confidence[i] = np.nan
            confidence[i, : len(conf)] = np.asarray(conf)[order]
    return out
