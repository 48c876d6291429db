"""Free-field splits with some rooms heard through a head (simulate.splits.<split>.head_fraction),
and the conditions test's binaural condition: which rooms, their receivers, their RIRs.

The head is the MIT KEMAR measurement Debian's libmysofa1 ships (``make hrtf-deps``).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tests_support import direct_ild_db, tiny_raw_params

from dualmic.core.params import Params, load_params
from dualmic.sim.batches import room_spec, simulate_batches
from dualmic.sim.rooms import Rooms, sample_rooms

REPO = Path(__file__).resolve().parents[1]
KEMAR = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
FS = 16000
pytestmark = pytest.mark.skipif(not KEMAR.is_file(), reason="MIT KEMAR HRIRs not installed (make hrtf-deps)")


def _sim(head_fraction: float, n_rooms: int = 24, **changes):
    base = load_params(REPO / "params.yaml").simulate
    train = base.splits["train"].model_copy(update={"n_rooms": n_rooms, "head_fraction": head_fraction})
    return base.model_copy(
        update={
            "splits": {**base.splits, "train": train},
            "array": base.array.model_copy(update={"sofa": str(KEMAR)}),
            "batch_size": 8,
            **changes,
        }
    )


def test_which_rooms_have_a_head_is_a_fixed_fraction_drawn_per_room():
    sim = _sim(0.3, n_rooms=400)
    spec = room_spec(sim, "train")
    seed = sim.splits["train"].seed
    whole = sample_rooms(spec, seed, 0, 400)
    assert whole.head.dtype == bool and 0.22 < whole.head.mean() < 0.38
    parts = np.concatenate([sample_rooms(spec, seed, s, 50).head for s in range(0, 400, 50)])
    np.testing.assert_array_equal(parts, whole.head)  # chunking does not matter
    assert sample_rooms(room_spec(_sim(0.0), "train"), seed, 0, 10).head is None
    assert sample_rooms(room_spec(_sim(1.0), "train"), seed, 0, 10).head.all()


def test_heads_leave_the_rooms_and_talkers_as_they_were_and_put_the_ears_in():
    seed = _sim(0.0).splits["train"].seed
    plain = sample_rooms(room_spec(_sim(0.0), "train"), seed, 0, 64)
    mixed = sample_rooms(room_spec(_sim(0.5), "train"), seed, 0, 64)
    for f in ("room_dim", "rt60", "array_center", "array_rot_deg", "src_pos", "noise_pos"):
        np.testing.assert_array_equal(getattr(plain, f), getattr(mixed, f))
    spacing = np.linalg.norm(mixed.mic_pos[:, 1] - mixed.mic_pos[:, 0], axis=-1)
    np.testing.assert_allclose(spacing[~mixed.head], 0.10, atol=1e-12)  # the free-field pair
    assert np.all(np.abs(spacing[mixed.head] - 0.18) < 0.01)  # the KEMAR's ears
    centre = mixed.mic_pos.mean(1)
    np.testing.assert_allclose(centre, mixed.array_center, atol=1e-12)  # both about the same centre
    np.testing.assert_array_equal(mixed.angles("lateral"), plain.angles("lateral"))  # labels unchanged


def test_rooms_csv_keeps_which_rooms_have_a_head_and_their_ears():
    sim = _sim(0.5)
    rooms = sample_rooms(room_spec(sim, "train"), sim.splits["train"].seed, 0, 32)
    table = rooms.to_frame()
    assert set(table["head"]) == {0, 1}
    back = Rooms.from_frame(table, sim.mic_offsets)
    np.testing.assert_array_equal(back.head, rooms.head)
    np.testing.assert_allclose(back.mic_pos, rooms.mic_pos, atol=1e-9)
    assert "head" not in sample_rooms(room_spec(_sim(0.0), "train"), 1, 0, 4).to_frame().columns


def test_a_mixed_split_renders_each_room_through_its_own_receivers():
    mixed = list(simulate_batches(_sim(0.5), "train", torch.device("cpu")))
    plain = list(simulate_batches(_sim(0.0), "train", torch.device("cpu")))
    rooms = [r for _, r, _ in mixed]
    head = np.concatenate([r.head for r in rooms])
    rirs = np.concatenate([b for _, _, b in mixed])
    free = np.concatenate([b for _, _, b in plain])
    assert head.any() and (~head).any()
    # a free-field room is the same with or without heads in its split (to float rounding)
    np.testing.assert_allclose(rirs[~head], free[~head], atol=1e-6)
    # a head room is the binaural simulation of that room: big level differences at 3-6 kHz for
    # sources off the median plane, louder at the nearer ear; a free-field pair has none
    lateral = np.concatenate([r.angles("lateral") for r in rooms])
    ild = direct_ild_db(rirs)
    side = np.abs(lateral - 90) > 45
    assert np.median(np.abs(ild[head][side[head]])) > 4.0
    assert np.median(np.abs(ild[~head][side[~head]])) < 1.0
    right = (lateral < 45) & head[:, None]  # nearer the right ear (mic 1)
    assert np.mean(ild[right] > 0) > 0.8
    again = np.concatenate([b for _, _, b in simulate_batches(_sim(0.5), "train", torch.device("cpu"))])
    np.testing.assert_array_equal(again, rirs)  # deterministic


def test_noise_positions_of_a_head_room_are_heard_through_the_head_too():
    sim = _sim(1.0, n_rooms=8, noise_sources=1)
    rooms, rirs = next((r, b) for _, r, b in simulate_batches(sim, "train", torch.device("cpu"), noise=True))
    assert rooms.head.all()
    lateral = Rooms(
        rooms.room_dim, rooms.rt60, rooms.array_center, rooms.array_rot_deg, rooms.mic_pos, rooms.src_pos
    ).angles("lateral")
    ild = direct_ild_db(rirs)
    side = np.abs(lateral - 90) > 45
    assert side.any() and np.median(np.abs(ild[side])) > 4.0


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"head_fraction": 1.5}, "less than or equal to 1"),
        ({"head_fraction": -0.1}, "greater than or equal to 0"),
    ],
)
def test_bad_head_fractions_are_refused(changes, message):
    raw = load_params(REPO / "params.yaml").model_dump()
    raw["simulate"]["splits"]["train"].update(changes)
    with pytest.raises(ValueError, match=message):
        Params.model_validate(raw)


def test_a_head_array_ignores_head_fraction_and_a_free_field_one_needs_the_sofa():
    """With simulate.array.kind hrtf every room is a head already: head_fraction adds nothing
    (the binaural command works on the default params); a free-field array with heads mixed in
    needs the head's file."""
    raw = load_params(REPO / "params.yaml").model_dump()
    raw["simulate"]["splits"]["train"]["head_fraction"] = 0.3
    raw["simulate"]["array"].update(kind="hrtf", sofa=str(KEMAR))
    raw["simulate"]["mic_offsets"] = [[-0.09, 0.0, 0.0], [0.09, 0.0, 0.0]]
    sim = Params.model_validate(raw).simulate
    assert sim.head_fraction_for("train") == 0.0 and room_spec(sim, "train").head_fraction == 0.0
    raw["simulate"]["array"].update(kind="free_field", sofa=None)
    raw["simulate"]["mic_offsets"] = [[-0.05, 0.0, 0.0], [0.05, 0.0, 0.0]]
    with pytest.raises(ValueError, match="needs array.sofa"):
        Params.model_validate(raw)


def test_a_missing_head_file_stops_the_simulate_stage_before_it_writes(tmp_path):
    raw = tiny_raw_params()
    raw["simulate"]["array"]["sofa"] = str(tmp_path / "missing.sofa")
    raw["simulate"]["splits"]["train"]["head_fraction"] = 0.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    out, metrics = tmp_path / "rirs", tmp_path / "metrics"
    cmd = [
        sys.executable,
        str(REPO / "stages/simulate.py"),
        "train",
        "--params",
        str(tmp_path / "params.yaml"),
    ]
    cmd += ["--out", str(out), "--metrics", str(metrics)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and not proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.sofa" in lines[0] and "does not exist" in lines[0]
    assert not out.exists() and not metrics.exists()
