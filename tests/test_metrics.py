"""Tests of dualmic.scoring.metrics and dualmic.scoring.plots on hand-computed inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dualmic.scoring import metrics, plots


def test_slot_errors_sort_both_sides():
    pred = np.array([[100.0, 10.0], [30.0, 50.0]])  # first room unsorted
    true = np.array([[12.5, 90.0], [60.0, 20.0]])
    np.testing.assert_allclose(metrics.slot_errors(pred, true), [[2.5, 10.0], [10.0, 10.0]])


def test_slot_errors_shape_mismatch():
    with pytest.raises(ValueError, match="must both be"):
        metrics.slot_errors(np.zeros((3, 2)), np.zeros((2, 2)))


def test_summary_hand_computed():
    out = metrics.summary([[10.0, 100.0]], [[12.5, 90.0]], "model")
    assert out == {
        "model.mae_deg": 6.25,
        "model.mae_slot1_deg": 2.5,
        "model.mae_slot2_deg": 10.0,
        "model.acc_5deg": 0.5,
        "model.acc_10deg": 1.0,
        "model.both_within_10deg": 1.0,
        "model.n_rooms": 1,
    }


def test_summary_several_rooms_and_rounding():
    pred = np.array([[0.0, 50.0], [20.0, 40.0], [170.0, 10.0]])
    true = np.array([[1.0, 70.0], [20.0, 40.0], [10.0, 180.0]])
    # errors: [1, 20], [0, 0], [0, 10]
    out = metrics.summary(pred, true, "x")
    assert out["x.mae_deg"] == round(31 / 6, 4) == 5.1667
    assert out["x.mae_slot1_deg"] == round(1 / 3, 4)
    assert out["x.mae_slot2_deg"] == 10.0
    assert out["x.acc_5deg"] == round(4 / 6, 4)
    assert out["x.acc_10deg"] == round(5 / 6, 4)
    assert out["x.both_within_10deg"] == round(2 / 3, 4)
    assert out["x.n_rooms"] == 3 and isinstance(out["x.n_rooms"], int)


def test_confusion_counts_both_slots_sorted():
    true = np.array([[1, 3], [0, 2], [2, 0]])
    pred = np.array([[3, 1], [0, 1], [2, 2]])
    cm = metrics.confusion(true, pred, 4)
    expected = np.zeros((4, 4), dtype=int)
    for t, p in [(1, 1), (3, 3), (0, 0), (2, 1), (0, 2), (2, 2)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == 6 and cm.dtype == np.int64


def test_confusion_rejects_out_of_range():
    with pytest.raises(ValueError, match="0..3"):
        metrics.confusion([[0, 4]], [[0, 1]], 4)


def test_binned_mae_edges_and_dropped_values():
    values = np.array([0.1, 0.2, 0.3, 0.7, 0.05, 0.9, 0.5])
    errors = np.array([[1, 3], [3, 5], [10, 10], [0, 4], [99, 99], [99, 99], [6, 6]], dtype=float)
    rows = metrics.binned_mae(values, errors, [0.1, 0.3, 0.5, 0.7])
    assert [r["bin"] for r in rows] == ["0.1-0.3", "0.3-0.5", "0.5-0.7"]
    assert [r["n"] for r in rows] == [2, 1, 2]  # 0.05 and 0.9 are outside: dropped
    assert [r["mae_deg"] for r in rows] == [3.0, 10.0, 4.0]  # 0.3 -> 2nd bin, 0.7 -> last bin
    assert rows[0]["lo"] == 0.1 and rows[-1]["hi"] == 0.7


def test_binned_mae_empty_bin_is_none():
    rows = metrics.binned_mae([5.0], [[2.0, 4.0]], [0.0, 10.0, 20.0])
    assert rows[0]["mae_deg"] == 3.0 and rows[1] == {
        "bin": "10-20",
        "lo": 10.0,
        "hi": 20.0,
        "mae_deg": None,
        "n": 0,
    }


def test_separation():
    np.testing.assert_allclose(metrics.separation_deg([[10.0, 30.0], [90.0, 45.0]]), [20.0, 45.0])


def test_error_histogram():
    lower, counts = metrics.error_histogram(np.array([[0.0, 4.99], [5.0, 180.0], [177.0, 12.0]]), 5)
    assert len(lower) == 36 and lower[0] == 0 and lower[-1] == 175
    assert counts[0] == 2 and counts[1] == 1 and counts[2] == 1 and counts[-1] == 2 and counts.sum() == 6


def test_plot_files(tmp_path):
    plots.write_confusion(tmp_path / "c.json", [[0, 35]], [[35, 1]], 5.0)
    assert json.loads((tmp_path / "c.json").read_text()) == [
        {"actual": 2.5, "predicted": 7.5},
        {"actual": 177.5, "predicted": 177.5},
    ]
    rows = metrics.binned_mae([0.2, 0.4], [[1.0, 3.0], [5.0, 5.0]], [0.1, 0.3, 0.5])
    plots.write_binned_mae(tmp_path / "b.csv", "rt60_s", {"model": rows, "constant": rows})
    table = pd.read_csv(tmp_path / "b.csv")
    assert list(table.columns) == ["bin", "lo", "hi", "rt60_s", "n_rooms", "model", "srp_phat", "constant"]
    assert table["model"].tolist() == [2.0, 5.0] and table["srp_phat"].isna().all()
    np.testing.assert_allclose(table["rt60_s"], [0.2, 0.4])
    plots.write_error_histogram(tmp_path / "h.csv", {"model": np.array([[1.0, 7.0]])})
    hist = pd.read_csv(tmp_path / "h.csv")
    assert list(hist.columns) == ["error_deg", "model", "srp_phat", "constant"]
    assert hist["model"].sum() == 2 and len(hist) == 36


def test_count_accuracy_by_separation_bins_the_two_talker_rooms():
    nan = np.nan
    true = np.array([[10.0, 12.0], [10.0, 14.0], [30.0, 90.0], [50.0, nan], [20.0, 150.0]])
    pred = np.array([[11.0, nan], [9.0, 15.0], [31.0, 88.0], [50.0, 52.0], [nan, nan]])
    sep = metrics.separation_deg(true)
    assert np.isnan(sep[3])  # one talker: no separation, in no bin
    rows = metrics.binned_count_acc(sep, pred, true, [0.0, 10.0, 80.0, 180.0])
    assert [(r["bin"], r["n"], r["count_acc"]) for r in rows] == [
        ("0-10", 2, 0.5),  # the pair 2 deg apart is heard as one talker
        ("10-80", 1, 1.0),  # 60 deg apart: both found
        ("80-180", 1, 0.0),  # 130 deg apart: none found
    ]
    assert metrics.binned_count_acc(sep, pred, true, [170.0, 180.0])[0]["count_acc"] is None
