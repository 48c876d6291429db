"""The conditions test: each condition renders what it says, from seeds no split uses, and the
stage scores it reproducibly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.signal import coherence
from tests_support import REPO, direct_ild_db, tiny_raw_params

from dualmic.core.errors import DualmicError
from dualmic.core.params import parse_params
from dualmic.core.schema_conditions import CONDITION_NAMES, ConditionsParams
from dualmic.data import espeak
from dualmic.data.features import FeatureConfig, features_from_audio
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import model_config, model_meta, save_model
from dualmic.pipeline import conditions as stage
from dualmic.scoring.condition_mixtures import render_condition, take_turns, talker_pool
from dualmic.scoring.conditions import (
    CONDITIONS,
    TURN_OVERLAP_S,
    condition_rirs,
    condition_rooms,
    condition_taps,
)
from dualmic.sim.acoustics import rt60 as measured_rt60
from dualmic.sim.batches import room_spec
from dualmic.sim.rooms import sample_rooms

SCRIPT = REPO / "stages" / "conditions.py"


@pytest.fixture(scope="module")
def params():
    return parse_params(tiny_raw_params())


@pytest.fixture(scope="module")
def rendered(params):
    """Every condition of the tiny params, rendered once."""
    pool = talker_pool(params)
    return {name: render_condition(CONDITIONS[name], params, pool) for name in CONDITION_NAMES}


def _snr_db(r) -> np.ndarray:
    return 10 * np.log10(
        np.mean(r.speech.astype(np.float64) ** 2, axis=(1, 2)) / np.mean(r.noise**2, axis=(1, 2))
    )


def _elevation_deg(rooms) -> np.ndarray:
    d = rooms.src_pos - rooms.array_center[:, None, :]
    return np.degrees(np.arcsin(d[..., 2] / np.linalg.norm(d, axis=-1)))


# --------------------------------------------------------------------------- params and seeds


def test_conditions_are_the_schema_names_and_all_run_by_default(params):
    assert tuple(CONDITIONS) == CONDITION_NAMES
    assert len(CONDITION_NAMES) == 16
    assert params.conditions.selected == CONDITION_NAMES
    assert parse_params(tiny_raw_params() | {"conditions": {}}).conditions.n_rooms == 40


def test_room_seeds_differ_from_every_split_and_each_other(params):
    seeds = [params.conditions.room_seed(n) for n in CONDITION_NAMES]
    assert len(set(seeds)) == len(seeds)
    assert not set(seeds) & {s.seed for s in params.simulate.splits.values()}
    # and the rooms are others than the eval split's
    eval_rooms = sample_rooms(room_spec(params.simulate), params.simulate.split("eval").seed, 0, 2)
    clean = condition_rooms(CONDITIONS["clean"], params, 0, 2)
    assert not np.allclose(clean.room_dim, eval_rooms.room_dim)


@pytest.mark.parametrize("collide", ["seed", "room_seed"])
def test_a_conditions_seed_that_meets_a_split_seed_is_refused(collide):
    raw = tiny_raw_params()
    if collide == "seed":
        raw["conditions"]["seed"] = raw["simulate"]["splits"]["eval"]["seed"]
    else:  # a split whose seed is the room seed of a condition
        raw["simulate"]["splits"]["eval"]["seed"] = ConditionsParams(seed=77).room_seed("elevated")
        raw["conditions"]["seed"] = 77
    with pytest.raises(DualmicError) as err:
        parse_params(raw)
    message = str(err.value)
    assert "\n" not in message and "conditions.seed" in message and "simulate.splits.eval" in message
    if collide == "room_seed":
        assert "elevated" in message


@pytest.mark.parametrize(
    ("names", "expected"),
    [(["clean", "diffuse_snr11"], "did you mean diffuse_snr10?"), (["nonsense"], "known: clean,")],
)
def test_an_unknown_condition_is_a_one_line_error(names, expected):
    raw = tiny_raw_params()
    raw["conditions"]["names"] = names
    with pytest.raises(DualmicError) as err:
        parse_params(raw)
    assert "\n" not in str(err.value) and "conditions.names" in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("voice", ["klingon", "xx-yy", "en us"])
def test_a_voice_of_another_language_is_refused(voice):
    raw = tiny_raw_params()
    raw["conditions"]["voices"] = [voice]
    with pytest.raises(DualmicError, match="conditions.voices"):
        parse_params(raw)


# --------------------------------------------------------------------------- talkers


def test_espeak_speaks_the_same_samples_every_time():
    spec = espeak.talker_specs(("de+f2",), 1, 3, 1.0)[0]
    first, rate = espeak._speak(spec)
    second, _ = espeak._speak(spec)
    assert rate > 0 and len(first) > rate  # over a second of speech
    assert np.array_equal(first, second)
    assert espeak.voice_language("es-419+m1") == "es"


def test_talkers_vary_voice_rate_pitch_and_text():
    specs = espeak.talker_specs(("en-us", "de+f2", "fr-fr+m2"), 6, 1, 3.0)
    assert [s.voice for s in specs] == ["en-us", "de+f2", "fr-fr+m2"] * 2
    assert len({s.speed_wpm for s in specs}) > 1 and len({s.pitch for s in specs}) > 1
    assert len({s.text for s in specs}) == 6
    assert specs == espeak.talker_specs(("en-us", "de+f2", "fr-fr+m2"), 6, 1, 3.0)


def test_voices_of_other_languages_read_words_of_the_known_ones():
    specs = espeak.talker_specs(("nl", "pt+f1"), 10, 2, 2.0)
    vocab = [set(words) for words in espeak.WORDS.values()]
    for s in specs:
        words = {w.strip(".").lower() for w in s.text.split()}
        assert any(words <= {w.lower() for w in v} for v in vocab), s.text
    languages = {next(k for k, v in espeak.WORDS.items() if s.text.split()[0].strip(".").lower() in
                      {w.lower() for w in v}) for s in specs}  # fmt: skip
    assert len(languages) > 1  # the talkers take the word lists in turn


def test_missing_espeak_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None)
    with pytest.raises(DualmicError, match="apt-get install espeak-ng") as err:
        espeak._speak(espeak.TalkerSpec("en-us", 150, 50, "Not cached."))
    assert "\n" not in str(err.value)


def test_a_voice_espeak_does_not_know_is_a_one_line_error():
    """(params validation refuses such a voice first; espeak-ng falls back to a language's voice)"""
    with pytest.raises(DualmicError, match="espeak-ng failed for voice 'qq'") as err:
        espeak._speak(espeak.TalkerSpec("qq", 150, 50, "Hello there."))
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- what each condition renders


def test_every_mixture_is_speech_plus_noise_at_unit_rms_with_its_features(params, rendered):
    cfg = FeatureConfig.from_params(params)
    for name, r in rendered.items():
        n = params.conditions.n_rooms
        assert r.mixture.shape == r.speech.shape == r.noise.shape == (n, 2, params.n_samples), name
        assert r.angles.shape == (n, 2) and np.all(np.isfinite(r.angles[:, 0])), name
        assert np.all(np.diff(r.angles, axis=1)[np.isfinite(r.angles[:, 1])] >= 0), name
        np.testing.assert_allclose(np.sqrt(np.mean(r.mixture**2, axis=(1, 2))), 1.0, rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(r.speech + r.noise, r.mixture, atol=1e-5, err_msg=name)
        feats = features_from_audio(torch.from_numpy(r.mixture), cfg).numpy().astype(np.float16)
        assert r.features.dtype == np.float16 and np.array_equal(r.features, feats), name


@pytest.mark.parametrize(
    ("name", "snr"),
    [
        ("diffuse_snr20", 20),
        ("diffuse_snr10", 10),
        ("diffuse_snr5", 5),
        ("diffuse_snr0", 0),
        ("babble_snr10", 10),
        ("point_noise_snr5", 5),
        ("mic_mismatch", 30),
    ],
)
def test_noise_is_at_the_conditions_snr(rendered, name, snr):
    np.testing.assert_allclose(_snr_db(rendered[name]), snr, atol=0.01)


@pytest.mark.parametrize(
    "name",
    [
        "clean",
        "rt60_0.7-1.0",
        "elevated",
        "close_talkers",
        "single_talker",
        "turn_taking",
        "narrowband",
        "binaural",
    ],
)
def test_conditions_without_noise_add_none(rendered, name):
    assert not np.any(rendered[name].noise)


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("diffuse_snr0", (0.8, 1.0), (0.0, 0.1)),  # coherence sinc(2 pi f d / c): 1 at 0 Hz, ~0 above c / d
        ("babble_snr10", (0.8, 1.0), (0.0, 0.3)),  # diffuse too (talkers carry less treble: noisier)
        ("point_noise_snr5", (0.8, 1.0), (0.3, 1.0)),  # one direction: coherent but for the reverb
        ("mic_mismatch", (0.0, 0.2), (0.0, 0.2)),  # sensor noise: independent per mic
    ],
)
def test_noise_fields_have_the_inter_mic_coherence_of_their_kind(params, rendered, name, low, high):
    """Mean magnitude-squared coherence of the noise at the two mics, 50-300 Hz and 4-7 kHz."""
    for noise in rendered[name].noise:
        freq, msc = coherence(noise[0], noise[1], fs=params.simulate.sample_rate, nperseg=512)
        got_low = msc[(freq > 50) & (freq < 300)].mean()
        got_high = msc[(freq > 4000) & (freq < 7000)].mean()
        assert low[0] <= got_low <= low[1] and high[0] <= got_high <= high[1], (got_low, got_high)


def test_point_noise_is_a_third_source_the_labels_leave_out(params, rendered):
    r = rendered["point_noise_snr5"]
    assert r.rooms.n_sources == 3
    expected = np.sort(r.rooms.angles(params.labels.angle)[:, :2], axis=1)
    np.testing.assert_allclose(r.angles, expected)


def test_single_talker_labels_carry_its_angle_and_no_second_source(params, rendered):
    r = rendered["single_talker"]
    assert r.rooms.n_sources == 1
    assert np.isnan(r.angles[:, 1]).all()
    np.testing.assert_allclose(r.angles[:, 0], r.rooms.angles(params.labels.angle)[:, 0])
    for name, other in rendered.items():  # every other condition has two talkers
        assert name == "single_talker" or np.isfinite(other.angles).all(), name


def test_binaural_rooms_are_heard_by_the_ears_of_the_measured_head(params, rendered):
    """The binaural condition's receivers are the KEMAR's ears (18 cm apart, about the array
    centre) whatever simulate.array.kind is: its direct sounds are louder at the nearer ear above
    3 kHz, by more than two free-field mics ever are."""
    r = rendered["binaural"]
    assert r.rooms.head.all() and rendered["clean"].rooms.head is None
    spacing = np.linalg.norm(r.rooms.mic_pos[:, 1] - r.rooms.mic_pos[:, 0], axis=-1)
    assert np.all(np.abs(spacing - 0.18) < 0.01)
    np.testing.assert_allclose(r.rooms.mic_pos.mean(1), r.rooms.array_center, atol=1e-12)
    cond, fs = CONDITIONS["binaural"], params.simulate.sample_rate
    rooms = condition_rooms(cond, params, 0, 16)
    lateral = rooms.angles("lateral")
    ild = direct_ild_db(condition_rirs(cond, params, rooms, 0), fs)
    right, left = lateral < 45, lateral > 135
    assert right.any() and left.any()
    assert np.median(ild[right]) > 4 and np.median(ild[left]) < -4
    clean = CONDITIONS["clean"]
    free = direct_ild_db(condition_rirs(clean, params, condition_rooms(clean, params, 0, 16), 0), fs)
    assert np.abs(free).max() < 1.5


def test_turn_taking_talkers_speak_one_half_each_overlapping_briefly(params):
    """Talker 0's dry signal ends and talker 1's starts around the mixture's middle (mixture sample
    i hears dry sample taps - 1 + i), both speaking for TURN_OVERLAP_S."""
    rate, taps, n = params.simulate.sample_rate, 400, 16000
    dry = np.random.default_rng(0).standard_normal((3, 2, n + taps - 1))
    got = take_turns(dry, taps, rate)
    half = round(TURN_OVERLAP_S * rate / 2)
    switch = taps - 1 + n // 2
    np.testing.assert_array_equal(got[:, 0, : switch + half], dry[:, 0, : switch + half])
    assert not got[:, 0, switch + half :].any()
    np.testing.assert_array_equal(got[:, 1, switch - half :], dry[:, 1, switch - half :])
    assert not got[:, 1, : switch - half].any()


def test_turn_taking_rooms_hold_two_labelled_talkers_and_speech_in_both_halves(rendered):
    r = rendered["turn_taking"]
    assert np.isfinite(r.angles).all() and r.rooms.n_sources == 2
    quarter = r.speech.shape[-1] // 4
    assert np.all(np.mean(r.speech[..., :quarter] ** 2, axis=(1, 2)) > 0)
    assert np.all(np.mean(r.speech[..., -quarter:] ** 2, axis=(1, 2)) > 0)


def test_narrowband_talkers_have_nothing_above_half_their_recording_rate(params, rendered):
    def share_above(x, hz):
        freqs = np.fft.rfftfreq(x.shape[-1], 1 / params.simulate.sample_rate)
        power = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1)) ** 2
        return power[..., freqs > hz].sum(-1) / power.sum(-1)

    narrow, clean = rendered["narrowband"].speech, rendered["clean"].speech
    # the resampler's anti-aliasing filter falls from 4 kHz: -30 dB just above, -60 dB by 5 kHz
    assert np.all(share_above(narrow, 4100.0) < 2e-3) and np.all(share_above(narrow, 5000.0) < 1e-5)
    assert np.all(share_above(clean, 4100.0) > 1e-2)  # espeak-ng speech has treble


def test_close_talkers_are_less_than_15_degrees_apart(params, rendered):
    r = rendered["close_talkers"]
    assert np.all(r.angles[:, 1] - r.angles[:, 0] < 15.0)
    assert np.all(np.linalg.norm(r.rooms.src_pos[:, 0] - r.rooms.src_pos[:, 1], axis=-1) >= 0.3)
    # many more rooms: always close, and the sources stay inside the walls
    rooms = condition_rooms(CONDITIONS["close_talkers"], params, 0, 40)
    angles = rooms.angles(params.labels.angle)
    assert np.all(np.abs(angles[:, 0] - angles[:, 1]) < 15.0)
    wall = params.simulate.min_wall_distance
    assert np.all(rooms.src_pos >= wall) and np.all(rooms.src_pos <= rooms.room_dim[:, None] - wall)


def test_elevated_talkers_are_30_degrees_or_more_above_or_below_the_array(params, rendered):
    assert np.all(np.abs(_elevation_deg(rendered["elevated"].rooms)) >= 30.0)
    rooms = condition_rooms(CONDITIONS["elevated"], params, 0, 40)
    elevation = _elevation_deg(rooms)
    assert np.all(np.abs(elevation) >= 30.0) and (elevation > 0).any() and (elevation < 0).any()
    wall = params.simulate.min_wall_distance
    assert np.all(rooms.src_pos >= wall) and np.all(rooms.src_pos <= rooms.room_dim[:, None] - wall)
    lo, hi = params.simulate.src_distance_range
    dist = np.linalg.norm(rooms.src_pos - rooms.array_center[:, None], axis=-1)
    assert np.all((dist >= lo) & (dist <= hi))


def test_an_impossible_elevation_is_a_one_line_error(params):
    raw = tiny_raw_params()
    # talkers 4 m away, 30 deg up or down, need 2 m of height above or below the array
    raw["simulate"].update(
        src_distance_range=[4.0, 4.1], room_dim_min=[9.0, 9.0, 2.5], room_dim_max=[10.0, 10.0, 2.6]
    )
    with pytest.raises(DualmicError, match="condition elevated: no source position") as err:
        condition_rooms(CONDITIONS["elevated"], parse_params(raw), 0, 1)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "lo", "hi"), [("rt60_0.7-1.0", 0.7, 1.0), ("rt60_1.0-1.5", 1.0, 1.5)])
def test_reverberant_conditions_have_rooms_and_rirs_of_their_rt60(params, rendered, name, lo, hi):
    rooms = rendered[name].rooms
    assert np.all((rooms.rt60 >= lo) & (rooms.rt60 <= hi))
    taps = condition_taps(CONDITIONS[name], params)
    assert taps == int(np.ceil(hi * params.simulate.sample_rate))
    rirs = condition_rirs(CONDITIONS[name], params, rooms, 0)
    assert rirs.shape[-1] == taps
    for b in range(len(rooms)):  # the simulated decay meets the target
        t30 = measured_rt60(rirs[b, 0, 0], params.simulate.sample_rate)
        assert abs(t30 - rooms.rt60[b]) < 0.15 * rooms.rt60[b]
    assert np.all(rendered["clean"].rooms.rt60 <= params.simulate.rt60_range[1])


def test_rendering_does_not_depend_on_batch_size_or_the_talker_cache(params, rendered):
    small = params.model_copy(update={"simulate": params.simulate.model_copy(update={"batch_size": 1})})
    espeak.talker_clip.cache_clear()  # espeak-ng speaks every talker again
    pool = talker_pool(small)
    for name in ("babble_snr10", "point_noise_snr5", "close_talkers"):
        again = render_condition(CONDITIONS[name], small, pool)
        assert np.array_equal(again.mixture, rendered[name].mixture), name
        assert np.array_equal(again.angles, rendered[name].angles), name


# --------------------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    """Tiny params, an untrained model and made-up train angles."""
    root = tmp_path_factory.mktemp("conditions")
    raw = tiny_raw_params()
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    p = parse_params(raw)
    torch.manual_seed(0)
    save_model(root / "model.pt", SSLModel(model_config(p)), model_meta(p))
    angles = np.sort(np.random.default_rng(0).uniform(0, 180, (6, 2)), axis=1).astype(np.float32)
    np.save(root / "train_angles.npy", angles)
    return root


def _run_stage(root, out: str) -> dict:
    return stage.run(
        root / "params.yaml", root / "model.pt", root / "train_angles.npy", root / out, root / out / "plots"
    )


@pytest.fixture(scope="module")
def stage_scores(stage_inputs) -> dict:
    """One run of the stage into <stage_inputs>/a."""
    return _run_stage(stage_inputs, "a")


def test_stage_writes_flat_scores_per_condition_and_method_and_a_plot_table(stage_inputs, stage_scores):
    written = json.loads((stage_inputs / "a" / "conditions.json").read_text())
    assert written == stage_scores and written["label"] == "lateral"
    for name in CONDITION_NAMES:
        assert written[f"{name}.n_rooms"] == 2
        for method in ("model_known_count", "srp_phat", "constant"):  # told the count: always scored
            assert 0 <= written[f"{name}.{method}.mae_deg"] <= 180
            assert 0 <= written[f"{name}.{method}.acc_10deg"] <= 1
        assert 0 <= written[f"{name}.model.count_acc"] <= 1  # the model finds the count itself
        assert f"{name}.model.mae_deg" in written  # None when no room was counted right
    assert len(written) == 1 + len(CONDITION_NAMES) * 10
    table = pd.read_csv(stage_inputs / "a" / "plots" / stage.PLOT_FILE)
    assert list(table.columns) == ["condition", "model", "srp_phat", "constant"]
    assert list(table["condition"]) == list(CONDITION_NAMES)
    np.testing.assert_allclose(table["srp_phat"], [written[f"{n}.srp_phat.mae_deg"] for n in CONDITION_NAMES])


def test_same_params_give_identical_scores(stage_inputs, stage_scores):
    espeak.talker_clip.cache_clear()  # espeak-ng speaks every talker again
    _run_stage(stage_inputs, "b")
    for name in ("conditions.json", f"plots/{stage.PLOT_FILE}"):
        assert (stage_inputs / "a" / name).read_bytes() == (stage_inputs / "b" / name).read_bytes(), name


def test_stage_script_refuses_an_unknown_condition_in_one_line(stage_inputs, tmp_path):
    raw = tiny_raw_params()
    raw["conditions"]["names"] = ["clean", "reverb"]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    args = ["--params", str(params), "--model", str(stage_inputs / "model.pt")]
    args += ["--train-angles", str(stage_inputs / "train_angles.npy"), "--metrics", str(tmp_path / "m")]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unknown condition 'reverb'" in lines[0]
    assert not (tmp_path / "m").exists()
