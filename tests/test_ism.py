from pathlib import Path

import numpy as np
import pyroomacoustics as pra
import pytest

from dualmic.core.params import load_params
from dualmic.sim.acoustics import arrival_sample, rt60
from dualmic.sim.batches import fra_config, room_spec
from dualmic.sim.fra import fra_rirs, image_draws
from dualmic.sim.ism import ism_absorption, ism_rirs
from dualmic.sim.rooms import sample_rooms

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup():
    sim = load_params(REPO / "params.yaml").simulate
    spec = room_spec(sim)
    spec = spec.__class__(**{**spec.__dict__, "rt60_range": (0.15, 0.3)})  # keep ISM fast
    rooms = sample_rooms(spec, 99, 0, 4)
    return sim, rooms, ism_rirs(rooms, sim.sample_rate, sim.n_taps, sim.speed_of_sound)


def test_ism_direct_path_at_geometric_delay_like_fra(setup):
    sim, rooms, ism = setup
    fra = fra_rirs(rooms, image_draws(99, 0, 4, 2, 2048), fra_config(sim)).numpy()
    d = np.linalg.norm(rooms.src_pos[:, :, None] - rooms.mic_pos[:, None], axis=-1)
    delay = d / sim.speed_of_sound * sim.sample_rate
    for idx in np.ndindex(delay.shape):
        assert abs(arrival_sample(ism[idx], delay[idx]) - delay[idx]) < 0.5
        assert abs(arrival_sample(ism[idx], delay[idx]) - arrival_sample(fra[idx], delay[idx])) < 0.5


def test_ism_decays_and_leaves_global_speed_of_sound_alone(setup):
    sim, rooms, ism = setup
    assert ism.shape == (4, 2, 2, sim.n_taps) and np.isfinite(ism).all()
    measured = np.array([rt60(ism[b, 0, 0], sim.sample_rate) for b in range(4)])
    assert np.all((measured > 0.3 * rooms.rt60) & (measured < 1.5 * rooms.rt60))
    assert pra.constants.get("c") == 343.0


def test_short_rt60_in_a_large_room_falls_back_to_eyring():
    dim = np.array([10.0, 6.0, 4.0])
    with pytest.raises(ValueError):
        pra.inverse_sabine(0.1, dim, c=343.0)
    absorption, order = ism_absorption(0.1, dim, 343.0)
    assert 0.5 < absorption < 1 and order >= 1
    assert ism_absorption(0.5, dim, 343.0) == pra.inverse_sabine(0.5, dim, c=343.0)
