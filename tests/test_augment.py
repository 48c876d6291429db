"""Mixtures in the conditions of real recordings: the perturbations measure what they claim, and
augmented splits stay deterministic while other splits are untouched."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal
from tests_support import tiny_raw_params

from dualmic.core.errors import DualmicError
from dualmic.core.params import parse_params
from dualmic.data.augment import draw_condition, render
from dualmic.data.features import FeatureConfig
from dualmic.data.mixtures import active_labels, feature_batches, split_active
from dualmic.data.perturb import add_at_snr, colored_noise, diffuse_pair, mic_mismatch

FS = 16000
CFG = FeatureConfig(FS, 512, 160, ("ipd",), 0.1, 343.0)


def test_no_mismatch_is_the_identity_and_gain_is_exact():
    x = np.random.default_rng(0).standard_normal((2, 4000))
    np.testing.assert_allclose(mic_mismatch(x, np.zeros(2), np.zeros(2), np.zeros(2)), x, atol=1e-12)
    y = mic_mismatch(x, np.array([6.0, -3.0]), np.zeros(2), np.zeros(2))
    np.testing.assert_allclose(y[0], x[0] * 10 ** (6 / 20), atol=1e-12)
    np.testing.assert_allclose(y[1], x[1] * 10 ** (-3 / 20), atol=1e-12)


def test_allpass_changes_phase_not_magnitude_and_tilt_changes_the_balance():
    x = np.random.default_rng(1).standard_normal((2, 1 << 14))
    y = mic_mismatch(x, np.zeros(2), np.zeros(2), np.array([0.3, 0.0]))
    mag_x, mag_y = np.abs(np.fft.rfft(x[0])), np.abs(np.fft.rfft(y[0]))
    assert np.median(np.abs(20 * np.log10(mag_y[10:-10] / mag_x[10:-10]))) < 0.2  # same magnitude
    assert np.abs(y[0] - x[0]).max() > 0.1  # but not the same signal
    up = mic_mismatch(x, np.zeros(2), np.array([0.5, 0.0]), np.zeros(2))
    f, p_up = signal.welch(up[0], FS)
    _, p_x = signal.welch(x[0], FS)
    ratio = 10 * np.log10(p_up / p_x)
    assert ratio[f > 6000].mean() > ratio[f < 1000].mean() + 2  # treble up


def test_colored_noise_slopes():
    for color, slope in (("white", 0.0), ("pink", -10 * np.log10(2)), ("brown", -20 * np.log10(2))):
        n = colored_noise(np.random.default_rng(2), 1, 1 << 16, color)[0]
        f, pxx = signal.welch(n, FS, nperseg=4096)
        band = (f > 100) & (f < 4000)
        fit = np.polyfit(np.log2(f[band]), 10 * np.log10(pxx[band]), 1)[0]  # dB per octave
        assert abs(fit - slope) < 1.0, (color, fit)


def test_diffuse_pair_has_the_diffuse_coherence():
    rng = np.random.default_rng(3)
    x = colored_noise(rng, 2, FS * 20, "white")
    d = diffuse_pair(x[0], x[1], 0.1, FS)
    f, coh = signal.coherence(d[0], d[1], FS, nperseg=512)
    expected = np.sinc(2 * f * 0.1 / 343.0) ** 2  # magnitude-squared coherence
    band = f < 3000
    assert np.abs(coh[band] - expected[band]).max() < 0.1


def test_add_at_snr_is_exact():
    rng = np.random.default_rng(4)
    s, n = rng.standard_normal((2, 1000)), rng.standard_normal((2, 1000))
    out = add_at_snr(s, n, 7.5)
    assert 10 * np.log10(np.mean(s**2) / np.mean((out - s) ** 2)) == pytest.approx(7.5)


def _aug_params(**aug):
    raw = tiny_raw_params()
    raw["augment"] = {"splits": ["train"], **aug}
    return parse_params(raw)


ACTIVE = (0.1, 0.3, 0.6)  # probability of 0, 1, 2 talkers


def test_conditions_follow_their_probabilities():
    p = _aug_params(point_noise=0.5, diffuse=0.6, sensor=0.5, mic={"probability": 0.5})
    conds = [
        draw_condition(np.random.default_rng([1, i]), p.augment, 2, (-5.0, 5.0), ACTIVE) for i in range(2000)
    ]
    for k, prob in enumerate(ACTIVE):
        assert abs(np.mean([len(c.talkers) == k for c in conds]) - prob) < 0.04
    assert {c.talkers for c in conds if len(c.talkers) == 1} == {(0,), (1,)}
    talking = [c for c in conds if c.talkers]
    assert abs(np.mean([c.diffuse_kind is not None for c in talking]) - 0.6) < 0.04
    assert all(c.diffuse_kind is not None for c in conds if not c.talkers)  # never silence
    assert all(c.point_noise_snr_db is None for c in conds if len(c.talkers) == 2)
    assert abs(np.mean([c.point_noise_snr_db is not None for c in conds if len(c.talkers) < 2]) - 0.5) < 0.06
    mismatch = [c for c in conds if any(c.mic_gain_db)]
    assert abs(len(mismatch) / 2000 - 0.5) < 0.04
    assert all(abs(g) <= 3.0 for c in mismatch for g in c.mic_gain_db)
    again = draw_condition(np.random.default_rng([1, 5]), p.augment, 2, (-5.0, 5.0), ACTIVE)
    assert again == conds[5]


def test_single_talker_render_holds_only_that_talker():
    rng = np.random.default_rng(5)
    images = rng.standard_normal((2, 2, 3000))
    p = _aug_params()
    cond = draw_condition(np.random.default_rng(0), p.augment, 2, (-5.0, 5.0), (0.0, 1.0, 0.0))
    out = render(images, np.zeros((2, 2, 8)), cond, rng, CFG)
    k = cond.talkers[0]
    expected = images[k] / np.sqrt(np.mean(images[k] ** 2))
    np.testing.assert_allclose(out, expected, atol=1e-9)


def test_silent_slots_are_no_source_for_a_counting_model(tiny_params):
    angles = np.array([[30.0, 120.0], [100.0, 10.0], [50.0, 60.0], [70.0, 80.0]])
    active = np.array([[True, True], [False, True], [True, False], [False, False]])
    got, classes = active_labels(angles, active, tiny_params)
    np.testing.assert_array_equal(got, [[30, 120], [10, np.nan], [50, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(classes, [[6, 24], [2, 36], [10, 36], [36, 36]])


def test_one_talker_fills_both_slots_without_counting():
    raw = tiny_raw_params()
    raw["labels"]["counting"] = False
    raw["features"]["active_sources"] = [0.0, 0.3, 0.7]
    p = parse_params(raw)
    angles = np.array([[30.0, 120.0], [100.0, 10.0], [50.0, 60.0]])
    active = np.array([[True, True], [False, True], [True, False]])
    got, classes = active_labels(angles, active, p)
    np.testing.assert_array_equal(got, [[30, 120], [10, 10], [50, 50]])
    np.testing.assert_array_equal(classes, [[6, 24], [2, 2], [10, 10]])


def test_rooms_without_talkers_need_counting():
    raw = tiny_raw_params()
    raw["labels"]["counting"] = False
    with pytest.raises(DualmicError, match="labels.counting"):
        parse_params(raw)


def _rirs(n_rooms: int) -> np.ndarray:
    rng = np.random.default_rng(6)
    rirs = rng.standard_normal((n_rooms, 2, 2, 400)).astype(np.float32) * np.exp(-np.arange(400) / 60)
    rirs[..., 0] += 1
    return rirs.astype(np.float32)


def test_augmented_batches_are_deterministic_and_batch_size_free():
    raw = tiny_raw_params()
    raw["augment"] = {"splits": ["train"], "point_noise": 1.0, "diffuse": 1.0, "sensor": 1.0,
                      "mic": {"probability": 1.0}}  # fmt: skip
    rirs = _rirs(5)
    a = list(feature_batches(parse_params(raw), "train", rirs))
    raw["features"]["batch_size"] = 2
    b = list(feature_batches(parse_params(raw), "train", rirs))
    np.testing.assert_array_equal(
        np.concatenate([x.mixture for x in a]), np.concatenate([x.mixture for x in b])
    )
    active = np.concatenate([x.active for x in a])
    assert (~active).any() and active.any()
    # the talkers of rooms left unmixed (labels of every room) are drawn as the mixing draws them
    np.testing.assert_array_equal(split_active(parse_params(raw), "train", 5), active)
    some = list(feature_batches(parse_params(raw), "train", rirs, np.array([1, 3, 4])))
    np.testing.assert_array_equal(
        np.concatenate([x.mixture for x in some]), np.concatenate([x.mixture for x in a])[[1, 3, 4]]
    )


def test_splits_not_augmented_are_mixed_as_before():
    raw = tiny_raw_params()
    rirs = _rirs(3)
    before = np.concatenate([x.features for x in feature_batches(parse_params(raw), "eval", rirs)])
    raw["augment"] = {"splits": ["train"], "diffuse": 1.0, "mic": {"probability": 1.0}}
    after = np.concatenate([x.features for x in feature_batches(parse_params(raw), "eval", rirs)])
    np.testing.assert_array_equal(before, after)
    aug = np.concatenate([x.features for x in feature_batches(parse_params(raw), "train", rirs)])
    assert not np.array_equal(
        aug, np.concatenate([x.features for x in feature_batches(parse_params(raw), "eval", rirs)])
    )


def test_unknown_augment_split_is_a_one_line_error():
    from dualmic.core.errors import DualmicError

    raw = tiny_raw_params()
    raw["augment"] = {"splits": ["test"]}
    with pytest.raises(DualmicError, match="augment.splits names split 'test'"):
        parse_params(raw)
