"""`dualmic predict`: reading recordings, pooled prediction, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from tests_support import tiny_raw_params
from typer.testing import CliRunner

from dualmic.cli import app
from dualmic.core.errors import DualmicError
from dualmic.core.labels import LabelCoding
from dualmic.core.params import parse_params
from dualmic.data.features import features_from_audio
from dualmic.data.sources import synthetic_speech
from dualmic.learn.inference import pooled_log_probs, window_starts
from dualmic.learn.mirror import match_slots, mirror_classes
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import check_model, load_model, model_config, model_meta, save_model
from dualmic.predict import (
    delay_warning,
    mic_distance_stretch,
    model_features,
    predict_angles,
    recording_windows,
    segment_bounds,
)
from dualmic.recording import (
    HIGHPASS_HZ,
    channel_delay_s,
    clipped_share,
    clipping_warning,
    copied_channels,
    highpass,
    highpass_filter,
    read_recording,
    stretch_audio,
)

RATE = 16000


class Smuggled:
    """A class a crafted model file pickles: loading it would import and run code of this module."""

    def __init__(self) -> None:
        self.payload = "not a tensor"


def delayed_pair(signal: np.ndarray, delay_samples: float) -> np.ndarray:
    """(2, n): channel 1 = signal, channel 0 = signal delayed by a fractional number of samples."""
    n = len(signal)
    freq = np.fft.rfftfreq(n)
    delayed = np.fft.irfft(np.fft.rfft(signal) * np.exp(-2j * np.pi * freq * delay_samples), n=n)
    return np.stack([delayed, signal]).astype(np.float32)


def two_talkers(seed: int, seconds: float, rate: int) -> np.ndarray:
    """Two speech-like sources with opposite fractional inter-channel delays: (2, n)."""
    n = int(seconds * rate)
    rng = np.random.default_rng(seed)
    a = delayed_pair(synthetic_speech(rng, n, rate), 1.7 * rate / RATE)
    b = delayed_pair(synthetic_speech(rng, n, rate), -0.6 * rate / RATE)
    return 0.1 * (a + b)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A tiny random model and the recordings the CLI tests read."""
    d = tmp_path_factory.mktemp("predict")
    p = parse_params(tiny_raw_params())
    torch.manual_seed(0)
    save_model(d / "model.pt", SSLModel(model_config(p)), model_meta(p))

    def wav(name: str, audio: np.ndarray, rate: int) -> None:
        sf.write(d / name, np.atleast_2d(audio).T, rate, subtype="FLOAT")

    wav("speech.wav", two_talkers(1, 2.0, RATE), RATE)
    wav("speech44k.wav", two_talkers(2, 2.0, 44100), 44100)
    wav("long.wav", two_talkers(3, 7.0, RATE), RATE)
    wav("mono.wav", two_talkers(4, 1.0, RATE)[0], RATE)
    wav("three.wav", np.concatenate([two_talkers(5, 1.0, RATE), two_talkers(6, 1.0, RATE)[:1]]), RATE)
    wav("short.wav", two_talkers(7, 0.3, RATE), RATE)
    one = two_talkers(8, 1.0, RATE)[0]
    wav("copied.wav", np.stack([one, -0.5 * one]), RATE)  # a mono recording in two channels
    wav("deaf.wav", np.stack([one, np.zeros_like(one)]), RATE)  # mic 1 unplugged
    wav("deaf3.wav", np.stack([one, 0.5 * one[::-1], np.full_like(one, 0.25)]), RATE)  # a DC level alone
    (d / "x.wav").write_text("this is not audio\n")
    (d / "empty").mkdir()
    (d / "empty" / "notes.txt").write_text("no audio here\n")
    torch.save({"format": "dualmic-ssl-model/1", "evil": Smuggled()}, d / "evil.pt")
    save_model(d / "old_meta.pt", SSLModel(model_config(p)), {"label": "lateral"})
    unknown = {**model_meta(p), "channels": ["ipd", "coherence"]}  # a kind this dualmic does not compute
    save_model(d / "new_channels.pt", SSLModel(model_config(p)), unknown)
    return d


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m dualmic.cli predict ARGS`` in a fresh process (one torch thread: tests run at once)."""
    device = () if "--device" in args else ("--device", "cpu")
    return subprocess.run(
        [sys.executable, "-m", "dualmic.cli", "predict", *args, *device],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def run_all(arg_lists: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess]:
    """Run several CLI processes at once (each pays the torch import)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda a: run_cli(*a), arg_lists))


def check_json(stdout: str) -> list[float]:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    out = json.loads(lines[0])
    assert set(out) == {"n_sources", "angles_deg", "confidence", "label"} and out["label"] == "lateral"
    angles, k = out["angles_deg"], out["n_sources"]
    assert k in (0, 1, 2) and len(out["confidence"]) == k == len(angles)
    assert all(0.0 < c <= 1.0 for c in out["confidence"])
    assert angles == sorted(angles) and all(0.0 <= a <= 180.0 for a in angles)
    return angles


def check_one_line_error(code: int, stderr: str, stdout: str, words: list[str], name: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, (name, stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), (name, stderr)
    assert "Traceback" not in stderr and stdout == "", (name, stderr, stdout)
    assert "\x1b" not in stderr, (name, stderr)  # no terminal escape codes (torch's refusal has some)
    for word in words:
        assert word in lines[0], (name, word, lines[0])


def test_cli_process(workdir):
    """Real processes: 16 kHz, 44.1 kHz (resampled), 7 s (pooled windows), the same file twice,
    and a refused pickle, without a traceback (the other errors: test_cli_errors_are_one_line)."""
    model = str(workdir / "model.pt")
    names = ["speech.wav", "speech44k.wav", "long.wav", "speech.wav"]
    calls = [(str(workdir / n), "--model", model, "--json") for n in names]
    calls.append((str(workdir / "speech.wav"), "--model", str(workdir / "evil.pt")))
    results = run_all(calls)
    for res in results[:4]:
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    angles = [check_json(res.stdout) for res in results[:4]]
    assert results[0].stdout == results[3].stdout and angles[0] == angles[3]  # deterministic
    check_one_line_error(*_fields(results[4]), ["refusing", "evil.pt"], "pickle")


def _fields(res: subprocess.CompletedProcess) -> tuple[int, str, str]:
    return res.returncode, res.stderr, res.stdout


def invoke(*args: str):
    device = () if "--device" in args else ("--device", "cpu")
    return CliRunner().invoke(app, ["predict", *args, *device])


def test_cli_text_output_matches_json(workdir):
    model = str(workdir / "model.pt")
    as_json, text = (
        invoke(str(workdir / "speech.wav"), "--model", model, "--json"),
        invoke(str(workdir / "speech.wav"), "--model", model),
    )
    assert as_json.exit_code == 0 and text.exit_code == 0, (as_json.output, text.output)
    angles = check_json(as_json.stdout)
    confidence = json.loads(as_json.stdout)["confidence"]
    if not angles:
        assert text.stdout.strip() == "no source"
        return
    count = "1 source" if len(angles) == 1 else f"{len(angles)} sources"
    shown = ", ".join(f"{a:g} deg (confidence {c:.2f})" for a, c in zip(angles, confidence, strict=True))
    assert text.stdout.strip() == (
        f"{count}: {shown} (lateral: angle to the mic axis, mic 0 -> mic 1 along +x)"
    )


def test_cli_mirror_answers_the_swapped_recording_with_mirrored_angles(workdir, tmp_path):
    """predict --mirror scores both channel orders, so the swapped recording's answer is the
    mirror (180 - a) of the recording's: same count, angles within the printed rounding."""
    model = str(workdir / "model.pt")
    audio, rate = sf.read(workdir / "speech.wav", dtype="float32")
    swapped = tmp_path / "swapped.wav"
    sf.write(swapped, audio[:, ::-1], rate, subtype="FLOAT")
    plain, mirrored, mirrored_swapped = (
        invoke(str(workdir / "speech.wav"), "--model", model, "--json"),
        invoke(str(workdir / "speech.wav"), "--model", model, "--json", "--mirror"),
        invoke(str(swapped), "--model", model, "--json", "--mirror"),
    )
    assert {plain.exit_code, mirrored.exit_code, mirrored_swapped.exit_code} == {0}, mirrored.output
    a, b = json.loads(mirrored.stdout), json.loads(mirrored_swapped.stdout)
    assert a["n_sources"] == b["n_sources"]
    assert sorted(180.0 - x for x in b["angles_deg"]) == pytest.approx(a["angles_deg"], abs=0.011)
    assert a["confidence"][::-1] == pytest.approx(b["confidence"], abs=1e-3)
    check_json(plain.stdout)


def test_slot_confidence_is_the_mass_around_the_peak():
    from dualmic.predict import slot_confidence

    prob = np.full((2, 36), 0.2 / 33)
    prob[0, 10:13] = [0.2, 0.5, 0.1]  # peak at 11: its neighbours count
    prob[1] = 1 / 36  # flat: low confidence
    prob[1, 0] += 1e-3
    conf = slot_confidence(np.log(prob))
    assert conf[0] == pytest.approx(0.8, abs=1e-6)
    assert conf[1] < 0.1


@pytest.mark.parametrize(
    ("name", "recording", "model", "extra", "words"),
    [
        (
            "mono",
            "mono.wav",
            "model.pt",
            (),
            ["mono.wav", "has 1 channel;", "two-channel recording (mic 0, mic 1)"],
        ),
        (
            "three",
            "three.wav",
            "model.pt",
            (),
            ["three.wav", "has 3 channels", "two-channel", "--channels A,B"],
        ),
        (
            "channel 3 of 3",
            "three.wav",
            "model.pt",
            ("--channels", "0,3"),
            ["three.wav", "has 3 channels (0 to 2)", "--channels 0,3", "channel 3"],
        ),
        (
            "channels twice",
            "three.wav",
            "model.pt",
            ("--channels", "1,1"),
            ["--channels '1,1'", "two different"],
        ),
        (
            "channels words",
            "three.wav",
            "model.pt",
            ("--channels", "left,right"),
            ["'left,right'", "e.g. 0,1"],
        ),
        ("one channel", "three.wav", "model.pt", ("--channels", "2"), ["--channels '2'", "two different"]),
        (
            "mono picked",
            "mono.wav",
            "model.pt",
            ("--channels", "0,1"),
            ["mono.wav", "has 1 channel (0 to 0)"],
        ),
        ("short", "short.wav", "model.pt", (), ["short.wav", "0.300 s", "0.5 s"]),
        (
            "copied",
            "copied.wav",
            "model.pt",
            (),
            ["copied.wav", "channel 0 and channel 1 hold the same signal", "mono", "two mics"],
        ),
        (
            "one silent",
            "deaf.wav",
            "model.pt",
            (),
            ["deaf.wav", "channel 1 (mic 1) is silent", "are 0)", "both mics"],
        ),
        (
            "picked silent",
            "deaf3.wav",
            "model.pt",
            ("--channels", "2,0"),
            ["deaf3.wav", "channel 2 (mic 0) is silent", "are 0.25)"],
        ),
        ("text", "x.wav", "model.pt", (), ["x.wav", "cannot read"]),
        ("missing", "nope.wav", "model.pt", (), ["nope.wav", "not found"]),
        ("no audio in folder", "empty", "model.pt", (), ["empty", "holds no .wav, .flac, .ogg file"]),
        ("no model", "speech.wav", "no.pt", (), ["no.pt", "not found"]),
        ("pickle", "speech.wav", "evil.pt", (), ["refusing", "evil.pt"]),
        ("text model", "speech.wav", "x.wav", (), ["x.wav", "not a readable model file"]),
        ("meta", "speech.wav", "old_meta.pt", (), ["meta lacks", "sample_rate", "hop_s"]),
        (
            "channels kind",
            "speech.wav",
            "new_channels.pt",
            (),
            ["channels ['ipd', 'coherence']", "ipd, logmag, onset"],
        ),
        ("wav model", "speech.wav", "speech.wav", (), ["speech.wav", "model"]),
        ("device", "speech.wav", "model.pt", ("--device", "tpu"), ["'tpu'", "auto, cpu or cuda"]),
        (
            "spacing",
            "speech.wav",
            "model.pt",
            ("--mic-distance", "0.25"),
            [
                "0.25 m",
                "reads mics 0.05 to 0.2 m apart",
                "trained for 0.1 m",
                "simulate.mic_offsets=[[-0.125,0.0,0.0],[0.125,0.0,0.0]]",
            ],
        ),
        ("spacing 0", "speech.wav", "model.pt", ("--mic-distance", "0"), ["--mic-distance 0", "> 0"]),
        ("presence 1", "speech.wav", "model.pt", ("--presence", "1"), ["--presence 1", "between 0 and 1"]),
        ("presence 0", "speech.wav", "model.pt", ("--presence", "0"), ["--presence 0", "between 0 and 1"]),
        (
            "n-sources 3",
            "speech.wav",
            "model.pt",
            ("--n-sources", "3"),
            ["--n-sources 3", "at most 2", "0 to 2"],
        ),
        ("n-sources -1", "speech.wav", "model.pt", ("--n-sources", "-1"), ["--n-sources -1", "0 or more"]),
        ("segment", "speech.wav", "model.pt", ("--segment", "0.2"), ["--segment 0.2", "at least 0.5"]),
        ("highpass -1", "speech.wav", "model.pt", ("--highpass", "-1"), ["--highpass -1", "below 8000"]),
        ("highpass 8000", "speech.wav", "model.pt", ("--highpass", "8000"), ["--highpass 8000", "16000 Hz"]),
    ],
)
def test_cli_errors_are_one_line(workdir, name, recording, model, extra, words):
    res = invoke(str(workdir / recording), "--model", str(workdir / model), *extra)
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    check_one_line_error(res.exit_code, res.stderr, res.stdout, words, name)


def test_several_recordings_and_folders_answer_one_line_each(workdir, tmp_path):
    """Files and folders in one call: a line per recording, in order (a folder's audio files
    sorted by name, other files skipped), each naming its file and saying what a call for that
    file alone says."""
    model = str(workdir / "model.pt")
    folder = tmp_path / "takes"
    folder.mkdir()
    for name in ("b.WAV", "a.flac"):
        sf.write(folder / name, two_talkers(len(name), 1.5, RATE).T, RATE)
    (folder / "readme.txt").write_text("not a recording\n")
    (folder / "sub").mkdir()
    alone = {
        p: json.loads(invoke(str(p), "--model", model, "--json").stdout)
        for p in (workdir / "speech.wav", workdir / "long.wav", folder / "a.flac", folder / "b.WAV")
    }
    paths = (workdir / "speech.wav", folder, workdir / "long.wav")
    res = invoke(*map(str, paths), "--model", model, "--json")
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    order = [workdir / "speech.wav", folder / "a.flac", folder / "b.WAV", workdir / "long.wav"]
    assert [line["file"] for line in lines] == [str(p) for p in order]
    for line, path in zip(lines, order, strict=True):
        assert list(line)[0] == "file" and {k: v for k, v in line.items() if k != "file"} == alone[path]
    text = invoke(str(folder), "--model", model).stdout.strip().splitlines()
    assert [t.split(": ", 1)[0] for t in text] == [str(folder / "a.flac"), str(folder / "b.WAV")]
    assert all(t.split(": ", 1)[1].startswith(("no source", "1 source", "2 sources")) for t in text)


def test_a_bad_recording_among_several_stops_before_any_answer(workdir):
    """Every recording is checked first: one bad file gives one error line naming it and no
    answer for the good ones (nothing half-answered)."""
    model = str(workdir / "model.pt")
    for bad, words in (("mono.wav", ["mono.wav", "1 channel"]), ("nope.wav", ["nope.wav", "not found"])):
        res = invoke(str(workdir / "speech.wav"), str(workdir / bad), "--model", model, "--json")
        check_one_line_error(res.exit_code, res.stderr, res.stdout, words, bad)


def test_the_channel_delay_is_read_to_an_eighth_of_a_sample():
    rng = np.random.default_rng(3)
    talker = synthetic_speech(rng, 2 * RATE, RATE)
    for delay in (-7.3, -1.0, 0.0, 2.6, 12.45):  # channel 0 delayed by `delay` samples
        found = channel_delay_s(delayed_pair(talker, delay), RATE) * RATE
        assert abs(found + delay) <= 1 / 16 + 1e-9, (delay, found)


def test_a_model_that_heard_a_head_allows_the_delays_of_its_ears(workdir):
    """A model trained on rooms heard through a head too (meta head_ear_distance_m) allows a
    head's delays (up to 1.5 x its ear distance / c: 0.80 ms for 18 cm), not more."""
    meta = dict(torch.load(workdir / "model.pt", weights_only=True)["meta"], head_ear_distance_m=0.18)
    talker = 0.1 * synthetic_speech(np.random.default_rng(4), 2 * RATE, RATE)
    assert delay_warning(delayed_pair(talker, 9.0), meta) is None  # 0.56 ms: a lateral talker at a head
    warning = delay_warning(delayed_pair(talker, 20.0), meta)  # 1.25 ms: more than any head here
    assert warning is not None and "ears 0.18 m apart" in warning and "\n" not in warning


def test_a_delay_longer_than_the_models_mics_allow_is_a_warning(workdir, tmp_path):
    """Mics 0.1 m apart delay a sound by 0.29 ms at most: a 1.25 ms delay (a pair 0.43 m apart, or
    channels out of sync) is answered with one warning line on stderr, and the same answer."""
    meta = torch.load(workdir / "model.pt", weights_only=True)["meta"]
    rng = np.random.default_rng(4)
    far = 0.1 * delayed_pair(synthetic_speech(rng, 2 * RATE, RATE), 20.0)
    assert delay_warning(far, meta) is not None and "1.25 ms" in delay_warning(far, meta)
    assert delay_warning(two_talkers(1, 2.0, RATE), meta) is None
    sf.write(tmp_path / "far.wav", far.T, RATE, subtype="FLOAT")
    model = str(workdir / "model.pt")
    warned, quiet = (
        invoke(str(tmp_path / "far.wav"), "--model", model, "--json"),
        invoke(str(workdir / "speech.wav"), "--model", model, "--json"),
    )
    assert warned.exit_code == 0 and quiet.exit_code == 0, (warned.output, quiet.output)
    lines = warned.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"warning: {tmp_path / 'far.wav'}: the channels are 1.25 ms"), lines
    assert quiet.stderr == ""
    check_json(warned.stdout)


def test_the_models_own_mic_distance_is_accepted(workdir):
    plain = invoke(str(workdir / "speech.wav"), "--model", str(workdir / "model.pt"), "--json")
    same = invoke(
        str(workdir / "speech.wav"), "--model", str(workdir / "model.pt"), "--json", "--mic-distance", "0.1"
    )
    assert same.exit_code == 0 and same.stdout == plain.stdout


def test_other_mic_distances_are_read_by_stretching_time(workdir, tmp_path):
    """--mic-distance D reads a recording of mics D apart as if sampled (model distance / D)
    times slower: the same answer as the same samples written at that rate."""
    model = str(workdir / "model.pt")
    raw, _ = sf.read(workdir / "speech.wav", dtype="float32", always_2d=True)
    sf.write(tmp_path / "as32k.wav", raw, 32000, subtype="FLOAT")  # 0.2 m apart: 2x the model's
    sf.write(tmp_path / "as8k.wav", raw, 8000, subtype="FLOAT")  # 0.05 m apart: half
    for distance, same in (("0.2", "as32k.wav"), ("0.05", "as8k.wav")):
        stretched = invoke(
            str(workdir / "speech.wav"), "--model", model, "--json", "--mic-distance", distance
        )
        declared = invoke(str(tmp_path / same), "--model", model, "--json")
        assert stretched.exit_code == 0 and stretched.stdout == declared.stdout, (distance, stretched.output)
    meta = torch.load(workdir / "model.pt", weights_only=True)["meta"]
    assert mic_distance_stretch(meta, 0.1) == 1.0  # the model's own: read as it is
    assert mic_distance_stretch(meta, 0.104) == pytest.approx(0.1 / 0.104)  # any other is stretched
    assert mic_distance_stretch(meta, 0.07) == pytest.approx(0.1 / 0.07)


def test_stretching_time_gives_the_delays_of_the_models_mics():
    """A source at 60 deg lateral heard by mics 0.2 m apart (a pure delay of d cos 60 / c),
    stretched by 0.1 / 0.2: the channels are as far apart as mics 0.1 m apart hear it."""
    rate, c = 48000, 343.0
    rng = np.random.default_rng(9)
    for distance in (0.05, 0.07, 0.2):
        delay_s = distance * np.cos(np.radians(60.0)) / c
        pair = delayed_pair(synthetic_speech(rng, 3 * rate, rate), delay_s * rate)  # channel 0 behind
        audio = stretch_audio(pair, rate, RATE, 0.1 / distance)
        assert audio.dtype == np.float32 and audio.shape[0] == 2
        assert audio.shape[1] == pytest.approx(3 * RATE * 0.1 / distance, abs=1)
        want = 0.1 * np.cos(np.radians(60.0)) / c
        # within 2 us (a 0.3 deg error at 60 deg); the file as it is would be 72-146 us off
        assert -channel_delay_s(audio, RATE, upsample=64) == pytest.approx(want, abs=2e-6), distance


def test_segments_are_answered_each_as_a_recording_of_its_own(workdir, tmp_path):
    """--segment S: a line per S seconds with its start and end, each the answer to that part of
    the file alone; a silent part has no source; a last piece under 0.5 s joins the one before."""
    model = str(workdir / "model.pt")
    first, second = two_talkers(11, 2.0, RATE), 0.3 * two_talkers(12, 2.2, RATE)[::-1]  # channels swapped
    silent = np.zeros((2, RATE), dtype=np.float32)
    sf.write(tmp_path / "whole.wav", np.concatenate([first, second, silent], axis=1).T, RATE, subtype="FLOAT")
    sf.write(tmp_path / "first.wav", first.T, RATE, subtype="FLOAT")
    res = invoke(str(tmp_path / "whole.wav"), "--model", model, "--json", "--segment", "2")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert [(r["start_s"], r["end_s"]) for r in lines] == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.2)]
    alone = json.loads(invoke(str(tmp_path / "first.wav"), "--model", model, "--json").stdout)
    assert {k: v for k, v in lines[0].items() if k not in ("start_s", "end_s")} == alone
    assert bounds_of(5.2, 2.0) == [(0, 2 * RATE), (2 * RATE, 4 * RATE), (4 * RATE, int(5.2 * RATE))]
    assert bounds_of(4.3, 2.0) == [(0, 2 * RATE), (2 * RATE, int(4.3 * RATE))]  # 0.3 s joins
    assert bounds_of(4.3, 2.0, 0.5) == [(0, RATE), (RATE, int(2.15 * RATE))]  # file seconds, stretched
    sf.write(tmp_path / "quiet.wav", np.concatenate([first, silent, silent], axis=1).T, RATE, subtype="FLOAT")
    text = invoke(str(tmp_path / "quiet.wav"), "--model", model, "--segment", "2")
    assert text.exit_code == 0 and text.stdout.strip().splitlines()[1] == "2-4 s: no source", text.output
    assert text.stdout.startswith("0-2 s: ")


def bounds_of(seconds: float, segment_s: float, stretch: float = 1.0) -> list[tuple[int, int]]:
    return segment_bounds(int(round(seconds * stretch * RATE)), RATE, segment_s, stretch)


def test_clipped_samples_are_the_flat_tops_at_a_channels_extremes():
    """A tone or speech touches its peak at single samples; clipped at half its peak (in float
    or at a 16-bit file's full scale, whose two extremes differ by one step) two thirds of
    a tone's samples sit on flat tops."""
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 440.0 * t)
    speech = two_talkers(11, 1.0, RATE).T
    assert clipped_share(np.stack([tone, 0.5 * tone], axis=1)) == 0.0
    assert clipped_share(speech) < 1e-3
    clipped = np.clip(tone, -0.5, 0.5)  # two thirds of each period beyond half the peak
    assert clipped_share(np.stack([tone, clipped], axis=1)) == pytest.approx(2 / 3, abs=0.01)
    pcm = np.clip(np.round(speech / (0.3 * np.abs(speech).max()) * 32768), -32768, 32767) / 32768
    assert clipped_share(pcm) > 0.01


def test_a_clipped_recording_is_answered_with_a_warning(workdir, tmp_path):
    """A 16-bit file clipped on a few percent of its samples: one warning line on stderr naming
    the share, and the answer; the unclipped recordings of these tests get none (above)."""
    speech = two_talkers(12, 2.0, RATE).T
    sf.write(
        tmp_path / "hot.wav", np.clip(speech / (0.4 * np.abs(speech).max()), -1, 1), RATE, subtype="PCM_16"
    )
    assert clipping_warning(np.clip(speech, -1, 1)) is None
    res = invoke(str(tmp_path / "hot.wav"), "--model", str(workdir / "model.pt"), "--json")
    assert res.exit_code == 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {tmp_path / 'hot.wav'}: "), lines
    assert "% of its samples are clipped" in lines[0] and "lower gain" in lines[0], lines
    check_json(res.stdout)


def test_read_recording_resamples_and_keeps_channel_order(workdir):
    audio = read_recording(workdir / "speech44k.wav", RATE)
    assert audio.dtype == np.float32 and audio.shape == (2, 2 * RATE)
    raw, _ = sf.read(workdir / "speech.wav", dtype="float32", always_2d=True)
    same = read_recording(workdir / "speech.wav", RATE)
    np.testing.assert_array_equal(same, raw.T)  # no resampling: samples untouched, ch 0 first


def test_copied_channels_are_a_gain_apart_not_a_delay():
    """A mono signal in both channels at any gain or polarity is a copy; the same signal a
    sample or a tenth of a sample later, or with a little noise of its own, is two mics."""
    rng = np.random.default_rng(9)
    talker = synthetic_speech(rng, RATE, RATE).astype(np.float64)
    assert copied_channels(talker, talker) and copied_channels(talker, -0.3 * talker)
    assert copied_channels(talker + 0.2, 0.5 * talker - 0.1)  # each with a DC offset of its own
    for delay in (0.1, 1.0):
        pair = delayed_pair(talker, delay)
        assert not copied_channels(pair[0], pair[1]), delay
    noisy = talker + 1e-2 * np.std(talker) * rng.standard_normal(talker.shape)  # 40 dB down
    assert not copied_channels(talker, noisy)


def test_silent_recording_is_refused(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros((RATE, 2), dtype=np.float32), RATE)
    with pytest.raises(DualmicError, match="silent"):
        read_recording(tmp_path / "silent.wav", RATE)


def test_resampled_recording_scores_the_same(workdir):
    model, meta = load_model(workdir / "model.pt")
    audio = read_recording(workdir / "speech.wav", RATE)
    up = AF.resample(torch.from_numpy(audio), RATE, 48000).numpy()
    path48 = workdir / "speech48k.wav"
    sf.write(path48, up.T, 48000, subtype="FLOAT")
    back = read_recording(path48, RATE)
    assert back.shape == audio.shape
    lp, lp48 = recording_windows(audio, model, meta)[0], recording_windows(back, model, meta)[0]
    np.testing.assert_allclose(lp48, lp, atol=0.04)  # measured: 0.022 for this model with onsets
    # so every slot whose best class leads by more than 2 x 0.04 keeps it
    top2 = np.sort(lp, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.08
    assert clear.any()
    np.testing.assert_array_equal(lp48.argmax(-1)[clear], lp.argmax(-1)[clear])
    if clear.all():  # the same count, and angles read between classes within a tenth of a degree
        assert predict_angles(back, model, meta) == pytest.approx(predict_angles(audio, model, meta), abs=0.1)


def test_a_dc_offset_does_not_change_the_answer(workdir):
    """A recorder's DC offset, ten times the recording's RMS and another per channel, is taken
    away before the features: the same log-probabilities as without it, up to the rounding of
    the float32 samples that carry it (the phase of near-empty bins in the pauses, as for a
    scaled recording below). Left in, it moves them by far more."""
    model, meta = load_model(workdir / "model.pt")
    audio = read_recording(workdir / "speech.wav", RATE)
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    offset = (audio + np.array([[10.0 * rms], [-4.0 * rms]])).astype(np.float32)
    lp, lp_dc = recording_windows(audio, model, meta)[0], recording_windows(offset, model, meta)[0]
    np.testing.assert_allclose(lp_dc, lp, atol=0.02)
    x = torch.from_numpy(offset)  # the offset left in: unit RMS only
    kept = features_from_audio((x / x.pow(2).mean().sqrt())[None], model_features(meta))
    hop_frames = round(meta["hop_s"] * RATE / meta["hop"])
    assert np.abs(pooled_log_probs(model, kept, hop_frames)[0] - lp).max() > 0.1


def test_long_recordings_are_pooled_windows(workdir):
    """Windows scored a few at a time pool to what pooled_log_probs gives over all at once."""
    model, meta = load_model(workdir / "model.pt")
    audio = read_recording(workdir / "speech.wav", RATE)  # 2 s: 3 one-second windows 0.5 s apart
    x = torch.from_numpy(audio).double()
    x = x - x.mean(dim=-1, keepdim=True)  # predict takes each channel's mean (DC offset) away
    feats = features_from_audio((x / (x.pow(2).mean().sqrt() + 1e-8)).float()[None], model_features(meta))
    hop_frames = round(meta["hop_s"] * RATE / meta["hop"])
    window = parse_params(tiny_raw_params()).window_frames
    assert len(window_starts(feats.shape[-1], window, hop_frames)) == 3
    direct = pooled_log_probs(model, feats, hop_frames)[0]
    chunked = recording_windows(audio, model, meta, batch_size=2)[0]
    np.testing.assert_allclose(chunked, direct, atol=1e-4)
    coding = LabelCoding.from_meta(meta, model.cfg.n_classes)
    swapped = pooled_log_probs(model, feats, hop_frames, mirror=True)
    both = 0.5 * (direct + match_slots(direct[None], mirror_classes(swapped, coding))[0])
    mirrored = recording_windows(audio, model, meta, batch_size=2, mirror=True)[0]
    np.testing.assert_allclose(mirrored, both, atol=1e-4)
    # the input is normalised to unit RMS, so its scale does not matter (up to rounding, which
    # moves the phase of near-empty STFT bins in the pauses)
    np.testing.assert_allclose(recording_windows(7.0 * audio, model, meta)[0], chunked, atol=0.02)
    # a recording shorter than one window is zero-padded, not refused
    assert recording_windows(audio[:, : RATE // 2], model, meta)[0].shape == direct.shape


def test_cli_n_sources_gives_that_many_angles_of_the_most_sure_slots(workdir):
    """--n-sources K: K angles whatever the model counts, the slots most sure to hold a source
    (as the evaluate stage's model_known_count); K = 2 gives both slots' angles."""
    from dualmic.learn.decoding import slot_peak_deg, slot_presence

    model = str(workdir / "model.pt")
    answers = [
        invoke(str(workdir / "speech.wav"), "--model", model, "--json", "--n-sources", k)
        for k in ("0", "1", "2")
    ]
    assert [a.exit_code for a in answers] == [0, 0, 0], answers[0].output
    got = [json.loads(a.stdout) for a in answers]
    assert [g["n_sources"] for g in got] == [0, 1, 2]
    net, meta = load_model(workdir / "model.pt")
    audio = read_recording(workdir / "speech.wav", RATE)
    logp = recording_windows(audio, net, meta, highpass_hz=HIGHPASS_HZ)[
        0
    ]  # as the CLI: its default high-pass
    coding = LabelCoding.from_meta(meta, net.cfg.n_classes)
    angles, sure = slot_peak_deg(logp, coding), slot_presence(logp, coding)
    assert got[1]["angles_deg"] == pytest.approx([angles[sure.argmax()]], abs=0.006)
    assert got[2]["angles_deg"] == pytest.approx(sorted(angles), abs=0.006)
    for g in got[1:]:
        check_json(json.dumps(g))


def test_cli_presence_counts_more_talkers_the_lower_it_is(workdir):
    """--presence: a slot reports a talker when 1 - p(no source) is above it, so the count never
    falls as it is lowered, and the angles found at a higher threshold are kept."""
    from dualmic.learn.decoding import slot_presence

    model = str(workdir / "model.pt")
    net, meta = load_model(workdir / "model.pt")
    coding = LabelCoding.from_meta(meta, net.cfg.n_classes)
    sure = slot_presence(
        recording_windows(read_recording(workdir / "speech.wav", RATE), net, meta)[0], coding
    )
    # just under each slot's presence (that slot counts), just over the largest (none does), 0.5
    cuts = sorted({0.5, *(float(np.clip(v, 0.001, 0.999)) for v in (*(sure - 0.01), sure.max() + 0.01))})
    counts = []
    for cut in cuts:
        res = invoke(
            str(workdir / "speech.wav"), "--model", model, "--json", "--no-turns", "--presence", str(cut)
        )
        assert res.exit_code == 0, res.output
        counts.append(json.loads(res.stdout)["n_sources"])
        assert counts[-1] == int((sure > cut).sum()), (cut, sure)
    assert counts == sorted(counts, reverse=True) and counts[0] == 2


def test_cli_channels_picks_two_channels_of_a_larger_file_in_the_order_given(workdir, tmp_path):
    """--channels A,B reads channel A as mic 0 and B as mic 1: a 3-channel file answers as the
    two-channel file of those channels, and B,A as the channel-swapped one."""
    model = str(workdir / "model.pt")
    data, rate = sf.read(workdir / "three.wav", dtype="float32", always_2d=True)
    for name, cols in (("02.wav", [0, 2]), ("20.wav", [2, 0])):
        sf.write(tmp_path / name, data[:, cols], rate, subtype="FLOAT")
    answers = [
        invoke(str(workdir / "three.wav"), "--model", model, "--json", "--channels", "0,2"),
        invoke(str(tmp_path / "02.wav"), "--model", model, "--json"),
        invoke(str(workdir / "three.wav"), "--model", model, "--json", "--channels", "2, 0"),
        invoke(str(tmp_path / "20.wav"), "--model", model, "--json"),
    ]
    assert [a.exit_code for a in answers] == [0] * 4, [a.output for a in answers]
    assert answers[0].stdout == answers[1].stdout and answers[2].stdout == answers[3].stdout
    check_json(answers[0].stdout)
    assert read_recording(workdir / "three.wav", RATE, (2, 0)) == pytest.approx(
        read_recording(tmp_path / "20.wav", RATE)
    )


def test_the_onset_threshold_travels_in_the_model_file_and_is_checked():
    """A model trained on thresholded onsets is fed the same features by predict; models without
    onset channels keep the meta they had; evaluate refuses params with another threshold."""
    raw = tiny_raw_params()
    raw["features"]["channels"] = ["ipd", "logmag"]
    assert "onset_threshold_db" not in model_meta(parse_params(raw))
    raw["features"].update(channels=["ipd", "logmag", "onset"], onset_threshold_db=6.0)
    p = parse_params(raw)
    meta = model_meta(p)
    assert meta["onset_threshold_db"] == 6.0 and model_features(meta).onset_threshold_db == 6.0
    assert (
        model_features({k: v for k, v in meta.items() if k != "onset_threshold_db"}).onset_threshold_db == 0.0
    )
    model = SSLModel(model_config(p))
    check_model("m.pt", model, meta, p)
    raw["features"]["onset_threshold_db"] = 3.0
    with pytest.raises(
        DualmicError, match="onset_threshold_db 6.0 but params.yaml has features.onset_threshold_db 3.0"
    ):
        check_model("m.pt", model, meta, parse_params(raw))


def _tone(x: np.ndarray, hz: float) -> complex:
    t = np.arange(x.shape[-1]) / RATE
    return 2 * np.mean(x * np.exp(-2j * np.pi * hz * t))


def _tone_level_db(x: np.ndarray, hz: float) -> float:
    return 20 * np.log10(abs(_tone(x, hz)))


def test_the_highpass_takes_out_rumble_and_keeps_the_voice_and_the_delay_between_the_mics():
    sos = highpass_filter(HIGHPASS_HZ, RATE)
    t = np.arange(2 * RATE) / RATE
    tones = np.sin(2 * np.pi * 20 * t) + np.sin(2 * np.pi * 1000 * t)
    out = highpass(tones[None].astype(np.float32), sos)[0]
    mid = slice(RATE // 2, 3 * RATE // 2)  # away from the ends, whole cycles of both tones
    assert _tone_level_db(out[mid], 20) < -60  # rumble: 60 dB down
    assert abs(_tone_level_db(out[mid], 1000)) < 0.01  # the voice's band as it was
    assert abs(np.angle(_tone(out[mid], 1000) / _tone(tones[mid], 1000))) < 1e-3  # zero phase
    noise = np.random.default_rng(0).standard_normal(2 * RATE)
    pair = np.stack([noise, np.roll(noise, 3)])  # mic 1 hears it 3 samples later
    a, b = highpass(pair, sos)
    assert (
        np.abs(np.roll(a, 3) - b)[mid].max() < 1e-3 * np.abs(a).max()
    )  # one filter on both mics: the delay stays
    assert highpass(pair, highpass_filter(0, RATE)) is pair  # 0 = off


def test_predict_filters_by_default_at_the_constant_the_library_uses():
    import inspect

    from dualmic.cli import predict

    assert inspect.signature(predict).parameters["highpass_hz"].default.default == HIGHPASS_HZ
