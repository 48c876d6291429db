"""Tests of dualmic.data.features and dualmic.data.mixtures: the physics of mixtures and IPD features."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import signal

from dualmic.core.errors import DualmicError
from dualmic.core.onsets import onsets
from dualmic.core.params import parse_params
from dualmic.data.features import (
    FeatureConfig,
    diffuse_noise,
    features_from_audio,
    mix_sources,
    reverberant_images,
    stft,
)
from dualmic.data.mixtures import feature_batches, split_active, split_labels
from dualmic.sim.rooms import Rooms

FS = 16000
PARAMS_YAML = Path(__file__).parents[1] / "params.yaml"
CFG = FeatureConfig(FS, 512, 160, ("ipd",), 0.1)
CFG_LOGMAG = FeatureConfig(FS, 512, 160, ("ipd", "logmag"), 0.1)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS_YAML.read_text())


def _params(raw: dict, **changes):
    """parse_params on a copy of params.yaml; changes are 'section__key' = value."""
    r = copy.deepcopy(raw)
    for name, value in changes.items():
        section, key = name.split("__")
        r[section][key] = value
    return parse_params(r)


def _white(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _power(x: torch.Tensor) -> torch.Tensor:
    """Mean power per room over mics and samples: (B,)."""
    return x.double().pow(2).mean(dim=(1, 2))


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize(("cfg", "n_channels"), [(CFG, 2), (CFG_LOGMAG, 4)], ids=["ipd", "logmag"])
def test_feature_shapes(cfg, n_channels):
    audio = torch.from_numpy(_white((3, 2, 48000)))
    feats = features_from_audio(audio, cfg)
    assert feats.shape == (3, n_channels, 256, 301) and feats.dtype == torch.float32
    assert cfg.n_channels == n_channels and cfg.n_freq == 256 and cfg.n_frames(48000) == 301
    assert torch.isfinite(feats).all()


def test_dc_bin_is_dropped():
    """A tone on STFT bin 5 peaks at feature row 4."""
    t = np.arange(16000) / FS
    tone = np.sin(2 * np.pi * 5 * FS / 512 * t).astype(np.float32)
    spec = stft(torch.from_numpy(np.stack([tone, tone]))[None], CFG)
    assert spec.shape == (1, 2, 256, 101)
    assert int(spec.abs().mean(dim=(0, 1, 3)).argmax()) == 4


def test_logmag_channels():
    x = _white(48000, seed=1)
    feats = features_from_audio(torch.from_numpy(np.stack([x, 2 * x]))[None], CFG_LOGMAG)[0]
    torch.testing.assert_close(feats[0], torch.ones_like(feats[0]))  # identical phase: cos 1
    torch.testing.assert_close(feats[1], torch.zeros_like(feats[1]), atol=1e-5, rtol=0)
    mag = stft(torch.from_numpy(x), CFG).abs()
    torch.testing.assert_close(feats[2], torch.log(mag + 1e-5))
    loud = mag > 0.1  # away from the 1e-5 floor, log|2X| - log|X| = log 2
    assert loud.float().mean() > 0.99
    diff = (feats[3] - feats[2])[loud]
    torch.testing.assert_close(diff, torch.full_like(diff, float(np.log(2))), atol=1e-4, rtol=0)


def test_onset_channels_mark_where_energy_rises_and_ignore_the_level():
    """A tone burst that starts at 0.5 s and decays, over a faint noise floor: its bin rises once,
    at the start, by as much in both mics (one 6 dB quieter); the decaying tail holds no onset;
    the whole recording 20 dB louder changes nothing."""
    cfg = FeatureConfig(FS, 512, 160, ("ipd", "logmag", "onset"), 0.1)
    t = np.arange(FS) / FS
    burst = np.where(t >= 0.5, np.sin(2 * np.pi * 10 * FS / 512 * t) * np.exp(-(t - 0.5) / 0.1), 0.0)
    quiet = burst + 1e-3 * _white(FS, seed=2)  # a recording's noise floor scales with its level
    audio = torch.from_numpy(np.stack([quiet, 0.5 * quiet]).astype(np.float32))[None]
    feats = features_from_audio(audio, cfg)[0]
    assert feats.shape[0] == 6
    torch.testing.assert_close(feats[4:], onsets(feats[2:4]))
    row = feats[4, 9]  # bin 10 (the DC bin is dropped)
    start = int(row.argmax())
    assert abs(start - 0.5 * FS / 160) <= 3 and row[start] > 3  # from the floor to the tone: > e^3
    assert row[start + 4 :].max() < 0.1
    torch.testing.assert_close(feats[5, 9, start], feats[4, 9, start], atol=0.05, rtol=0)  # both mics
    loud = features_from_audio(10 * audio, cfg)[0]
    torch.testing.assert_close(loud[4:, 9, start], feats[4:, 9, start], atol=0.05, rtol=0)


def test_onsets_compare_each_frame_with_the_largest_of_the_frames_before():
    logmag = torch.tensor([[0.0, 1.0, 3.0, 2.0, 2.5, 2.0, 2.0, 4.0]])
    want = torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.5]])  # 2.5 < 3 of two frames before
    torch.testing.assert_close(onsets(logmag, frames=3), want)


def test_an_onset_threshold_drops_the_chance_rises_of_noise_and_lowers_a_real_onset_by_itself():
    """White noise: its bins' magnitudes are Rayleigh-distributed, so about a quarter of them rise
    over their previous frames by chance, and under 5 % by more than 6 dB. A tone's onset from a
    faint floor rises by far more; a 6 dB threshold lowers it by exactly 6 dB of magnitude."""
    plain = FeatureConfig(FS, 512, 160, ("ipd", "logmag", "onset"), 0.1)
    kept = FeatureConfig(FS, 512, 160, ("ipd", "logmag", "onset"), 0.1, onset_threshold_db=6.0)
    noise = torch.from_numpy(np.stack([_white(FS, seed=3), _white(FS, seed=4)]).astype(np.float32))[None]
    assert (features_from_audio(noise, plain)[0, 4:] > 0).float().mean() > 0.2
    assert (features_from_audio(noise, kept)[0, 4:] > 0).float().mean() < 0.05
    t = np.arange(FS) / FS
    tone = np.where(t >= 0.5, np.sin(2 * np.pi * 10 * FS / 512 * t), 0.0) + 1e-3 * _white(FS, seed=5)
    audio = torch.from_numpy(np.stack([tone, tone]).astype(np.float32))[None]
    row, row_kept = features_from_audio(audio, plain)[0, 4, 9], features_from_audio(audio, kept)[0, 4, 9]
    start = int(row.argmax())
    assert row[start] > 3 and int(row_kept.argmax()) == start
    assert float(row[start] - row_kept[start]) == pytest.approx(6 * np.log(10) / 20, abs=1e-5)


# ---------------------------------------------------------------- IPD physics


@pytest.mark.parametrize("k", [1, 2, 4, -3])
@pytest.mark.parametrize("seed", [0, 1])
def test_ipd_of_a_delay_is_a_negative_phase_slope(k, seed):
    """Mic 1 delayed by k samples: ipd = angle(X1 conj X0) = -2 pi f k / n_fft at STFT bin f."""
    x = _white(48000, seed)
    audio = torch.from_numpy(np.stack([x, np.roll(x, k)]))[None]
    feats = features_from_audio(audio, CFG)[0, :, :, 2:-2].double()  # edge frames see the wrap
    cos, sin = feats[0].mean(-1).numpy(), feats[1].mean(-1).numpy()
    expected = -2 * np.pi * np.arange(1, 257) * k / 512  # row r is bin r + 1 (DC dropped)
    np.testing.assert_allclose(cos, np.cos(expected), atol=0.05)
    np.testing.assert_allclose(sin, np.sin(expected), atol=0.05)
    phase_error = np.angle((cos + 1j * sin) * np.exp(-1j * expected))
    assert np.abs(phase_error).max() < 0.05


def test_ipd_sign_at_a_quarter_turn():
    """Delay 4 at mic 1: bin 32 is a quarter turn, sin(ipd) = -1 (a lead gives +1)."""
    x = _white(48000, 3)
    for k, sign in [(4, -1.0), (-4, 1.0)]:
        audio = torch.from_numpy(np.stack([x, np.roll(x, k)]))[None]
        sin = features_from_audio(audio, CFG)[0, 1, 31].mean()
        assert float(sin) * sign > 0.95


# ---------------------------------------------------------------- reverberant images


def test_reverberant_images_of_unit_impulses_are_shifted_dry_signals():
    n_taps, n_samples = 64, 1000
    taps = np.array([[[0, 63], [10, 11]], [[30, 5], [63, 0]]])  # (B, S, M)
    rirs = torch.zeros(2, 2, 2, n_taps, dtype=torch.float64)
    for (b, s, m), t in np.ndenumerate(taps):
        rirs[b, s, m, t] = 1.0
    dry = torch.from_numpy(np.random.default_rng(4).standard_normal((2, 2, n_samples + n_taps - 1)))
    out = reverberant_images(rirs, dry)
    assert out.shape == (2, 2, 2, n_samples)
    for (b, s, m), t in np.ndenumerate(taps):
        start = n_taps - 1 - t
        torch.testing.assert_close(out[b, s, m], dry[b, s, start : start + n_samples])


def test_reverberant_images_are_linear_in_the_rir():
    rng = np.random.default_rng(5)
    rirs = torch.from_numpy(rng.standard_normal((1, 1, 2, 32)))
    dry = torch.from_numpy(rng.standard_normal((1, 1, 500 + 31)))
    out = reverberant_images(rirs, dry)
    direct = np.convolve(dry[0, 0].numpy(), rirs[0, 0, 1].numpy(), mode="valid")
    np.testing.assert_allclose(out[0, 0, 1].numpy(), direct, atol=1e-10)


# ---------------------------------------------------------------- mixing


def _images(n_rooms=2, n_src=2, n=16000, seed=6) -> torch.Tensor:
    """White images at very different levels per source, so normalisation matters."""
    scale = np.array([0.01, 3.0, 40.0][:n_src])[None, :, None, None]
    return torch.from_numpy(_white((n_rooms, n_src, 2, n), seed) * scale.astype(np.float32))


def _rngs(seeds):
    return [np.random.default_rng(s) for s in seeds]


def _unit(images: torch.Tensor) -> np.ndarray:
    """Each source image at unit power over mics and samples, flattened: (B, S, M * n)."""
    x = images.double().numpy()
    x = x / np.sqrt((x**2).mean(axis=(2, 3), keepdims=True))
    return x.reshape(*x.shape[:2], -1)


def _levels(mixture: torch.Tensor, images: torch.Tensor) -> np.ndarray:
    """Least-squares weight of every unit-power source image in the mixture: (B, S)."""
    unit = _unit(images)
    return np.stack(
        [
            np.linalg.lstsq(unit[b].T, mixture[b].double().numpy().ravel(), rcond=None)[0]
            for b in range(len(unit))
        ]
    )


@pytest.mark.parametrize("snr_db", [None, (0.0, 20.0)], ids=["clean", "noisy"])
def test_mixtures_have_unit_rms(snr_db):
    images = _images()
    out = mix_sources(images, _rngs([1, 2]), (-5.0, 5.0), snr_db, CFG)
    assert out.shape == (2, 2, 16000) and out.dtype == torch.float32
    torch.testing.assert_close(_power(out), torch.ones(2, dtype=torch.float64), rtol=1e-5, atol=0)


@pytest.mark.parametrize("n_src", [2, 3])
def test_sir_sets_the_level_of_every_source_relative_to_source_0(n_src):
    images = _images(n_src=n_src)
    out = mix_sources(images, _rngs([1, 2]), (6.0, 6.0), None, CFG)
    levels = _levels(out, images)
    assert np.all(levels > 0)
    np.testing.assert_allclose(20 * np.log10(levels[:, 1:] / levels[:, :1]), 6.0, atol=1e-3)


def test_each_room_draws_its_level_from_its_own_rng():
    images = _images(n_rooms=3)
    seeds = [11, 12, 13]
    out = mix_sources(images, _rngs(seeds), (-5.0, 5.0), None, CFG)
    levels = _levels(out, images)
    drawn = [np.random.default_rng(s).uniform(-5.0, 5.0, size=1)[0] for s in seeds]
    np.testing.assert_allclose(20 * np.log10(levels[:, 1] / levels[:, 0]), drawn, atol=1e-3)
    assert len({round(d, 3) for d in drawn}) == 3


def test_snr_sets_the_noise_level_relative_to_the_clean_mixture():
    images = _images(n_rooms=2)
    seeds = [21, 22]
    clean = mix_sources(images, _rngs(seeds), (-5.0, 5.0), None, CFG)
    noisy = mix_sources(images, _rngs(seeds), (-5.0, 5.0), (10.0, 10.0), CFG)
    for b in range(2):
        c, n = clean[b].double().numpy().ravel(), noisy[b].double().numpy().ravel()
        speech = (n @ c) / (c @ c) * c  # the clean part of the noisy mixture (same gains)
        noise = n - speech
        snr = 10 * np.log10((speech @ speech) / (noise @ noise))
        assert snr == pytest.approx(10.0, abs=0.3)
    assert not torch.allclose(clean, noisy, atol=1e-2)


# ---------------------------------------------------------------- diffuse noise


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return diffuse_noise(np.random.default_rng(8), 10 * FS, CFG)


def test_diffuse_noise_has_unit_power_per_mic(noise):
    assert noise.shape == (2, 10 * FS) and noise.dtype == np.float64
    np.testing.assert_allclose((noise**2).mean(axis=1), 1.0, rtol=1e-3)
    np.testing.assert_allclose(noise.mean(axis=1), 0.0, atol=0.01)


def test_diffuse_noise_coherence_follows_sinc(noise):
    """Coherence sinc(2 pi f d / c): ~1 at low frequency, 0 at f = c / (2 d) = 1715 Hz."""
    freqs, msc = signal.coherence(noise[0], noise[1], FS, nperseg=512)
    assert np.all(msc[(freqs > 0) & (freqs < 300)] > 0.8)
    near_zero = np.abs(freqs - 343.0 / (2 * 0.1)) < 60
    assert near_zero.sum() >= 3 and np.all(msc[near_zero] < 0.05)
    _, cross = signal.csd(noise[0], noise[1], FS, nperseg=512)
    _, p0 = signal.welch(noise[0], FS, nperseg=512)
    _, p1 = signal.welch(noise[1], FS, nperseg=512)
    coherence = cross / np.sqrt(p0 * p1)
    expected = np.sinc(2 * freqs * 0.1 / 343.0)  # real, negative between 1715 and 3430 Hz
    assert np.abs(coherence.real - expected).mean() < 0.03
    assert np.abs(coherence.real - expected).max() < 0.15
    assert coherence.real[(freqs > 2200) & (freqs < 2800)].max() < -0.1
    assert np.abs(coherence.imag).mean() < 0.03


def test_diffuse_noise_coherence_depends_on_spacing():
    wide = diffuse_noise(np.random.default_rng(8), 10 * FS, FeatureConfig(FS, 512, 160, ("ipd",), 0.4))
    freqs, msc = signal.coherence(wide[0], wide[1], FS, nperseg=512)
    near_zero = np.abs(freqs - 343.0 / (2 * 0.4)) < 30  # 429 Hz
    assert np.all(msc[near_zero] < 0.05)
    assert np.all(msc[(freqs > 0) & (freqs < 60)] > 0.8)


def test_diffuse_noise_is_deterministic():
    a = diffuse_noise(np.random.default_rng(3), 1000, CFG)
    b = diffuse_noise(np.random.default_rng(3), 1000, CFG)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, diffuse_noise(np.random.default_rng(4), 1000, CFG))


# ---------------------------------------------------------------- labels of a split

ROOMS = pd.DataFrame(
    {
        "room": [0, 1, 2, 3],
        "src0_lateral_deg": [100.0, 3.0, 180.0, 47.5],
        "src1_lateral_deg": [20.0, 4.99, 0.0, 47.5],
        "src0_azimuth_deg": [10.0, 170.0, 90.0, 5.0],
        "src1_azimuth_deg": [160.0, 95.0, 89.9, 0.0],
    }
)


def _rooms(frame: pd.DataFrame, n_src: int = 2) -> Rooms:
    """Rooms whose stored (rooms.csv) angle labels are the frame's; geometry is irrelevant here."""
    n = len(frame)
    stored = {
        label: frame[[f"src{k}_{label}_deg" for k in range(n_src)]].to_numpy(dtype=np.float64)
        for label in ("lateral", "azimuth")
    }
    zeros = np.zeros((n, 3))
    return Rooms(
        zeros + 5, np.full(n, 0.3), zeros, np.zeros(n), np.zeros((n, 2, 3)), np.ones((n, n_src, 3)), stored
    )


def test_split_labels_lateral(raw):
    angles, classes = split_labels(_params(raw), _rooms(ROOMS))
    assert angles.dtype == np.float32 and classes.dtype == np.int64
    expected = np.array([[20, 100], [3, 4.99], [0, 180], [47.5, 47.5]], dtype=np.float32)
    np.testing.assert_array_equal(angles, expected)
    np.testing.assert_array_equal(classes, [[4, 20], [0, 0], [0, 35], [9, 9]])


def test_split_labels_azimuth(raw):
    p = _params(raw, labels__angle="azimuth", labels__class_width_deg=10.0, labels__n_classes=18)
    angles, classes = split_labels(p, _rooms(ROOMS))
    expected = np.array([[10, 160], [95, 170], [89.9, 90], [0, 5]], dtype=np.float32)
    np.testing.assert_array_equal(angles, expected)
    np.testing.assert_array_equal(classes, [[1, 16], [9, 17], [8, 9], [0, 0]])


def test_split_labels_source_count_must_match(raw):
    with pytest.raises(DualmicError) as err:
        split_labels(_params(raw, simulate__n_sources=3, features__active_sources=None), _rooms(ROOMS))
    message = str(err.value)
    assert "2 sources" in message and "simulate.n_sources is 3" in message and "\n" not in message


# ---------------------------------------------------------------- feature_batches


def _tiny(raw: dict, batch_size: int, **changes):
    r = copy.deepcopy(raw)
    r["simulate"]["splits"]["eval"]["n_rooms"] = 3
    r["features"].update(duration_s=0.5, batch_size=batch_size)
    for name, value in changes.items():
        section, key = name.split("__")
        r[section][key] = value
    return parse_params(r)


@pytest.fixture(scope="module")
def tiny_rirs() -> np.ndarray:
    rirs = np.random.default_rng(9).standard_normal((3, 2, 2, 800)) * np.exp(-np.arange(800) / 200)
    return rirs.astype(np.float32)


def _run(p, split: str, rirs: np.ndarray, rooms=None) -> tuple[list[int], np.ndarray, np.ndarray]:
    batches = list(feature_batches(p, split, rirs, rooms))
    starts = [int(b.rooms[0]) for b in batches]
    return (
        starts,
        np.concatenate([b.features for b in batches]),
        np.concatenate([b.mixture for b in batches]),
    )


def test_feature_batches_shapes_and_consistency(raw, tiny_rirs):
    p = _tiny(raw, 3)
    starts, feats, mix = _run(p, "eval", tiny_rirs)
    assert starts == [0]
    assert feats.shape == (3, 2 * len(p.features.channels), 256, 51) and feats.dtype == np.float16
    assert mix.shape == (3, 2, 8000) and mix.dtype == np.float32
    np.testing.assert_allclose((mix.astype(np.float64) ** 2).mean(axis=(1, 2)), 1.0, rtol=1e-5)
    again = features_from_audio(torch.from_numpy(mix), FeatureConfig.from_params(p)).numpy()
    np.testing.assert_array_equal(feats, again.astype(np.float16))


@pytest.mark.parametrize("batch_size", [1, 2])
def test_feature_batches_do_not_depend_on_batch_size(raw, tiny_rirs, batch_size):
    _, ref_feats, ref_mix = _run(_tiny(raw, 3), "eval", tiny_rirs)
    starts, feats, mix = _run(_tiny(raw, batch_size), "eval", tiny_rirs)
    assert starts == list(range(0, 3, batch_size))
    np.testing.assert_array_equal(feats, ref_feats)
    np.testing.assert_array_equal(mix, ref_mix)


def test_some_rooms_are_mixed_as_among_all_rooms(raw, tiny_rirs):
    """A room's features do not depend on which other rooms are featurised (the features stage
    featurises only the validation rooms of a train split mixed online)."""
    _, feats, mix = _run(_tiny(raw, 3, features__active_sources=[0.1, 0.3, 0.6]), "eval", tiny_rirs)
    for rooms in ([0, 2], [1], [2]):
        starts, some, some_mix = _run(
            _tiny(raw, 2, features__active_sources=[0.1, 0.3, 0.6]), "eval", tiny_rirs, np.array(rooms)
        )
        assert starts == rooms[::2]
        np.testing.assert_array_equal(some, feats[rooms])
        np.testing.assert_array_equal(some_mix, mix[rooms])
    p = _tiny(raw, 2, features__active_sources=[0.1, 0.3, 0.6])
    drawn = np.concatenate([b.active for b in feature_batches(p, "eval", tiny_rirs)])
    np.testing.assert_array_equal(split_active(p, "eval", 3), drawn)


def test_feature_batches_are_deterministic_and_seeded(raw, tiny_rirs):
    _, feats, mix = _run(_tiny(raw, 2), "eval", tiny_rirs)
    _, feats2, mix2 = _run(_tiny(raw, 2), "eval", tiny_rirs)
    np.testing.assert_array_equal(feats, feats2)
    np.testing.assert_array_equal(mix, mix2)
    _, _, other_split = _run(_tiny(raw, 2), "train", tiny_rirs)
    _, _, other_seed = _run(_tiny(raw, 2, features__seed=8), "eval", tiny_rirs)
    _, _, other_sources = _run(_tiny(raw, 2, sources__seed=2), "eval", tiny_rirs)
    for other in (other_split, other_seed, other_sources):
        assert np.abs(other - mix).max() > 0.1
    assert np.abs(mix[0] - mix[1]).max() > 0.1  # rooms differ from each other


def test_split_labels_need_the_stored_label_columns(raw):
    rooms = _rooms(ROOMS)
    rooms.stored_angles.pop("lateral")
    with pytest.raises(DualmicError) as err:
        split_labels(_params(raw), rooms)
    message = str(err.value)
    assert "src0_lateral_deg, src1_lateral_deg" in message and "\n" not in message
