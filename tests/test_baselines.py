"""Tests of dualmic.scoring.baselines: SRP-PHAT on synthetic anechoic mixtures, the constant guess."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dualmic.data.sources import source_signals
from dualmic.scoring.baselines import constant_angles, grid_peaks, srp_phat_angles, stft_frames

FS = 16000
C = 343.0
MICS = np.asarray(
    yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["simulate"]["mic_offsets"]
)
D = float(np.linalg.norm(MICS[1] - MICS[0]))


def direction(lateral_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Unit vector at ``lateral_deg`` from the mic axis (x), turned ``roll_deg`` about it."""
    lat, roll = np.radians(lateral_deg), np.radians(roll_deg)
    return np.array([np.cos(lat), np.sin(lat) * np.cos(roll), np.sin(lat) * np.sin(roll)])


def far_field(signal: np.ndarray, lateral_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Anechoic far-field plane wave at both mics: (2, n). Mic m hears s(t + u·r_m / c).

    Fractional delays by an FFT phase shift on a zero-padded signal.
    """
    n = len(signal)
    spec = np.fft.rfft(signal, 2 * n)
    freq = np.fft.rfftfreq(2 * n, 1 / FS)
    u = direction(lateral_deg, roll_deg)
    lead = MICS @ u / C  # seconds each mic hears the wave before the array centre
    return np.stack([np.fft.irfft(spec * np.exp(2j * np.pi * freq * t), 2 * n)[:n] for t in lead])


def mixture(signals: np.ndarray, laterals, rolls=None) -> np.ndarray:
    rolls = rolls if rolls is not None else [0.0] * len(laterals)
    return sum(far_field(s, a, r) for s, a, r in zip(signals, laterals, rolls, strict=True))


def white(n_src: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_src, n))


def srp(mix: np.ndarray, n_sources: int = 2) -> np.ndarray:
    return srp_phat_angles(mix, D, FS, 512, n_sources=n_sources, speed_of_sound=C, hop=160)


@pytest.mark.parametrize(
    ("angles", "rolls"),
    [((40.0, 120.0), (0.0, 0.0)), ((20.0, 75.0), (30.0, -60.0)), ((100.0, 160.0), (90.0, 0.0))],
    ids=["40-120", "20-75-elevated", "100-160-overhead"],
)
def test_srp_phat_two_white_sources(angles, rolls):
    """Finds both lateral angles, also for sources above the array (the grid angle is lateral)."""
    mix = mixture(white(2, FS, seed=int(angles[0])), angles, rolls)
    found = srp(mix[None])[0]
    assert np.all(np.abs(found - np.array(angles)) <= 5.0), found


def test_srp_phat_speech_like_sources_batch():
    dry = source_signals("synthetic", None, 1, 99, 0, 2, 2, 2 * FS, FS).astype(np.float64)
    pairs = [(40.0, 120.0), (65.0, 140.0)]
    mix = np.stack([mixture(dry[i], pair) for i, pair in enumerate(pairs)]).astype(np.float32)
    found = srp(mix)
    assert found.shape == (2, 2)
    assert np.all(np.abs(found - np.array(pairs)) <= 5.0), found


def test_srp_phat_single_source():
    mix = mixture(white(1, FS, seed=3), [65.0])[None]
    one = srp(mix, n_sources=1)
    assert one.shape == (1, 1) and abs(one[0, 0] - 65.0) <= 3.0
    two = srp(mix, n_sources=2)
    assert two.shape == (1, 2) and np.min(np.abs(two[0] - 65.0)) <= 3.0  # second peak: a side lobe


def test_srp_phat_side_is_mic_one_at_zero():
    """Lateral 0° is the mic-1 side: a source there is found near 0°, not 180°."""
    mix = mixture(white(1, FS, seed=4), [20.0])[None]
    assert srp(mix, n_sources=1)[0, 0] < 30.0


def test_grid_peaks_open_ends_and_duplicates():
    grid = np.arange(0.0, 181.0)
    x = grid
    both_ends = np.maximum(1.0 - x / 40, 0) + np.maximum(0.9 - (180 - x) / 40, 0)
    # pyroomacoustics' circular GridCircle.find_peaks returns only [0] here
    np.testing.assert_array_equal(grid_peaks(both_ends, grid, 2), [0.0, 180.0])
    single = np.exp(-((x - 70) ** 2) / 50)
    np.testing.assert_array_equal(grid_peaks(single, grid, 2), [70.0, 70.0])
    np.testing.assert_array_equal(grid_peaks(np.ones(181), grid, 2), [0.0, 0.0])


def test_stft_frames_layout():
    spec = stft_frames(np.zeros((2, 1600)), 512, 160)
    assert spec.shape == (2, 257, 1 + (1600 - 512) // 160)


def test_srp_phat_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, 2, samples\)"):
        srp(np.zeros((2, 1600)))


def test_constant_angles_is_per_slot_median_of_sorted():
    train = np.array([[10.0, 100.0], [120.0, 20.0], [30.0, 90.0]])  # sorted: [10,100],[20,120],[30,90]
    out = constant_angles(train, 4)
    assert out.shape == (4, 2)
    np.testing.assert_allclose(out, [[20.0, 100.0]] * 4)
