from pathlib import Path

import numpy as np
import pytest

from dualmic.core.params import load_params
from dualmic.sim.batches import room_spec
from dualmic.sim.rooms import Rooms, sample_rooms

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sim():
    return load_params(REPO / "params.yaml").simulate


@pytest.fixture(scope="module")
def rooms(sim):
    return sample_rooms(room_spec(sim), sim.splits["eval"].seed, 0, 200)


def test_rooms_respect_the_sampling_box_and_walls(sim, rooms):
    assert np.all(rooms.room_dim >= sim.room_dim_min) and np.all(rooms.room_dim <= sim.room_dim_max)
    assert np.all((rooms.rt60 >= sim.rt60_range[0]) & (rooms.rt60 <= sim.rt60_range[1]))
    margin = sim.min_wall_distance + sim.array_radius_m
    assert np.all(rooms.array_center >= margin - 1e-9)
    assert np.all(rooms.array_center <= rooms.room_dim - margin + 1e-9)
    src = rooms.src_pos
    assert np.all(src >= sim.min_wall_distance)
    assert np.all(src <= rooms.room_dim[:, None, :] - sim.min_wall_distance)
    dist = np.linalg.norm(src - rooms.array_center[:, None], axis=-1)
    assert np.all((dist >= sim.src_distance_range[0]) & (dist <= sim.src_distance_range[1]))


def test_array_is_rotated_about_z_with_fixed_geometry(rooms):
    rel = rooms.mic_pos - rooms.array_center[:, None]
    np.testing.assert_allclose(np.linalg.norm(rel, axis=-1), 0.05, atol=1e-12)
    axis = rel[:, 1] - rel[:, 0]
    np.testing.assert_allclose(axis[:, 2], 0, atol=1e-12)
    heading = np.degrees(np.arctan2(axis[:, 1], axis[:, 0])) % 360
    err = (heading - rooms.array_rot_deg + 180) % 360 - 180
    np.testing.assert_allclose(err, 0, atol=1e-9)
    assert np.ptp(rooms.array_rot_deg) > 300  # rotations really vary


def test_lateral_label_is_what_the_two_mics_observe(rooms):
    """Far-field: cos(lateral) = path difference / mic spacing."""
    frame = rooms.to_frame()
    for k in range(2):
        d = np.linalg.norm(rooms.src_pos[:, k, None] - rooms.mic_pos, axis=-1)
        far = frame[f"src{k}_distance"].to_numpy() > 2.0
        cos_tdoa = (d[:, 0] - d[:, 1]) / 0.1
        cos_label = np.cos(np.radians(frame[f"src{k}_lateral_deg"].to_numpy()))
        np.testing.assert_allclose(cos_tdoa[far], cos_label[far], atol=0.02)


def test_same_seed_same_rooms_regardless_of_chunking(sim):
    spec, seed = room_spec(sim), sim.splits["train"].seed
    whole = sample_rooms(spec, seed, 0, 10)
    part = sample_rooms(spec, seed, 4, 6)
    np.testing.assert_array_equal(whole.src_pos[4:], part.src_pos)
    np.testing.assert_array_equal(whole.room_dim[4:], part.room_dim)


def test_train_and_eval_rooms_are_disjoint(sim):
    """No eval room repeats a train room: every geometry value of the two full splits differs."""
    spec = room_spec(sim)
    train = sample_rooms(spec, sim.splits["train"].seed, 0, sim.splits["train"].n_rooms)
    evals = sample_rooms(spec, sim.splits["eval"].seed, 0, sim.splits["eval"].n_rooms)

    def keys(r: Rooms):
        return {
            tuple(np.round(np.r_[d, c, s.ravel()], 6))
            for d, c, s in zip(r.room_dim, r.array_center, r.src_pos, strict=True)
        }

    assert len(keys(train)) == len(train)
    assert keys(train).isdisjoint(keys(evals))
    assert np.intersect1d(train.rt60, evals.rt60).size == 0
    assert np.intersect1d(train.src_pos.ravel(), evals.src_pos.ravel()).size == 0


def test_rooms_csv_round_trip(sim, rooms):
    back = Rooms.from_frame(rooms.to_frame(), np.asarray(sim.mic_offsets))
    np.testing.assert_allclose(back.mic_pos, rooms.mic_pos, atol=1e-12)
    np.testing.assert_array_equal(back.src_pos, rooms.src_pos)
    expected = [
        "room_x",
        "room_y",
        "room_z",
        "rt60",
        "array_x",
        "array_y",
        "array_z",
        "array_rot_deg",
    ]
    for k in range(2):
        expected += [f"src{k}_{c}" for c in ("x", "y", "z", "distance", "azimuth_deg", "lateral_deg")]
    for k in range(sim.noise_sources):  # positions of the noise sources, after the talkers
        expected += [f"noise{k}_{c}" for c in ("x", "y", "z")]
    assert list(rooms.to_frame().columns) == expected


def test_noise_positions_leave_the_rooms_as_they_were_and_keep_off_the_walls(sim):
    plain = sample_rooms(room_spec(sim.model_copy(update={"noise_sources": 0})), 77, 0, 40)
    spec = room_spec(sim.model_copy(update={"noise_sources": 2}))
    noisy = sample_rooms(spec, 77, 0, 40)
    np.testing.assert_array_equal(noisy.src_pos, plain.src_pos)
    np.testing.assert_array_equal(noisy.room_dim, plain.room_dim)
    assert plain.noise_pos is None and noisy.noise_pos.shape == (40, 2, 3)
    margin = sim.min_wall_distance - 1e-9
    assert (noisy.noise_pos >= margin).all() and (noisy.noise_pos <= noisy.room_dim[:, None] - margin).all()
    dist = np.linalg.norm(noisy.noise_pos - noisy.array_center[:, None], axis=-1)
    lo, hi = sim.src_distance_range
    assert (dist >= lo - 1e-9).all() and (dist <= hi + 1e-9).all()
    assert not np.allclose(noisy.noise_pos[:, 0], noisy.src_pos[:, 0])
    back = Rooms.from_frame(noisy.to_frame(), np.asarray(sim.mic_offsets))
    np.testing.assert_array_equal(back.noise_pos, noisy.noise_pos)


def test_noise_position_rirs_start_at_their_geometric_delay(sim):
    import torch

    from dualmic.sim.batches import simulate_batches

    small = sim.model_copy(
        update={
            "noise_sources": 1,
            "batch_size": 4,
            "splits": {"eval": sim.splits["eval"].model_copy(update={"n_rooms": 4})},
            "fra": sim.fra.model_copy(update={"n_images": 512}),
        }
    )
    ((_, rooms, rirs),) = simulate_batches(small, "eval", torch.device("cpu"), noise=True)
    ((_, talkers, talker_rirs),) = simulate_batches(small, "eval", torch.device("cpu"))
    assert rirs.shape == talker_rirs.shape[:1] + (1,) + talker_rirs.shape[2:]
    delay = np.linalg.norm(rooms.src_pos[:, :, None] - rooms.mic_pos[:, None], axis=-1)
    expected = delay / sim.speed_of_sound * sim.sample_rate
    peak = np.argmax(np.abs(rirs), axis=-1)
    assert np.all(np.abs(peak - expected) <= 1.0)
    np.testing.assert_array_equal(rooms.src_pos, talkers.noise_pos)
