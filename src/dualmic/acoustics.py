"""Room-acoustic measures of impulse responses: Schroeder decay, RT60, DRR, arrival times."""

from __future__ import annotations

import numpy as np


def schroeder_decay_db(rir: np.ndarray) -> np.ndarray:
    """Energy decay curve (backward-integrated energy) in dB re its start: same shape as ``rir``."""
    energy = np.cumsum(np.asarray(rir, dtype=np.float64)[..., ::-1] ** 2, axis=-1)[..., ::-1]
    return 10 * np.log10(energy / np.maximum(energy[..., :1], 1e-300) + 1e-300)


def rt60_from_decay(decay_db: np.ndarray, sample_rate: int, span_db: float = 30.0) -> float:
    """RT60 from a least-squares line through the decay between −5 dB and −(5 + span) dB.

    ``span_db`` 30 gives T30, 20 gives T20; NaN when the decay never reaches the lower end.
    """
    lo, hi = -5.0, -5.0 - span_db
    if decay_db.min() > hi:
        return float("nan")
    start, stop = int(np.argmax(decay_db <= lo)), int(np.argmax(decay_db <= hi))
    t = np.arange(start, stop + 1) / sample_rate
    slope = np.polyfit(t, decay_db[start : stop + 1], 1)[0]
    return float(-60.0 / slope) if slope < 0 else float("nan")


def rt60(rir: np.ndarray, sample_rate: int, span_db: float = 30.0) -> float:
    """RT60 (T30 by default) of one RIR, measured from the direct-path arrival onwards."""
    onset = int(np.argmax(np.abs(rir)))
    return rt60_from_decay(schroeder_decay_db(rir[onset:]), sample_rate, span_db)


def direct_to_reverberant_db(
    rir: np.ndarray, delay_samples: float, sample_rate: int, window_ms: float = 2.5
) -> float:
    """DRR: energy within ±``window_ms`` of the direct path over the energy after it, in dB."""
    half = int(round(window_ms * 1e-3 * sample_rate))
    centre = int(round(delay_samples))
    lo, hi = max(centre - half, 0), centre + half + 1
    direct = np.sum(rir[lo:hi] ** 2)
    reverb = np.sum(rir[hi:] ** 2)
    return float(10 * np.log10(direct / max(reverb, 1e-300)))


def arrival_sample(rir: np.ndarray, expected: float, search: int = 16) -> float:
    """Sub-sample time of the first arrival: the peak of |rir| up to ``expected + search``,
    refined by a parabola through the peak and its neighbours."""
    seg = np.abs(rir[: int(expected) + search + 1])
    k = int(np.argmax(seg))
    if 0 < k < len(seg) - 1:
        a, b, c = seg[k - 1], seg[k], seg[k + 1]
        denom = a - 2 * b + c
        if denom != 0:
            return k + 0.5 * (a - c) / denom
    return float(k)
