"""On-the-fly training mixtures (data/online.py): determinism per (seed, epoch, room), the physics
of what is mixed (talkers and a point noise through their own RIRs, diffuse fields, microphone
errors) and a training run that uses them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tests_support import REPO, tiny_raw_params

from dualmic.core.errors import DualmicError
from dualmic.core.params import parse_params
from dualmic.data.online import Draw, OnlineMixer
from dualmic.data.perturb import mic_mismatch
from dualmic.data.pool import build_pool

FS = 16000
KEMAR = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
LAGS = (6, -4)  # mic-1 delay (samples) of source 0 and source 1 in the delay-only "rooms"


def _params(active=(0.0, 0.0, 1.0), **augment):
    """Tiny params: ``active`` = features.active_sources (probability of 0, 1, 2 talkers), and
    no condition but those ``augment`` asks for."""
    raw = tiny_raw_params()
    raw["online"] = {"talkers": ["synthetic"], "synthetic_talkers": 8, "clip_s": 3.0, "noise_s": 3.0}
    raw["features"]["active_sources"] = list(active)
    none = {"point_noise": 0.0, "noise_source": 0.0, "diffuse": 0.0, "sensor": 0.0}
    raw["augment"].update(none, mic={"probability": 0.0})  # nothing but what the test asks for
    raw["augment"].update(augment)
    return parse_params(raw)


def _delay_rirs(n_rooms: int, taps: int = 64) -> np.ndarray:
    """Rooms without walls: mic 0 hears source k at sample 10, mic 1 at 10 + LAGS[k]."""
    rirs = np.zeros((n_rooms, 2, 2, taps), np.float32)
    for k, lag in enumerate(LAGS):
        rirs[:, k, 0, 10] = 1.0
        rirs[:, k, 1, 10 + lag] = 1.0
    return rirs


def _mixer(p, rirs=None, n_rooms=6, angles=None):
    rirs = _delay_rirs(n_rooms) if rirs is None else rirs
    angles = np.tile([30.0, 120.0], (len(rirs), 1)) if angles is None else angles
    return OnlineMixer(rirs, angles, build_pool(p.online, FS), p)


def _lag(x: np.ndarray, max_lag: int = 12) -> int:
    """Mic-1 delay of the dominant sound (GCC-PHAT peak of the Hann-windowed first differences:
    brown noise's drift would otherwise put an edge at lag 0)."""
    x = np.diff(x, axis=-1) * np.hanning(x.shape[-1] - 1)
    n = 2 * x.shape[-1]
    cross = np.fft.rfft(x[1], n) * np.conj(np.fft.rfft(x[0], n))
    cc = np.fft.irfft(cross / (np.abs(cross) + 1e-12), n)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    return int(lags[np.argmax(np.r_[cc[: max_lag + 1], cc[-max_lag:]])])


def test_an_example_depends_on_seed_epoch_and_room_only():
    p = _params((0.1, 0.4, 0.5), point_noise=0.5, diffuse=0.5, sensor=0.5, mic={"probability": 0.5})
    mixer = _mixer(p)
    x1, y1 = mixer.batch([0, 3, 5])
    x2, y2 = mixer.batch([5, 0])
    assert torch.equal(x1[2], x2[0]) and torch.equal(x1[0], x2[1])
    np.testing.assert_array_equal(y1[2].numpy(), y2[0].numpy())  # NaN (no source) equals NaN
    again = _mixer(p).batch([0, 3, 5])
    assert torch.equal(again[0], x1), "the same params give bit-identical batches"
    mixer.epoch = 1
    x3, _ = mixer.batch([0, 3, 5])
    assert not torch.equal(x3, x1), "every epoch draws new mixtures"
    assert x1.shape == (3, 2 * len(p.features.channels), p.features.n_fft // 2, p.window_frames)


def test_each_talker_reaches_the_mics_through_its_own_rirs():
    p = _params((0.0, 1.0, 0.0))
    mixer = _mixer(p, n_rooms=12)
    mixture, draws = mixer.mixtures(np.arange(12))
    labels = mixer.labels(np.arange(12), draws).numpy()
    for x, d, y in zip(mixture.numpy(), draws, labels, strict=True):
        (talker,) = d.talkers
        assert _lag(x) == LAGS[talker]
        # one talker: slot 1 carries its angle, slot 2 holds no source
        assert y[0] == (30.0 if talker == 0 else 120.0) and np.isnan(y[1])


def test_rooms_without_talkers_hold_noise_and_no_source():
    p = _params((1.0, 0.0, 0.0), diffuse=0.0)
    mixer = _mixer(p, n_rooms=6)
    mixture, draws = mixer.mixtures(np.arange(6))
    assert all(d.talkers == () and d.diffuse is not None for d in draws)
    assert torch.allclose(mixture.pow(2).mean(dim=(1, 2)), torch.ones(6), atol=1e-3)  # noise, not silence
    assert np.isnan(mixer.labels(np.arange(6), draws).numpy()).all()


def test_two_talkers_at_nearly_one_angle_are_labelled_one_source():
    raw = _params((0.0, 0.0, 1.0)).model_dump()
    raw["labels"].update(counting=True, min_separation_deg=3.0)
    p = parse_params(raw)
    angles = np.array([[30.0, 32.0], [30.0, 120.0], [60.0, 62.9], [60.0, 63.0]])
    mixer = _mixer(p, n_rooms=4, angles=angles)
    _, draws = mixer.mixtures(np.arange(4))
    assert all(len(d.talkers) == 2 for d in draws)
    expected = [[31.0, np.nan], [30.0, 120.0], [61.45, np.nan], [60.0, 63.0]]
    np.testing.assert_allclose(mixer.labels(np.arange(4), draws).numpy(), expected)


def test_full_circle_labels_take_their_slots_by_the_folded_angle():
    raw = _params((0.0, 0.0, 1.0)).model_dump()
    raw["labels"].update(counting=True, angle="azimuth360", n_classes=72)
    p = parse_params(raw)
    # behind at 300 (60 from the right ear) comes before 100 in front; 45 and its mirror 315 tie
    angles = np.array([[100.0, 300.0], [45.0, 315.0]])
    mixer = _mixer(p, n_rooms=2, angles=angles)
    _, draws = mixer.mixtures(np.arange(2))
    np.testing.assert_allclose(mixer.labels(np.arange(2), draws).numpy(), [[300.0, 100.0], [45.0, 315.0]])


def test_a_point_noise_sits_at_the_silent_talkers_position():
    p = _params((0.0, 1.0, 0.0), point_noise=1.0, point_noise_snr_db=[-40.0, -40.0])
    mixture, draws = _mixer(p, n_rooms=8).mixtures(np.arange(8))
    for x, d in zip(mixture.numpy(), draws, strict=True):
        (talker,) = d.talkers
        assert d.point_noise is not None
        assert _lag(x) == LAGS[1 - talker], "at -40 dB SNR the noise source dominates"


def test_a_noise_source_reaches_the_mics_through_its_own_position_rirs():
    p = _params(noise_source=1.0, point_noise_snr_db=[-40.0, -40.0])
    noise_rirs = np.zeros((6, 1, 2, 64), np.float32)
    noise_rirs[:, 0, 0, 10], noise_rirs[:, 0, 1, 12] = 1.0, 1.0  # the noise position: lag 2
    mixer = OnlineMixer(_delay_rirs(6), np.tile([30.0, 120.0], (6, 1)), build_pool(p.online, FS), p,
                        noise_rirs=noise_rirs)  # fmt: skip
    mixture, draws = mixer.mixtures(np.arange(6))
    assert all(d.noise_source is not None and len(d.talkers) == 2 for d in draws)
    assert [_lag(x) for x in mixture.numpy()] == [2] * 6
    with pytest.raises(DualmicError, match="simulate.noise_sources"):
        _mixer(p)


def test_two_talkers_levels_follow_the_drawn_gains():
    p = _params()
    p = p.model_copy(update={"features": p.features.model_copy(update={"sir_db": (-30.0, -30.0)})})
    mixture, _ = _mixer(p).mixtures(np.arange(4))
    for x in mixture.numpy():  # source 1 is 30 dB below source 0
        assert _lag(x) == LAGS[0]


def test_diffuse_noise_has_the_coherence_of_a_spherical_field_and_the_drawn_snr():
    p = _params(diffuse=1.0, diffuse_snr_db=[-60.0, -60.0])
    mixer = _mixer(p, n_rooms=16)
    mixture, draws = mixer.mixtures(np.arange(16))
    kinds = {d.diffuse[0] for d in draws}
    assert kinds <= {"noise", "babble"} and all(d.diffuse[3] == -60.0 for d in draws)
    noise_rows = [i for i, d in enumerate(draws) if d.diffuse[0] == "noise" and d.diffuse[1][0] == 0]
    assert noise_rows, "a white diffuse field among 16 draws"
    from scipy.signal import coherence

    x = mixture.numpy()[noise_rows[0]].astype(np.float64)
    f, coh = coherence(x[0], x[1], fs=FS, nperseg=256)
    d = p.simulate.mic_distance_m
    expected = np.sinc(2 * f * d / p.simulate.speed_of_sound) ** 2
    band = (f > 300) & (f < 6000)
    assert np.mean(np.abs(coh[band] - expected[band])) < 0.12


def test_diffuse_noise_follows_each_rooms_own_receivers():
    """A split that mixes heads in gives each room's receiver distance: the params' distance for
    every room mixes what the plain mixer mixes, and each room's field has its own coherence."""
    p = _params(diffuse=1.0, diffuse_snr_db=[-60.0, -60.0])
    rooms = np.arange(16)
    plain, draws = _mixer(p, n_rooms=16).mixtures(rooms)
    pool = build_pool(p.online, FS)
    same = OnlineMixer(_delay_rirs(16), np.tile([30.0, 120.0], (16, 1)), pool, p,
                       mic_distance_m=np.full(16, p.simulate.mic_distance_m))  # fmt: skip
    np.testing.assert_allclose(same.mixtures(rooms)[0].numpy(), plain.numpy(), atol=1e-5)
    wide = np.where(rooms % 2 == 1, 0.18, p.simulate.mic_distance_m)
    mixed = OnlineMixer(_delay_rirs(16), np.tile([30.0, 120.0], (16, 1)), pool, p, mic_distance_m=wide)
    mixture = mixed.mixtures(rooms)[0].numpy()
    from scipy.signal import coherence

    rows = [i for i, d in enumerate(draws) if d.diffuse[0] == "noise" and d.diffuse[1][0] == 0]
    assert {r % 2 for r in rows} == {0, 1}, "white diffuse fields in rooms of both kinds among 16 draws"
    for i in rows:
        f, coh = coherence(*mixture[i].astype(np.float64), fs=FS, nperseg=256)
        expected = np.sinc(2 * f * wide[i] / p.simulate.speed_of_sound) ** 2
        band = (f > 300) & (f < 6000)
        assert np.mean(np.abs(coh[band] - expected[band])) < 0.12


def test_mic_errors_match_the_conditions_test_filters():
    x = np.random.default_rng(0).standard_normal((2, 4000))
    gain, tilt, allpass = (1.0, -2.0), (0.2, -0.3), (0.04, -0.05)
    expected = mic_mismatch(x, np.array(gain), np.array(tilt), np.array(allpass))
    mixer = _mixer(_params())
    mixer.n = x.shape[1]
    draw = Draw((0,), (0.0,), (0,), (0,), None, None, None, (gain, tilt, allpass))
    got = mixer._mics(torch.from_numpy(x).float()[None], [draw])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())


def test_a_pool_without_talkers_is_a_clear_error():
    p = _params()
    online = p.online.model_copy(update={"synthetic_talkers": 1})
    with pytest.raises(DualmicError, match="at least 2"):
        build_pool(online, FS)


def test_clips_shorter_than_a_window_plus_the_rir_are_refused():
    p = _params()
    rirs = np.zeros((2, 2, 2, int(2.5 * FS)), np.float32)  # 1-s window + 2.5-s RIR > 3-s clips
    with pytest.raises(DualmicError, match="online.clip_s"):
        _mixer(p, rirs=rirs)


def test_training_with_online_mixing_runs_and_is_deterministic(tmp_path):
    raw = tiny_raw_params()
    raw["simulate"]["splits"]["train"]["n_rooms"] = 8
    raw["train"].update(mixing="online", epochs=2)
    raw["online"] = {"talkers": ["synthetic"], "synthetic_talkers": 6, "clip_s": 2.0, "noise_s": 2.0}
    raw["augment"].update(diffuse=0.5, noise_source=0.5, mic={"probability": 0.5})
    raw["simulate"]["noise_sources"] = 1
    heads = KEMAR.is_file()  # some rooms heard through the head (make hrtf-deps installs it)
    raw["simulate"]["splits"]["train"]["head_fraction"] = 0.5 if heads else 0.0
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    roots = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        if name == "a":
            for stage, arg in (("simulate", "train"), ("features", "train")):
                cmd = [sys.executable, str(REPO / f"stages/{stage}.py"), arg]
                subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
        else:
            shutil.copytree(tmp_path / "a" / "data", root / "data")
        proc = subprocess.run(
            [sys.executable, str(REPO / "stages/train.py")], cwd=root, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        roots.append(root)
    metrics = json.loads((roots[0] / "metrics/train/metrics.json").read_text())
    assert metrics["step"] == 1 and np.isfinite(metrics["val"]["mae_deg"])
    # the features stage featurised the one validation room only (8 rooms, val_fraction 0.1)
    featurised = np.load(roots[0] / "data/features/train/rooms.npy")
    assert len(featurised) == 1 and len(np.load(roots[0] / "data/features/train/features.npy")) == 1
    assert len(np.load(roots[0] / "data/features/train/labels.npy")) == 8
    assert (roots[0] / "models/model.pt").read_bytes() == (roots[1] / "models/model.pt").read_bytes()
    meta = torch.load(roots[0] / "models/model.pt", weights_only=True)["meta"]
    if heads:  # the rooms heard through the head are marked, and the model knows its ears
        table = pd.read_csv(roots[0] / "data/rirs/train/rooms.csv")
        assert 0 < table["head"].sum() < 8
        assert abs(meta["head_ear_distance_m"] - table["mic_distance"].max()) < 1e-6
        assert abs(meta["head_ear_distance_m"] - 0.18) < 0.01


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (make espeak)")
def test_the_pool_adds_espeak_talkers_of_untested_languages():
    p = _params()
    online = p.online.model_copy(
        update={"talkers": ("espeak",), "espeak_talkers": 3, "espeak_voices": ("nl", "pl+m2"), "clip_s": 2.0}
    )
    pool = build_pool(online, FS)
    assert pool.talkers.shape == (3, 2 * FS)
    rms = pool.talkers.double().pow(2).mean(1).sqrt()
    np.testing.assert_allclose(rms.numpy(), 1.0, atol=1e-3)
    assert not torch.equal(pool.talkers[0], pool.talkers[1])  # two voices, two texts
    assert torch.equal(build_pool(online, FS).talkers, pool.talkers)  # espeak-ng is deterministic


def test_the_pools_energy_table_sums_each_talkers_blocks_across_build_steps():
    """build_pool scales and sums a few clips at a time: every clip, on either side of a step,
    is unit RMS and its cumulative block energy is that of its own samples."""
    from dualmic.data.pool import _BLOCK, _ROWS

    p = _params()
    online = p.online.model_copy(
        update={"talkers": ("synthetic",), "synthetic_talkers": _ROWS + 3, "clip_s": 0.5}
    )
    pool = build_pool(online, FS)
    talkers = pool.talkers.double().numpy()
    np.testing.assert_allclose(np.sqrt((talkers**2).mean(1)), 1.0, atol=1e-6)
    n_blocks = talkers.shape[1] // _BLOCK
    blocks = (talkers[:, : n_blocks * _BLOCK] ** 2).reshape(len(talkers), n_blocks, _BLOCK).sum(-1)
    want = np.concatenate([np.zeros((len(talkers), 1)), np.cumsum(blocks, axis=1)], axis=1)
    np.testing.assert_allclose(pool.energy, want, rtol=1e-9, atol=1e-9)
    assert pool.energy.shape == (_ROWS + 3, n_blocks + 1)


def test_online_training_without_the_speech_bank_says_what_to_run(tmp_path):
    raw = tiny_raw_params()
    raw["online"]["talkers"] = ["synthetic", "speech"]
    p = parse_params(raw)
    with pytest.raises(DualmicError, match="dvc repro speech"):
        build_pool(p.online, FS, tmp_path / "no_speech")


def test_the_pool_holds_the_speech_banks_clips(tmp_path):
    import soundfile as sf

    bank = tmp_path / "speech"
    (bank / "clips").mkdir(parents=True)
    rows = ["file,language,voice,package,n_words,words"]
    for i, f0 in enumerate((150.0, 220.0)):
        t = np.arange(FS) / FS
        sf.write(bank / "clips" / f"clip_{i:05d}.flac", 0.3 * np.sin(2 * np.pi * f0 * t), FS)
        rows.append(f"clips/clip_{i:05d}.flac,en,v{i},ktuberling-data,1,w")
    (bank / "index.csv").write_text("\n".join(rows) + "\n")
    p = _params()
    online = p.online.model_copy(update={"talkers": ("synthetic", "speech"), "synthetic_talkers": 3})
    pool = build_pool(online, FS, bank)
    assert len(pool.talkers) == 5 and pool.talkers.shape[1] == int(online.clip_s * FS)
    rms = pool.talkers.pow(2).mean(1).sqrt()
    torch.testing.assert_close(rms, torch.ones(5), atol=1e-3, rtol=0)
    spectrum = np.abs(np.fft.rfft(pool.talkers[3, :FS].numpy()))
    assert abs(np.argmax(spectrum) - 150) <= 1, "the first bank clip (150 Hz), tiled to clip_s"
    only = build_pool(online.model_copy(update={"talkers": ("speech",)}), FS, bank)
    assert len(only.talkers) == 2


def test_an_overlapping_voice_comes_from_its_talkers_position():
    p = _params((0.0, 1.0, 0.0), talker_overlap=1.0)
    mixer = _mixer(p)
    x, y = mixer.batch([0, 1, 2])
    draws = [mixer.draw(r) for r in (0, 1, 2)]
    for d in draws:  # one talker, and a second excerpt over it from the same source
        assert len(d.talkers) == 1 and [o[0] for o in d.overlaps] == list(d.talkers)
    assert np.isnan(y[:, 1].numpy()).all(), "still one source per room: sources are positions"
    audio, _ = mixer.mixtures(np.array([0, 1, 2]))
    for a, d in zip(audio.numpy(), draws, strict=True):
        assert _lag(a) == LAGS[d.talkers[0]]
    plain = _mixer(_params((0.0, 1.0, 0.0), talker_overlap=0.0))
    a0, _ = plain.mixtures(np.array([0]))
    assert not torch.equal(a0, audio[:1]), "the overlapping excerpt is heard"
    assert plain.draw(0).overlaps == ()
    assert plain.draw(0).clips == draws[0].clips, "talker_overlap draws after every other draw"


def test_a_gapped_talker_falls_silent_between_stretches_of_speech():
    p = _params((0.0, 1.0, 0.0), talker_gaps=1.0)
    mixer = _mixer(p, n_rooms=40)
    mixer.pool.talkers = torch.randn(mixer.pool.talkers.shape, generator=torch.Generator().manual_seed(0))
    whole = 0  # rooms whose window holds a whole silence
    for room in range(40):
        ((k, on, off, _phase),) = mixer.draw(room).gaps
        assert 0.2 * FS <= on <= 0.8 * FS and 0.1 * FS <= off <= 0.6 * FS
        audio, _ = mixer.mixtures(np.array([room]))
        assert np.abs(audio[0].numpy()).max() > 0.1
        quiet = np.abs(audio[0].numpy()).max(0) < 1e-4  # both mics silent (FFT round-off aside)
        edges = np.flatnonzero(np.diff(np.r_[0, quiet.astype(np.int8), 0]))
        starts, ends = edges[::2], edges[1::2]
        inner = (ends - starts)[(starts > 0) & (ends < len(quiet))]  # not cut by the window's ends
        # each silence of the dry talker is heard shortened by the 6-sample spread of its two paths
        assert np.all(inner == off - abs(LAGS[k])), (inner, off)
        whole += len(inner) > 0
    assert whole >= 5


def test_a_band_limited_talker_is_heard_without_the_band_above_its_cut_off():
    p = _params((0.0, 0.0, 1.0), band_limit=1.0, band_limit_hz=[3000.0, 5000.0])
    mixer = _mixer(p, n_rooms=8)
    mixer.pool.talkers = torch.randn(mixer.pool.talkers.shape, generator=torch.Generator().manual_seed(0))
    audio, draws = mixer.mixtures(np.arange(8))
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / FS)
    window = np.hanning(audio.shape[-1])
    for a, d in zip(audio.numpy(), draws, strict=True):
        assert sorted(k for k, _ in d.band_limits) == [0, 1]  # both talkers, each its own cut-off
        top = max(c for _, c in d.band_limits)
        assert 3000.0 <= min(c for _, c in d.band_limits) and top <= 5000.0
        power = np.abs(np.fft.rfft(a * window, axis=-1)) ** 2
        above = power[:, freqs > top + 100].sum() / power.sum()
        assert above < 1e-5, above  # white-noise talkers: about half their power lies above 4 kHz
    plain = _mixer(_params((0.0, 0.0, 1.0)), n_rooms=8)
    plain.pool.talkers = mixer.pool.talkers
    full, plain_draws = plain.mixtures(np.arange(8))
    power = np.abs(np.fft.rfft(full[0].numpy() * window, axis=-1)) ** 2
    assert power[:, freqs > 5100].sum() / power.sum() > 0.2
    assert plain_draws[0].band_limits == () and plain_draws[0].clips == draws[0].clips, (
        "band_limit draws after every other draw"
    )


def test_a_cut_off_at_or_above_nyquist_is_a_one_line_error():
    raw = tiny_raw_params()
    raw["augment"]["band_limit_hz"] = [3000.0, 8000.0]
    with pytest.raises(DualmicError, match=r"augment.band_limit_hz max 8000 Hz is not below the Nyquist"):
        parse_params(raw)
