"""Talkers who take turns: a talker heard in some windows only is added to what the pooled
slots find (evaluate.turns), in the evaluate path and in predict."""

from __future__ import annotations

import numpy as np
import pytest

from dualmic.core.labels import LabelCoding, source_counts
from dualmic.learn import inference
from dualmic.learn.decoding import decode_angles
from dualmic.learn.inference import model_answers
from dualmic.learn.turns import TURN_MIN_SEPARATION_DEG, add_turn_talkers, turn_evidence

COUNT = LabelCoding(5.0, 36, counting=True, sigma_deg=4.0, decode="peak")
NONE = 36  # the "no source" class


def window(slots: list[float | None], sure: float = 0.95) -> np.ndarray:
    """One window's log-probabilities (S, 37): each slot a Gaussian bump of mass ``sure`` at an
    angle, or "no source" (None) with ``sure``."""
    out = np.full((len(slots), 37), (1 - sure) / 36)
    centres = (np.arange(36) + 0.5) * 5.0
    for s, angle in enumerate(slots):
        if angle is None:
            out[s, NONE] = sure
            out[s, :36] = (1 - sure) / 36
        else:
            bump = np.exp(-0.5 * ((centres - angle) / 4.0) ** 2)
            out[s, :36] = sure * (0.98 * bump / bump.sum() + 0.02 / 36)  # a floor, as a model has
            out[s, NONE] = 1 - sure
    return np.log(out)


def pooled_and_turns(windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.stack(windows)[None]  # (1, W, S, 37)
    pooled = decode_angles(w.mean(1), COUNT)
    return pooled, add_turn_talkers(pooled, turn_evidence(w, COUNT), COUNT), w


def test_two_talkers_taking_turns_are_both_found():
    a, b = 41.0, 128.0
    windows = [window([a, None])] * 3 + [window([a, b])] + [window([b, None])] * 2
    pooled, turns, w = pooled_and_turns(windows)
    assert source_counts(pooled)[0] == 1  # the pooled slots keep one talker
    np.testing.assert_allclose(turns[0], [a, b], atol=1.0)
    # model_answers: the evaluate and conditions path
    got = model_answers(w.mean(1), COUNT, np.array([2]), turn_evidence(w, COUNT))
    np.testing.assert_array_equal(got["model"], turns)
    np.testing.assert_array_equal(model_answers(w.mean(1), COUNT, np.array([2]))["model"], pooled)


def test_silent_windows_do_not_hide_a_talker():
    """Only windows that hear a source are averaged: a talker in 2 of 10 windows still counts,
    even when the pooled slots say nobody talks."""
    windows = [window([None, None])] * 8 + [window([70.0, None])] * 2
    pooled, turns, _ = pooled_and_turns(windows)
    assert source_counts(pooled)[0] == 0
    np.testing.assert_allclose(turns[0], [70.0, np.nan], atol=1.0)


@pytest.mark.parametrize(
    ("second", "sure", "why"),
    [
        (None, 0.95, "one talker throughout"),
        (120.0, 0.5, "no window is sure of the second source"),
        (41.0 + 0.8 * TURN_MIN_SEPARATION_DEG, 0.95, "too close to the talker found"),
    ],
)
def test_nothing_is_added_without_a_separate_sure_talker(second, sure, why):
    windows = [window([41.0, None])] * 5 + [window([41.0, second], sure)]
    pooled, turns, _ = pooled_and_turns(windows)
    np.testing.assert_array_equal(turns, pooled, err_msg=why)


def test_full_slots_and_models_without_counting_are_left_alone():
    w = np.stack([window([150.0, None])] * 6)[None]  # every window sure of a talker at 150 deg
    evidence = turn_evidence(w, COUNT)
    np.testing.assert_allclose(
        add_turn_talkers(np.array([[30.0, np.nan]]), evidence, COUNT), [[30.0, 150.0]], atol=1
    )
    full = np.array([[30.0, 90.0]])
    np.testing.assert_array_equal(add_turn_talkers(full, evidence, COUNT), full)
    plain = LabelCoding(5.0, 36)
    np.testing.assert_array_equal(
        add_turn_talkers(np.array([[30.0, np.nan]]), evidence, plain), [[30.0, np.nan]]
    )


def test_on_a_circle_a_talker_across_0_degrees_is_one_peak():
    circle = LabelCoding(5.0, 72, counting=True, sigma_deg=4.0, decode="peak", circular=True)
    centres = (np.arange(72) + 0.5) * 5.0

    def win(angle):
        p = np.full((2, 73), 1e-6)  # a floor, as a model has
        p[1, 72] = 1.0
        if angle is not None:
            d = (centres - angle + 180) % 360 - 180
            p[0, :72] = np.exp(-0.5 * (d / 4.0) ** 2) + 1e-6
        else:
            p[0, 72] = 1.0
        return np.log(p / p.sum(-1, keepdims=True))

    w = np.stack([win(359.0)] * 3 + [win(200.0)] * 3)[None]
    pooled = decode_angles(w.mean(1), circle)
    got = add_turn_talkers(pooled, turn_evidence(w, circle), circle)
    assert source_counts(got)[0] == 2
    assert min(abs((got[0, 1] - 359.0 + 180) % 360 - 180), abs((got[0, 0] - 359.0 + 180) % 360 - 180)) < 1.5


def test_predict_reports_the_second_talker_with_its_share_as_confidence(monkeypatch):
    from dualmic import predict

    windows = np.stack([window([41.0, None])] * 4 + [window([128.0, None])] * 2).astype(np.float32)

    def fake(audio, model, meta, device, batch_size=32, mirror=False, highpass_hz=0.0):
        return windows.mean(0), windows

    class Net:
        class cfg:  # noqa: N801 - stands in for the model's config
            n_classes = 36

    monkeypatch.setattr(predict, "recording_windows", fake)
    meta = {"class_width_deg": 5.0, "counting": True, "label": "lateral"}
    alone = predict.predict_sources(None, Net, meta, turns=False)
    both = predict.predict_sources(None, Net, meta, turns=True)
    assert [round(a) for a, _ in alone] == [41]
    assert [round(a) for a, _ in both] == [41, 128]
    assert both[0] == alone[0]
    assert both[1][1] == pytest.approx(2 / 6, abs=0.05)  # heard, mostly, in 2 of the 6 windows


def test_room_log_probs_pools_as_before_and_gives_the_windows_evidence():
    import torch
    from tests_support import tiny_raw_params

    from dualmic.core.params import parse_params
    from dualmic.learn.model import SSLModel
    from dualmic.learn.model_file import model_config

    p = parse_params(tiny_raw_params())
    torch.manual_seed(0)
    net = SSLModel(model_config(p))
    cfg = net.cfg
    feats = torch.randn(3, cfg.in_channels, cfg.n_freq, 3 * cfg.n_frames)
    coding = LabelCoding.from_params(p)
    logp, evidence = inference.room_log_probs(net, feats, 7, coding, batch_size=4, turns=True)
    np.testing.assert_array_equal(logp, inference.pooled_log_probs(net, feats, 7, batch_size=4))
    windows = inference.window_log_probs(net, feats, 7, batch_size=4)
    np.testing.assert_allclose(windows.mean(1), logp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(evidence, turn_evidence(windows, coding))
    assert inference.room_log_probs(net, feats, 7, coding)[1] is None
