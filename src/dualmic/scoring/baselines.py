"""Reference methods the model is scored against: SRP-PHAT and a constant guess.

SRP-PHAT (pyroomacoustics' ``doa.algorithms["SRP"]``) sees the two-mic mixture audio; the
constant baseline sees nothing and always answers the training set's median angles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal import get_window

# Full band by default: with 10 cm between the mics the whole TDOA range is ~0.3 ms, so the
# GCC-PHAT peaks of two talkers only separate with bandwidth well above 3.5 kHz (spatial
# aliasing above c / 2d ≈ 1.7 kHz averages out across frequencies). On synthetic anechoic
# two-source mixtures [300, 3500] Hz scored MAE ≈ 20°, [300, 7500] Hz ≈ 5°.
SRP_FREQ_RANGE_HZ = (300.0, 7500.0)


def stft_frames(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """One room's STFT in pyroomacoustics' layout: audio (M, samples) → (M, n_fft/2+1, frames).

    Periodic Hann window, frames fully inside the signal (no padding).
    """
    audio = np.asarray(audio, dtype=np.float64)
    n = audio.shape[-1]
    if n < n_fft:
        audio = np.pad(audio, ((0, 0), (0, n_fft - n)))
        n = n_fft
    n_frames = 1 + (n - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = audio[:, index] * get_window("hann", n_fft)
    return np.fft.rfft(frames, axis=-1).transpose(0, 2, 1)


def grid_peaks(values: np.ndarray, grid_deg: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest local maxima of a response on an open (non-circular) grid, sorted.

    A point is a peak when it is above its left neighbour and not below its right one (the
    first point of a plateau); the grid's end points have one neighbour each. If fewer than
    ``k`` peaks exist, the highest is repeated.

    pyroomacoustics' ``GridCircle.find_peaks`` wraps the grid around as a full circle (it
    appends the first 10 values after the last), which on a 0..180° grid compares 180° with
    0°: with maxima at both ends it returns only one of them. Hence this function.
    """
    v = np.asarray(values, dtype=np.float64)
    left = np.concatenate(([-np.inf], v[:-1]))
    right = np.concatenate((v[1:], [-np.inf]))
    idx = np.flatnonzero((v > left) & (v >= right))
    if len(idx) == 0:  # all NaN
        idx = np.array([0])
    idx = idx[np.argsort(-v[idx], kind="stable")][:k]
    idx = np.concatenate((idx, np.full(k - len(idx), idx[0])))
    return np.sort(np.asarray(grid_deg, dtype=np.float64)[idx])


def srp_phat_angles(
    mix: np.ndarray,
    mic_distance_m: float,
    sample_rate: int,
    n_fft: int,
    n_sources: int = 2,
    grid_step_deg: float = 1.0,
    speed_of_sound: float = 343.0,
    hop: int | None = None,
    freq_range_hz: tuple[float, float] = SRP_FREQ_RANGE_HZ,
    progress: Callable[[int], None] | None = None,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """SRP-PHAT angles of every room's mixture: mix (N, 2, samples) → (N, n_sources) degrees, sorted.

    The mics sit in the array frame at x = ∓d/2 (mic 0 at -d/2, mic 1 at +d/2) on a 2-D plane,
    ``R = [[-d/2, d/2], [0, 0]]``, and SRP-PHAT (far field) is steered over the azimuth grid
    0, step, …, 180°. A far-field direction at azimuth φ of that plane reaches the mics with
    TDOA d·cos φ / c, so on a linear array along x the grid's azimuth *is* the angle to the mic
    axis: dualmic's lateral angle (0° = mic-1 side). Scored against ``azimuth`` labels it is
    wrong exactly where the model must be too: for sources above or below the array, whose
    azimuth two mics cannot observe.

    pyroomacoustics takes STFT frames as (M, F, S) = (mics, n_fft/2+1, frames); the whole
    mixture is one call (all frames are snapshots). Peaks are picked by :func:`grid_peaks`,
    not by pyroomacoustics (whose peak search assumes a full circle). If the response has fewer
    than ``n_sources`` peaks, the highest is repeated.

    Args:
        mix: (N, 2, samples) two-mic audio.
        mic_distance_m: distance between the mics.
        sample_rate: Hz.
        n_fft: STFT size (Hann window of the same length).
        n_sources: peaks to return per room.
        grid_step_deg: spacing of the steering grid.
        speed_of_sound: m/s.
        hop: STFT hop; None = n_fft // 4.
        freq_range_hz: [min, max] band; max is capped below Nyquist.
        progress: called with 1 after each room (e.g. a progress bar's advance).
        counts: (N,) sources to find per room (at most n_sources; the rest of the row is NaN);
            None = n_sources everywhere. SRP-PHAT does not count: it is told the count.
    """
    from pyroomacoustics.doa import algorithms

    mix = np.asarray(mix)  # a memmap stays on disk; rooms are read one by one
    if mix.ndim != 3 or mix.shape[1] != 2:
        raise ValueError(f"mix must be (N, 2, samples), got {mix.shape}")
    hop = hop or n_fft // 4
    grid = np.arange(0.0, 180.0 + grid_step_deg / 2, grid_step_deg)
    grid = grid[grid <= 180.0 + 1e-9]
    mics = np.array([[-mic_distance_m / 2, mic_distance_m / 2], [0.0, 0.0]])
    srp = algorithms["SRP"](
        mics, sample_rate, n_fft, c=speed_of_sound, num_src=n_sources, azimuth=np.radians(grid), dim=2
    )
    band = [float(freq_range_hz[0]), min(float(freq_range_hz[1]), 0.49 * sample_rate)]
    out = np.full((len(mix), n_sources), np.nan, dtype=np.float64)
    wanted = np.full(len(mix), n_sources) if counts is None else np.minimum(counts, n_sources)
    for i in range(len(mix)):
        k = int(wanted[i])
        if k > 0:
            spec = stft_frames(mix[i], n_fft, hop)
            srp.locate_sources(spec, num_src=k, freq_range=band)
            out[i, :k] = grid_peaks(srp.grid.values, grid, k)
        if progress is not None:
            progress(1)
    return out


def constant_angles(train_angles: np.ndarray, n: int, counts: np.ndarray | None = None) -> np.ndarray:
    """A constant guess per room: (n, S). A room of k sources gets the per-slot medians of the
    training rooms with k sources (sorted angles; NaN = no source), or where there are none the
    median of every training angle; ``counts`` None = S sources everywhere."""
    train = np.sort(np.asarray(train_angles, dtype=np.float64), axis=1)
    if train.ndim != 2 or len(train) == 0 or not np.isfinite(train).any():
        raise ValueError(f"train angles must be a non-empty (M, S) array, got {train.shape}")
    n_slots = train.shape[1]
    k_train = np.isfinite(train).sum(axis=1)
    overall = float(np.median(train[np.isfinite(train)]))
    wanted = np.full(n, n_slots) if counts is None else np.minimum(np.asarray(counts), n_slots)
    out = np.full((n, n_slots), np.nan)
    for k in range(1, n_slots + 1):
        rows = wanted == k
        same = train[k_train == k, :k]
        out[rows, :k] = np.median(same, axis=0) if len(same) else overall
    return out


def method_angles(
    model_angles: np.ndarray,
    mixture: np.ndarray | None,
    mic_distance_m: float,
    p,
    train_angles: np.ndarray,
    progress: Callable[[int], None] | None = None,
    counts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Sorted angles (N, S) of every scored method on the same mixtures: the model's (given),
    SRP-PHAT's on ``mixture`` (N, 2, samples; skipped when None) and the constant guess (the
    train set's median angles). The baselines are told each room's source count (``counts``,
    None = S). ``p`` is the :class:`~dualmic.core.params.Params`."""
    pred = {"model": model_angles}
    if mixture is not None:
        pred["srp_phat"] = srp_phat_angles(
            mixture,
            mic_distance_m,
            p.simulate.sample_rate,
            p.features.n_fft,
            n_sources=model_angles.shape[1],
            speed_of_sound=p.simulate.speed_of_sound,
            hop=p.features.hop,
            progress=progress,
            counts=counts,
        )
    pred["constant"] = constant_angles(train_angles, len(model_angles), counts)
    return pred
