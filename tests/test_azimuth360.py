"""The full-circle azimuth label (labels.angle azimuth360): angles, targets, decoding, scores."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from dualmic.core.labels import LabelCoding, angle_difference, azimuth360_deg, label_span_deg
from dualmic.core.schema import LabelsParams
from dualmic.learn.decoding import slot_peak_deg
from dualmic.learn.objective import slot_targets
from dualmic.scoring import metrics
from dualmic.sim.rooms import Rooms, RoomSpec, sample_rooms

CIRCLE = LabelCoding(5.0, 72, counting=True, sigma_deg=4.0, decode="peak", circular=True)


def test_azimuth360_runs_counterclockwise_from_mic_1():
    d = np.array([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0], [0, -1.0, 0], [1.0, -1.0, 0.5]])
    np.testing.assert_allclose(azimuth360_deg(d), [0, 90, 180, 270, 315])
    assert label_span_deg("azimuth360") == 360 and label_span_deg("lateral") == 180
    np.testing.assert_allclose(angle_difference([355.0, 10.0], [5.0, 350.0], 360.0), [-10, 20])


def test_classes_must_cover_the_circle():
    LabelsParams(angle="azimuth360", class_width_deg=5.0, n_classes=72)
    with pytest.raises(ValidationError, match="must cover exactly 360 deg"):
        LabelsParams(angle="azimuth360", class_width_deg=5.0, n_classes=36)


def test_rooms_give_azimuth360_from_their_stored_geometry():
    spec = RoomSpec((3.0, 3.0, 2.5), (10.0, 6.0, 4.0), (0.1, 0.7), (0.5, 5.0), 0.5,
                    ((-0.09, 0.0, 0.0), (0.09, 0.0, 0.0)), True, 2)  # fmt: skip
    rooms = sample_rooms(spec, 7, 0, 20)
    frame = rooms.to_frame()
    assert not any("azimuth360" in c for c in frame.columns)  # rooms.csv is unchanged by the label
    read = Rooms.from_frame(frame, spec.mic_offsets)
    az = read.angles("azimuth360", stored=True)
    folded = read.angles("azimuth", stored=True)
    np.testing.assert_allclose(np.minimum(az, 360 - az), folded, atol=1e-9)  # folding it gives azimuth


def test_gaussian_targets_wrap_round_the_circle():
    t = slot_targets(torch.tensor([[0.0, float("nan")]]), CIRCLE)[0, 0]
    assert torch.isclose(t[0], t[71]) and t[0] > 0.3  # 0 deg sits between the first and last class
    assert torch.isclose(t[:72].sum(), torch.tensor(1.0)) and t[72] == 0


@pytest.mark.parametrize("true", [359.0, 1.0, 180.0, 2.6])
def test_peak_decoding_reads_across_the_wrap(true):
    centres = (np.arange(72) + 0.5) * 5.0
    d = angle_difference(centres, true, 360.0)
    logp = np.concatenate([-0.5 * (d / 4.0) ** 2, [-50.0]])
    got = slot_peak_deg(logp[None, None], CIRCLE)[0, 0]
    assert abs(angle_difference(got, true, 360.0)) < 0.05 and 0 <= got < 360


def test_circular_scores_pair_the_closest_way_round():
    true = np.array([[2.0, 200.0], [60.0, np.nan], [100.0, 280.0]])
    pred = np.array([[190.0, 358.0], [300.0, np.nan], [120.0, 250.0]])
    err = metrics.slot_errors(pred, true, 360.0)
    np.testing.assert_allclose(err, [[4, 10], [120, np.nan], [20, 30]])
    assert metrics.slot_errors(pred, true)[0, 0] == 188  # sorted pairing on a line
    fb = metrics.front_back_summary(pred, true, "m")
    # 60 -> 300 is the mirror image behind (confused); 100 -> 120 and 280 -> 250 keep their side
    assert fb["m.front_back_confusion"] == pytest.approx(1 / 4)  # 2 deg lies on the axis: not judged
    assert fb["m.mae_front_back_resolved_deg"] == pytest.approx(np.mean([4, 10, 20, 30]))
    np.testing.assert_allclose(metrics.separation_deg(true, 360.0), [162, np.nan, 180])


@pytest.mark.parametrize("elevation_of_60, expected", [(50.0, 0.0), (20.0, 1 / 3)])
def test_front_back_near_the_horizontal_leaves_out_sources_far_above_or_below(elevation_of_60, expected):
    # the rows of test_circular_scores_pair_the_closest_way_round, true angles given unsorted:
    # each elevation must follow its source through the sorting
    true = np.array([[200.0, 2.0], [60.0, np.nan], [280.0, 100.0]])
    elevation = np.array([[0.0, 0.0], [elevation_of_60, np.nan], [10.0, 70.0]])
    pred = np.array([[190.0, 358.0], [300.0, np.nan], [120.0, 250.0]])
    fb = metrics.front_back_summary(pred, true, "m", true_elevation_deg=elevation)
    assert fb["m.front_back_confusion"] == pytest.approx(1 / 4)  # all elevations, as before
    # judged near the horizontal: 200 (0 deg), 280 (10 deg), and 60 when it is at 20 deg; 100 is at 70
    assert fb["m.front_back_confusion_horizontal"] == pytest.approx(expected, abs=1e-4)  # 4 decimals
    assert "m.front_back_confusion_horizontal" not in metrics.front_back_summary(pred, true, "m")


def test_slot_values_follow_the_sorted_labels():
    from dualmic.core.labels import elevation_deg, slot_values

    slots = np.array([[100.0, 280.0], [60.0, np.nan]])
    angles = np.array([[280.0, 100.0], [200.0, 60.0]])  # source order; room 2's first source is silent
    got = slot_values(slots, angles, np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(got, [[2.0, 1.0], [4.0, np.nan]])
    directions = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, -2.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(elevation_deg(directions), [45, -45, 0])


def test_validation_pairs_full_circle_slots_the_closest_way_round(monkeypatch):
    # the label's slots are in folded order (357.5 is 2.5 from the right ear, 102.5 is 77.5);
    # a model that finds both exactly must score 0, however its decoded angles are ordered
    from types import SimpleNamespace

    from dualmic.learn import validation

    true = np.array([[357.5, 102.5]], dtype=np.float32)
    logp = np.full((1, 2, 73), -30.0, dtype=np.float32)
    logp[0, 0, 71] = logp[0, 1, 20] = 0.0  # classes of 357.5 and 102.5
    monkeypatch.setattr(validation, "pooled_log_probs", lambda *a, **k: logp)
    data = SimpleNamespace(features=np.zeros((1, 4, 8, 8)), angles=true, hop_frames=8, coding=CIRCLE)
    got = validation.validate(None, data, np.array([0]), "cpu", 1)
    assert got.mae_deg < 0.01 and got.count_acc == 1.0
