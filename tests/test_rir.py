from pathlib import Path

import numpy as np
import pytest
import torch

from dualmic.core.params import load_params
from dualmic.sim.acoustics import arrival_sample, rt60
from dualmic.sim.batches import fra_config, room_spec
from dualmic.sim.fra import fra_rirs, image_draws
from dualmic.sim.rooms import sample_rooms

REPO = Path(__file__).resolve().parents[1]

N_ROOMS = 24


@pytest.fixture(scope="module")
def setup():
    sim = load_params(REPO / "params.yaml").simulate
    seed = sim.splits["eval"].seed
    rooms = sample_rooms(room_spec(sim), seed, 0, N_ROOMS)
    draws = image_draws(seed, 0, N_ROOMS, sim.n_sources, sim.fra.n_images)
    cfg = fra_config(sim)
    rirs = fra_rirs(rooms, draws, cfg).numpy()
    return sim, rooms, draws, cfg, rirs


def _direct_delay(sim, rooms):
    """(B, S, M) geometric direct-path delay in samples."""
    d = np.linalg.norm(rooms.src_pos[:, :, None] - rooms.mic_pos[:, None], axis=-1)
    return d / sim.speed_of_sound * sim.sample_rate, d


def test_shape_dtype_finite(setup):
    sim, rooms, _, cfg, rirs = setup
    assert rirs.shape == (N_ROOMS, 2, 2, cfg.n_taps) and rirs.dtype == np.float32
    assert np.isfinite(rirs).all()


def test_direct_path_peak_at_geometric_delay_with_1_over_d_gain(setup):
    sim, rooms, _, _, rirs = setup
    delay, dist = _direct_delay(sim, rooms)
    for idx in np.ndindex(delay.shape):
        h, t = rirs[idx], delay[idx]
        first = int(np.argmax(np.abs(h[: int(t) + 8])))
        assert abs(first - t) <= 1.0, f"{idx}: peak at {first}, geometric {t:.2f}"
        # nothing of note arrives before the direct sound
        assert np.abs(h[: max(int(t) - 8, 0)]).max(initial=0) < 0.05 * np.abs(h[first])
        # band-limited fractional impulse: peak between sinc(0.5) and 1 of 1/d
        assert 0.6 < np.abs(h[first]) * dist[idx] < 1.05


def test_inter_mic_direct_path_delay_matches_geometric_tdoa(setup):
    sim, rooms, _, _, rirs = setup
    delay, _ = _direct_delay(sim, rooms)
    errors = []
    for b in range(N_ROOMS):
        for s in range(2):
            t0 = arrival_sample(rirs[b, s, 0], delay[b, s, 0])
            t1 = arrival_sample(rirs[b, s, 1], delay[b, s, 1])
            errors.append((t1 - t0) - (delay[b, s, 1] - delay[b, s, 0]))
    errors = np.abs(errors)
    assert np.median(errors) < 0.25 and errors.max() < 1.0


def test_schroeder_rt60_matches_target(setup):
    sim, rooms, _, _, rirs = setup
    measured = np.array([[rt60(rirs[b, s, 0], sim.sample_rate) for s in range(2)] for b in range(N_ROOMS)])
    rel = np.abs(measured / rooms.rt60[:, None] - 1)
    assert np.median(rel) < 0.10, f"median relative RT60 error {np.median(rel):.3f}"
    assert np.percentile(rel, 90) < 0.20


def test_longer_rt60_gives_longer_decay(setup):
    sim, rooms, draws, cfg, _ = setup
    short = rooms.__class__(**{**rooms.__dict__, "rt60": np.full(N_ROOMS, 0.2)})
    long = rooms.__class__(**{**rooms.__dict__, "rt60": np.full(N_ROOMS, 0.6)})
    t_short = np.median([rt60(h, sim.sample_rate) for h in fra_rirs(short, draws, cfg).numpy()[:, 0, 0]])
    t_long = np.median([rt60(h, sim.sample_rate) for h in fra_rirs(long, draws, cfg).numpy()[:, 0, 0]])
    assert 0.17 < t_short < 0.23 and 0.54 < t_long < 0.66


def test_same_inputs_bit_identical_and_batching_invariant(setup):
    sim, rooms, draws, cfg, rirs = setup
    again = fra_rirs(rooms, image_draws(sim.splits["eval"].seed, 0, N_ROOMS, 2, cfg.n_images), cfg)
    assert np.array_equal(again.numpy(), rirs)
    seed = sim.splits["eval"].seed
    torch.testing.assert_close(image_draws(seed, 5, 3, 2, 64), image_draws(seed, 0, 8, 2, 64)[5:])
    part = sample_rooms(room_spec(sim), seed, 5, 3)
    sub = fra_rirs(part, draws[5:8], cfg).numpy()
    np.testing.assert_allclose(sub, rirs[5:8], rtol=0, atol=1e-6)


def test_different_split_seeds_give_different_images(setup):
    torch.testing.assert_close(image_draws(1, 0, 1, 1, 16), image_draws(1, 0, 1, 1, 16))
    assert not torch.equal(image_draws(1, 0, 1, 1, 16), image_draws(2, 0, 1, 1, 16))


@pytest.mark.gpu
def test_cpu_and_cuda_agree(setup):
    _, rooms, draws, cfg, rirs = setup
    gpu = fra_rirs(rooms, draws, cfg, "cuda").cpu().numpy()
    assert np.abs(gpu - rirs).max() < 1e-4 * np.abs(rirs).max()


def test_two_rate_accumulation_matches_the_oversampled_one(setup):
    """simulate.fra.early_ms: the direct path and early reflections oversampled, later ones at the
    sample rate with equalised linear weights. Same direct sound, energy, bands and decay as
    accumulating everything oversampled."""
    import dataclasses

    from dualmic.sim.batches import early_taps

    sim, rooms, draws, cfg, _ = setup
    rirs = fra_rirs(rooms, draws, dataclasses.replace(cfg, early_taps=None)).numpy()  # oversampled
    fast_sim = sim.model_copy(update={"fra": sim.fra.model_copy(update={"early_ms": 20.0})})
    n_early = early_taps(fast_sim)
    assert n_early == int(np.ceil(((5.0 + 0.05) / 343.0 + 0.02) * sim.sample_rate))
    fast = fra_rirs(rooms, draws, dataclasses.replace(cfg, early_taps=n_early)).numpy()
    assert fast.shape == rirs.shape and np.isfinite(fast).all()
    delay, _ = _direct_delay(sim, rooms)
    for b in range(N_ROOMS):
        for s in range(2):
            assert (
                abs(
                    arrival_sample(fast[b, s, 0], delay[b, s, 0])
                    - arrival_sample(rirs[b, s, 0], delay[b, s, 0])
                )
                < 0.05
            )
    late = slice(n_early, None)
    ratio_db = 10 * np.log10((fast[..., late] ** 2).sum(-1) / (rirs[..., late] ** 2).sum(-1))
    assert abs(np.median(ratio_db)) < 0.1 and np.abs(ratio_db).max() < 0.5
    freq = np.fft.rfftfreq(rirs.shape[-1] - n_early, 1 / sim.sample_rate)
    a = np.abs(np.fft.rfft(fast[..., late], axis=-1)) ** 2
    b = np.abs(np.fft.rfft(rirs[..., late], axis=-1)) ** 2
    for lo, hi in [(100, 1000), (1000, 3000), (3000, 6000), (6000, 7000)]:
        band = (freq >= lo) & (freq < hi)
        assert abs(10 * np.log10(a[..., band].sum() / b[..., band].sum())) < 0.3, (lo, hi)
    t_fast = np.array([rt60(fast[b, 0, 0], sim.sample_rate) for b in range(N_ROOMS)])
    t_ref = np.array([rt60(rirs[b, 0, 0], sim.sample_rate) for b in range(N_ROOMS)])
    assert np.median(np.abs(t_fast / t_ref - 1)) < 0.02
