"""Source counting and sub-class angles: slot targets, decoding, and count scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dualmic.core.labels import LabelCoding, slot_angles, source_counts
from dualmic.learn.decoding import decode_angles, decode_known_count, slot_peak_deg
from dualmic.learn.objective import slot_loss, slot_targets
from dualmic.scoring import metrics
from dualmic.scoring.baselines import constant_angles

NAN = np.nan
COUNT = LabelCoding(5.0, 36, counting=True)


def _log_probs_of(targets: torch.Tensor) -> np.ndarray:
    """Log-probabilities a perfect model would pool: the targets themselves."""
    return np.log(targets.numpy().astype(np.float64) + 1e-12)


def test_slot_labels_put_talkers_first_and_no_source_last():
    angles = np.array([[120.0, 30.0], [120.0, 30.0], [120.0, 30.0]])
    active = np.array([[True, True], [True, False], [False, False]])
    got = slot_angles(angles, active, counting=True)
    np.testing.assert_array_equal(got, [[30.0, 120.0], [120.0, NAN], [NAN, NAN]])
    np.testing.assert_array_equal(source_counts(got), [2, 1, 0])
    with pytest.raises(ValueError, match="no active talker"):
        slot_angles(angles, active, counting=False)


def test_one_hot_targets_are_the_classes_and_empty_slots_the_no_source_class():
    t = slot_targets(torch.tensor([[7.0, float("nan")], [0.0, 180.0]]), COUNT)
    assert t.shape == (2, 2, 37)
    assert (
        t[0, 0].argmax() == 1 and t[0, 1].argmax() == 36 and t[1, 0].argmax() == 0 and t[1, 1].argmax() == 35
    )
    torch.testing.assert_close(t.sum(-1), torch.ones(2, 2))
    with pytest.raises(ValueError, match="counting"):
        slot_targets(torch.tensor([[7.0, float("nan")]]), LabelCoding(5.0, 36))


def test_one_hot_loss_is_the_class_cross_entropy():
    logits = torch.randn(4, 2, 36, generator=torch.Generator().manual_seed(0))
    angles = torch.tensor([[3.0, 50.0], [90.0, 91.0], [170.0, 179.9], [12.5, 100.0]])
    classes = torch.floor(angles / 5).long()
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), classes, reduction="none").mean(0).sum()
    torch.testing.assert_close(slot_loss(logits, slot_targets(angles, LabelCoding(5.0, 36))), ce)


@pytest.mark.parametrize("angle", [33.0, 47.6, 91.0, 121.2, 151.9])
def test_peak_decoding_recovers_the_angle_of_gaussian_outputs(angle):
    coding = LabelCoding(5.0, 36, counting=True, sigma_deg=4.0, decode="peak")
    targets = slot_targets(torch.tensor([[angle, float("nan")]]), coding)
    logp = _log_probs_of(targets)
    assert slot_peak_deg(logp, coding)[0, 0] == pytest.approx(angle, abs=0.05)
    centre = slot_peak_deg(logp, LabelCoding(5.0, 36, counting=True, decode="argmax"))[0, 0]
    assert centre == (np.floor(angle / 5) + 0.5) * 5  # the class centre: up to 2.5 deg off
    got = decode_angles(logp, coding)
    assert got[0, 0] == pytest.approx(angle, abs=0.05) and np.isnan(got[0, 1])


def test_peak_decoding_stays_inside_the_best_class_and_at_edges_keeps_the_centre():
    coding = LabelCoding(5.0, 36, decode="peak")
    logp = np.full((1, 2, 36), -10.0)
    logp[0, 0, 10:13] = [-1.0, -0.5, -9.0]  # best class 11, pulled towards class 10
    logp[0, 1, 0:2] = [-0.1, -0.2]  # best class at the edge
    got = slot_peak_deg(logp, coding)[0]
    assert 55.0 <= got[0] < 57.5  # class 11 spans 55-60 deg; its left neighbour pulls
    assert got[1] == 2.5


def test_decoded_counts_follow_the_no_source_class():
    logp = np.log(np.full((3, 2, 37), 0.01))
    logp[0, :, 10] = 0.0  # two sources, both at class 10
    logp[1, 0, 20], logp[1, 1, 36] = 0.0, 0.0  # one source
    logp[2, :, 36] = 0.0  # none
    got = decode_angles(logp, COUNT)
    np.testing.assert_array_equal(source_counts(got), [2, 1, 0])
    np.testing.assert_array_equal(got[1], [102.5, NAN])


def test_known_count_takes_the_slots_most_sure_of_a_source():
    logp = np.log(np.full((2, 2, 37), 0.01))
    logp[:, 0, 30] = 0.0  # slot 0: a source at 152.5, sure
    logp[:, 1, 4], logp[:, 1, 36] = -1.0, -0.5  # slot 1: rather no source, else 22.5
    got = decode_known_count(logp, np.array([1, 2]), COUNT)
    np.testing.assert_array_equal(got, [[152.5, NAN], [22.5, 152.5]])


def test_scores_compare_angles_of_correctly_counted_rooms_only():
    true = np.array([[10.0, 100.0], [40.0, NAN], [NAN, NAN], [20.0, 30.0]])
    pred = np.array([[12.0, 96.0], [43.0, NAN], [50.0, NAN], [25.0, NAN]])
    err = metrics.slot_errors(pred, true)
    np.testing.assert_array_equal(err, [[2.0, 4.0], [3.0, NAN], [NAN, NAN], [NAN, NAN]])
    s = metrics.summary(pred, true, "m")
    assert s["m.mae_deg"] == 3.0 and s["m.mae_slot1_deg"] == 2.5 and s["m.mae_slot2_deg"] == 4.0
    c = metrics.count_summary(pred, true, "m")
    assert c["m.count_acc"] == 0.5
    assert c["m.missed_rate"] == pytest.approx(1 / 5, abs=1e-4)  # room 3 lost one of 5 talkers
    assert c["m.false_alarm_rate"] == 0.25  # room 2 invented one talker in 4 rooms
    assert c["m.mae_1src_deg"] == 3.0 and c["m.mae_2src_deg"] == 3.0
    np.testing.assert_array_equal(metrics.count_confusion(true, pred, 2), [[0, 1, 0], [0, 1, 0], [0, 1, 1]])
    assert np.isnan(metrics.separation_deg(true)[1]) and metrics.separation_deg(true)[0] == 90.0


def test_constant_guess_is_told_the_count():
    train = np.array([[10.0, 100.0], [30.0, 140.0], [60.0, NAN], [NAN, NAN]])
    got = constant_angles(train, 3, np.array([2, 1, 0]))
    np.testing.assert_array_equal(got, [[20.0, 120.0], [60.0, NAN], [NAN, NAN]])


def test_presence_sets_how_sure_a_slot_must_be_to_count_a_talker():
    """evaluate.presence: a slot whose 1 - p(no source) is 0.4 counts at 0.35, not at 0.5."""
    prob = np.full((1, 2, 37), 0.0)
    prob[0, 0, 10] = 1.0  # slot 0: a sure source at 52.5 deg
    prob[0, 1, 30], prob[0, 1, 36] = 0.4, 0.6  # slot 1: 40 % a source at 152.5 deg
    logp = np.log(np.maximum(prob, 1e-12))
    np.testing.assert_array_equal(decode_angles(logp, COUNT), [[52.5, NAN]])
    np.testing.assert_array_equal(decode_angles(logp, COUNT, presence=0.35), [[52.5, 152.5]])
    np.testing.assert_array_equal(decode_angles(logp, COUNT, presence=0.45), [[52.5, NAN]])
    np.testing.assert_array_equal(decode_angles(logp, COUNT, presence=0.999), [[52.5, NAN]])


def test_presence_is_a_probability_in_params():
    from tests_support import tiny_raw_params

    from dualmic.core.errors import DualmicError
    from dualmic.core.params import parse_params

    assert parse_params(tiny_raw_params()).evaluate.presence == 0.5
    for bad in (0.0, 1.0, -0.2, "half"):
        raw = tiny_raw_params()
        raw["evaluate"]["presence"] = bad
        with pytest.raises(DualmicError, match="presence"):
            parse_params(raw)
