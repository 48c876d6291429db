"""Fast physics guards of FRA-RIR against the image-source method (ISM), with the measures of
``benchmarks/fidelity.py`` on six small, short rooms (about 2 s in all).

tests/test_rir.py and tests/test_ism.py check arrivals with a parabolic peak (±0.5 to 1 sample)
and FRA's T30 on the default rooms; these tests use the benchmark's band-limited arrival estimate,
which resolves ~0.01 sample, so they hold the direct path and TDOA to a few hundredths of a
sample, and compare FRA with the ISM on decay, DRR and spectrum.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from dualmic.core.params import load_params
from dualmic.sim.batches import fra_config, room_spec
from dualmic.sim.fra import fra_rirs, image_draws
from dualmic.sim.ism import ism_rirs
from dualmic.sim.rooms import sample_rooms
from dualmic.spectral import spectral_loss

REPO = Path(__file__).resolve().parents[1]
N_ROOMS, SEED = 6, 12
N_TAPS = 6400  # 0.4 s at 16 kHz: the decays of RT60 <= 0.35 s reach -35 dB well before the end


from dualmic.sim import fidelity as F  # noqa: E402


@pytest.fixture(scope="module")
def rooms_and_rirs():
    sim = load_params(REPO / "params.yaml").simulate
    # small rooms with short RT60 keep the ISM (max order from the RT60) to about a second
    spec = dataclasses.replace(room_spec(sim), room_dim_max=(6.0, 5.0, 3.5), rt60_range=(0.15, 0.35))
    cfg = dataclasses.replace(fra_config(sim), n_taps=N_TAPS)
    rooms = sample_rooms(spec, SEED, 0, N_ROOMS)
    fra = fra_rirs(rooms, image_draws(SEED, 0, N_ROOMS, sim.n_sources, cfg.n_images), cfg).numpy()
    ism = ism_rirs(rooms, sim.sample_rate, N_TAPS, sim.speed_of_sound)
    fs, c = sim.sample_rate, sim.speed_of_sound
    return sim, rooms, fra, ism, F.measure(fra, rooms, fs, c), F.measure(ism, rooms, fs, c)


@pytest.mark.parametrize("frac", [0.0, 0.13, 0.5, 0.77])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_bandlimited_arrival_estimator_finds_fractional_delays(frac, sign):
    n = np.arange(400)
    tau = 100 + frac
    h = sign * 0.85 * np.sinc(0.85 * (n - tau))  # band-limited below Nyquist, like both simulators
    h += 0.3 * np.sinc(0.85 * (n - tau - 37.4))  # a later reflection outside the search range
    est = F.bandlimited_arrival(h[None], np.array([tau + 0.4]))[0]  # coarse estimate 0.4 sample off
    assert abs(est - tau) < 0.01
    # the parabola through the peak samples (acoustics.arrival_sample) is far coarser
    assert abs(F.parabolic_arrival(h[None], np.array([tau]))[0] - tau) < 0.5


def test_direct_path_arrival_of_fra_and_ism_at_d_over_c(rooms_and_rirs):
    _, _, _, _, fra_m, ism_m = rooms_and_rirs
    # FRA puts a symmetric band-limited impulse at d/c: exact up to float32 (measured 2e-4)
    assert np.abs(fra_m["arrival_err"]).max() < 0.02
    # the ISM's windowed-sinc impulse and its nearby reflections shift the peak by <= ~0.016
    assert np.abs(ism_m["arrival_err"]).max() < 0.05
    assert np.abs(fra_m["arrival_err"] - ism_m["arrival_err"]).max() < 0.05


def test_tdoa_matches_geometry_to_a_fraction_of_a_sample(rooms_and_rirs):
    _, _, _, _, fra_m, ism_m = rooms_and_rirs
    assert np.abs(fra_m["tdoa_err"]).max() < 0.02
    assert np.abs(ism_m["tdoa_err"]).max() < 0.05


def test_fra_decay_matches_target_rt60_and_is_closer_than_the_ism(rooms_and_rirs):
    _, _, _, _, fra_m, ism_m = rooms_and_rirs
    t30, t20 = np.abs(fra_m["t30_rel"]), np.abs(fra_m["t20_rel"])
    assert np.median(t30) < 0.15 and np.median(t20) < 0.15, (np.median(t30), np.median(t20))
    assert t30.max() < 0.25
    # the ISM's Sabine-derived absorption decays ~10 % fast in these rooms; FRA follows Eyring
    assert np.median(t30) <= np.median(np.abs(ism_m["t30_rel"]))


def test_fra_drr_close_to_the_ism(rooms_and_rirs):
    _, _, _, _, fra_m, ism_m = rooms_and_rirs
    fra_drr, ism_drr = fra_m["drr_db"], ism_m["drr_db"]
    assert np.isfinite(fra_drr).all() and np.isfinite(ism_drr).all()
    # measured on five room sets: |median difference| 0.8-1.4 dB (FRA lower: the ISM decays faster)
    assert abs(np.median(fra_drr) - np.median(ism_drr)) < 3.0
    assert np.median(np.abs(fra_drr - ism_drr)) < 3.0


def test_band_smoothed_spectra_of_fra_and_ism_agree(rooms_and_rirs):
    sim, _, fra, ism, _, _ = rooms_and_rirs
    bands = F.third_octave_bands()
    (fra_raw, fra_band), (ism_raw, ism_band) = (F.magnitudes(x, sim.sample_rate, bands) for x in (fra, ism))
    band_lsd = float(spectral_loss(fra_band, ism_band, metric="lsd", input_scale="linear"))
    raw_lsd = float(spectral_loss(fra_raw, ism_raw, metric="lsd", input_scale="linear"))
    # measured: bands 2.3-2.9 dB, raw bins 6.6-7.1 dB (random-phase tails differ bin by bin)
    assert band_lsd < 4.0 and band_lsd < raw_lsd
    # no overall level offset: the mean band level difference stays within 2 dB
    assert abs(np.mean(20 * np.log10(fra_band / ism_band))) < 2.0


def test_fra_reverberant_energy_matches_the_eyring_diffuse_field(rooms_and_rirs):
    """FRA's image weights (how many images each draw stands for, the jitter correction) must give
    the energy of an exponentially decaying diffuse field: independent of the ISM, whose decay is
    faster in these rooms (its late energy is 3.5-5 dB below the theory)."""
    _, _, _, _, fra_m, _ = rooms_and_rirs
    late = fra_m["energy_50_endms_db_vs_theory"]  # measured: median within 0.1 dB, max 0.5-0.7 dB
    assert abs(np.median(late)) < 0.5 and np.abs(late).max() < 1.5
    assert abs(np.median(fra_m["drr_vs_theory_db"])) < 1.5  # measured +0.1 to +0.5 dB
