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


def rir_summary(
    rirs: np.ndarray, rt60_target: np.ndarray, delay_samples: np.ndarray, sample_rate: int
) -> dict:
    """Physics check of simulated RIRs, for a split's metrics file.

    Args:
        rirs: (B, S, M, n_taps).
        rt60_target: (B,) seconds.
        delay_samples: (B, S, M) geometric direct-path delays.

    Returns:
        flat dict: median relative T30 error against the target, median DRR (mic 0), median
        and max absolute error of the direct-path arrival in samples.
    """
    rel, drr, delay_err = [], [], []
    for b in range(rirs.shape[0]):
        for s in range(rirs.shape[1]):
            h = rirs[b, s, 0]
            rel.append(rt60(h, sample_rate) / rt60_target[b] - 1)
            drr.append(direct_to_reverberant_db(h, delay_samples[b, s, 0], sample_rate))
            for m in range(rirs.shape[2]):
                delay_err.append(
                    arrival_sample(rirs[b, s, m], delay_samples[b, s, m]) - delay_samples[b, s, m]
                )
    rel, delay_err = np.abs(np.asarray(rel)), np.abs(np.asarray(delay_err))
    return {
        "rooms_checked": int(rirs.shape[0]),
        "t30_rel_error_median": round(float(np.nanmedian(rel)), 4),
        "drr_db_median": round(float(np.median(drr)), 2),
        "direct_delay_error_samples_median": round(float(np.median(delay_err)), 3),
        "direct_delay_error_samples_max": round(float(np.max(delay_err)), 3),
    }
