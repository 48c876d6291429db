"""Measures of how faithful simulated RIRs are, for comparing two simulators on the same rooms.

Sub-sample direct-path arrivals (band-limited peak interpolation), third-octave magnitude spectra
and log-spectral distances, energies in windows after the direct path, and an Eyring
diffuse-field model of those energies. Used by ``benchmarks/fidelity.py`` and its fast tests.
"""

from __future__ import annotations

import numpy as np

from dualmic.sim.acoustics import arrival_sample, direct_to_reverberant_db, rt60
from dualmic.sim.rooms import Rooms
from dualmic.spectral import spectral_loss

ARRIVAL_HALF_WIDTH = 24  # samples each side of the direct path used by the band-limited estimate
ARRIVAL_SEARCH = 1.5  # samples each side of the coarse (parabolic) peak searched for the band-limited one
# third-octave bands 1 kHz * 2^(k/3) analysed: centres 99 Hz .. 5.04 kHz, edges 88 Hz .. 5.66 kHz
# (above FRA's 50 Hz high-pass, below its anti-alias taper from 6.8 kHz)
BAND_K = range(-10, 8)
ENERGY_WINDOWS_MS = ((2.5, 10.0), (2.5, 50.0), (50.0, None))  # after the direct path: early, C50-like, late


def geometric_delays(rooms: Rooms, sample_rate: int, c: float) -> np.ndarray:
    """(B, S, M) direct-path delay d / c in samples."""
    d = np.linalg.norm(rooms.src_pos[:, :, None] - rooms.mic_pos[:, None], axis=-1)
    return d / c * sample_rate


def bandlimited_arrival(
    rirs: np.ndarray,
    around: np.ndarray,
    half_width: int = ARRIVAL_HALF_WIDTH,
    search: float = ARRIVAL_SEARCH,
    grid: float = 0.02,
) -> np.ndarray:
    """Fractional time of the largest peak of |h| within ``around ± search`` samples.

    Cross-correlates each RIR with an ideal band-limited impulse ``sinc(n - tau)`` over a grid of
    delays ``tau`` (the cross-correlation is the band-limited interpolation of h, so this is its
    peak on a finely upsampled grid), then refines the best grid point with a parabola. Only the
    ``2 * half_width + 1`` samples around ``around`` enter the sum. ``around`` is a coarse
    estimate: :func:`measure` passes the peak found by ``acoustics.arrival_sample``, so an arrival
    far from d/c is still found, not clipped to the search range.

    Args:
        rirs: (..., T) impulse responses.
        around: (...) coarse arrival times in samples.

    Returns:
        (...) arrival times in samples.
    """
    shape = around.shape
    h = rirs.reshape(-1, rirs.shape[-1]).astype(np.float64)
    exp = around.reshape(-1)
    n = np.round(exp).astype(int)[:, None] + np.arange(-half_width, half_width + 1)  # (R, K)
    valid = (n >= 0) & (n < h.shape[-1])
    seg = np.where(valid, np.take_along_axis(h, n.clip(0, h.shape[-1] - 1), -1), 0.0)
    offsets = np.arange(-search, search + grid / 2, grid)
    tau = exp[:, None] + offsets  # (R, G)
    interp = np.einsum("rk,rgk->rg", seg, np.sinc(tau[:, :, None] - n[:, None, :]))
    mag = np.abs(interp)
    j = mag.argmax(-1).clip(1, len(offsets) - 2)
    rows = np.arange(len(j))
    a, b, c = mag[rows, j - 1], mag[rows, j], mag[rows, j + 1]
    denom = a - 2 * b + c
    shift = np.where(denom != 0, 0.5 * (a - c) / np.where(denom != 0, denom, 1), 0.0)
    return (tau[rows, j] + shift.clip(-1, 1) * grid).reshape(shape)


def parabolic_arrival(rirs: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """(...) arrival times from ``acoustics.arrival_sample`` (peak plus a 3-point parabola)."""
    out = np.empty(expected.shape)
    for idx in np.ndindex(expected.shape):
        out[idx] = arrival_sample(rirs[idx], expected[idx])
    return out


def third_octave_bands(k=BAND_K) -> np.ndarray:
    """(K, 3) lower edge, centre, upper edge in Hz of base-2 third-octave bands 1 kHz * 2^(k/3)."""
    centre = 1000 * 2.0 ** (np.asarray(k, dtype=np.float64) / 3)
    return np.stack([centre * 2 ** (-1 / 6), centre, centre * 2 ** (1 / 6)], -1)


def magnitudes(rirs: np.ndarray, sample_rate: int, bands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw rfft magnitudes within the analysed range, and third-octave band amplitudes.

    Returns:
        raw (..., F) |H| of the bins from the lowest band edge to the highest; band (..., K)
        sqrt(mean |H|^2) over the bins of each band (energy-preserving smoothing).
    """
    spec = np.abs(np.fft.rfft(rirs.astype(np.float64), axis=-1))
    freq = np.fft.rfftfreq(rirs.shape[-1], 1 / sample_rate)
    in_range = (freq >= bands[0, 0]) & (freq < bands[-1, 2])
    band = np.stack(
        [np.sqrt(np.mean(spec[..., (freq >= lo) & (freq < hi)] ** 2, axis=-1)) for lo, _, hi in bands], -1
    )
    return spec[..., in_range], band


def per_row_lsd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B,) LSD of each room over all its (source, mic) rows, with spectral_loss (mean reduction)."""
    return np.array(
        [float(spectral_loss(a[i], b[i], metric="lsd", input_scale="linear")) for i in range(len(a))]
    )


def energy_key(lo_ms: float, hi_ms: float | None) -> str:
    return f"energy_{lo_ms:g}_{'end' if hi_ms is None else f'{hi_ms:g}'}ms_db"


def window_energy_db(
    rirs: np.ndarray, delay: np.ndarray, sample_rate: int, lo_ms: float, hi_ms: float | None
) -> np.ndarray:
    """Energy from ``lo_ms`` to ``hi_ms`` (None: the end) after the direct path, in dB re the
    direct path's energy (within ±2.5 ms, as in the DRR): (...) for RIRs (..., T) and delays (...)."""
    half = int(round(2.5e-3 * sample_rate))
    out = np.empty(delay.shape)
    for idx in np.ndindex(delay.shape):
        h, c = rirs[idx].astype(np.float64), int(round(delay[idx]))
        direct = np.sum(h[max(c - half, 0) : c + half + 1] ** 2)
        lo = c + int(round(lo_ms * 1e-3 * sample_rate))
        hi = None if hi_ms is None else c + int(round(hi_ms * 1e-3 * sample_rate))
        out[idx] = 10 * np.log10(max(np.sum(h[lo:hi] ** 2), 1e-300) / direct)
    return out


def diffuse_theory_db(
    rooms: Rooms, delay: np.ndarray, sample_rate: int, c: float, lo_s: float, hi_s: float | None, n_taps: int
) -> np.ndarray:
    """Energy from ``lo_s`` to ``hi_s`` (None: the RIR's end) after the direct path, in dB re the
    direct path's 1/d², of an ideal exponentially decaying diffuse field (Eyring).

    Image sources of density 4πd²/V with energy β^(2d/l)/d² each (β from the RT60 as in FRA-RIR)
    give an energy (4π/V) ∫ exp(-a d) dd over the distances sound travels in the window, with
    a = 6 ln 10 / (c RT60). Band-limiting scales direct and reverberant energy alike, so this is
    comparable with :func:`window_energy_db` and the DRR of any simulator. (B, S) for delays (B, S).
    """
    d = delay / sample_rate * c
    volume = np.prod(rooms.room_dim, axis=-1)[:, None]
    a = (6 * np.log(10) / (c * rooms.rt60))[:, None]
    end = c * n_taps / sample_rate
    start = d + c * lo_s
    stop = np.full_like(d, end) if hi_s is None else np.minimum(d + c * hi_s, end)
    energy = 4 * np.pi / volume / a * (np.exp(-a * start) - np.exp(-a * stop))
    return 10 * np.log10(energy * d**2)


def measure(rirs: np.ndarray, rooms: Rooms, sample_rate: int, c: float) -> dict[str, np.ndarray]:
    """Per-RIR measures of one simulator's RIRs (B, S, M, T)."""
    delay = geometric_delays(rooms, sample_rate, c)
    arrival_parabola = parabolic_arrival(rirs, delay)
    arrival = bandlimited_arrival(rirs, arrival_parabola)
    B, S = rirs.shape[:2]
    t20, t30, drr = (np.full((B, S), np.nan) for _ in range(3))
    for b in range(B):
        for s in range(S):
            h = rirs[b, s, 0]
            t20[b, s] = rt60(h, sample_rate, span_db=20)
            t30[b, s] = rt60(h, sample_rate, span_db=30)
            drr[b, s] = direct_to_reverberant_db(h, delay[b, s, 0], sample_rate)
    tdoa = lambda t: t[..., 1] - t[..., 0]  # noqa: E731
    windows = {
        energy_key(lo, hi): window_energy_db(rirs[:, :, 0], delay[..., 0], sample_rate, lo, hi)
        for lo, hi in ENERGY_WINDOWS_MS
    }
    n_taps, half = rirs.shape[-1], int(round(2.5e-3 * sample_rate))  # as direct_to_reverberant_db
    theory = {
        f"{energy_key(lo, hi)}_vs_theory": windows[energy_key(lo, hi)]
        - diffuse_theory_db(
            rooms, delay[..., 0], sample_rate, c, lo * 1e-3, None if hi is None else hi * 1e-3, n_taps
        )
        for lo, hi in ENERGY_WINDOWS_MS
    }
    drr_theory = -diffuse_theory_db(
        rooms, delay[..., 0], sample_rate, c, (half + 1) / sample_rate, None, n_taps
    )
    return {
        **windows,
        **theory,
        "drr_vs_theory_db": drr - drr_theory,
        "arrival_err": arrival - delay,  # (B, S, M) samples
        "arrival_err_parabola": arrival_parabola - delay,
        "tdoa_err": tdoa(arrival) - tdoa(delay),  # (B, S)
        "tdoa_err_parabola": tdoa(arrival_parabola) - tdoa(delay),
        "t20": t20,
        "t30": t30,
        "t20_rel": t20 / rooms.rt60[:, None] - 1,
        "t30_rel": t30 / rooms.rt60[:, None] - 1,
        "drr_db": drr,
    }


def stats_signed(x: np.ndarray) -> dict:
    """Median |x|, median x, 90th percentile and max of |x| (NaNs ignored and counted)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    return {
        "median_abs": float(np.median(np.abs(finite))),
        "median": float(np.median(finite)),
        "p90_abs": float(np.percentile(np.abs(finite), 90)),
        "max_abs": float(np.abs(finite).max()),
        "n": int(finite.size),
        "n_nan": int(x.size - finite.size),
    }
