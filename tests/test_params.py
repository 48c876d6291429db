"""Tests of dualmic.core.params: the repo's params.yaml, one-line errors for bad params, stage exits."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dualmic.core.errors import EXIT_USER_ERROR, DualmicError
from dualmic.core.params import Params, load_params, parse_params

ROOT = Path(__file__).parents[1]
PARAMS_YAML = ROOT / "params.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS_YAML.read_text())


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    assert message.strip() == message and message
    return message


# ---------------------------------------------------------------- the repo's params.yaml


def test_repo_params_yaml_has_the_documented_defaults():
    p = load_params(PARAMS_YAML)
    assert isinstance(p, Params)
    sim = p.simulate
    assert sim.splits["train"].n_rooms == 3000 and sim.splits["train"].seed == 20231
    assert sim.splits["eval"].n_rooms == 200 and sim.splits["eval"].seed == 4242
    assert list(sim.splits) == ["train", "eval"]
    assert sim.sample_rate == 16000 and sim.n_sources == 2 and sim.method == "fra"
    assert sim.rir_duration_s is None and sim.rt60_range == (0.1, 0.7)
    assert sim.n_taps == 11200  # ceil(0.7 s x 16 kHz): the largest RT60
    assert sim.array_radius_m == pytest.approx(0.05)
    assert sim.method_for("train") == "fra" and sim.method_for("eval") == "fra"
    assert p.labels.angle == "lateral"
    assert p.labels.n_classes == 36 and p.labels.class_width_deg == 5.0
    assert p.features.channels == ("ipd", "logmag", "onset") and p.features.keep_mix == ("eval",)
    assert p.model.floor_channels and p.features.onset_threshold_db == 0.0
    assert p.features.n_fft == 512 and p.features.hop == 160 and p.features.snr_db is None
    assert p.sources.kind == "synthetic" and p.sources.folder is None


def test_parse_params_matches_load_params(raw):
    assert parse_params(copy.deepcopy(raw)) == load_params(PARAMS_YAML)


def test_the_shortest_window_depends_on_the_front_end(raw):
    """The published 4x4 grid strides in time three times (64 frames at least); `bands` and
    `frames` only twice (16), so a 20-ms hop still gives them a 1-s window (51 frames)."""
    r = copy.deepcopy(raw)
    r["features"]["hop"] = 320
    for frontend in ("frames", "bands"):
        r["model"]["frontend"] = frontend
        assert parse_params(copy.deepcopy(r)).window_frames == 51
    r["model"]["frontend"] = "patches"
    with pytest.raises(DualmicError, match=r"51 STFT frames.*frontend patches need >= 64"):
        parse_params(copy.deepcopy(r))
    r["model"]["frontend"], r["model"]["window_s"] = "frames", 0.25
    with pytest.raises(DualmicError, match=r"13 STFT frames.*frontend frames need >= 16"):
        parse_params(r)


def test_rir_duration_overrides_rt60_for_n_taps(raw):
    r = copy.deepcopy(raw)
    r["simulate"]["rir_duration_s"] = 0.25
    assert parse_params(r).simulate.n_taps == 4000


def test_params_are_frozen():
    p = load_params(PARAMS_YAML)
    with pytest.raises(Exception, match="frozen"):
        p.features.hop = 1


# ---------------------------------------------------------------- bad params, one line each


def _set(*path_and_value) -> Callable[[dict], None]:
    """A mutation setting raw[path...] = value (the key is created when absent)."""
    *path, key, value = path_and_value

    def mutate(r: dict) -> None:
        for part in path:
            r = r[part]
        r[key] = value

    return mutate


BAD = [
    # (id, mutation, strings the message must contain)
    ("unknown-top", _set("featurs", {}), ["unknown key featurs", "did you mean features?"]),
    (
        "unknown-simulate",
        _set("simulate", "rt60range", [0.1, 0.2]),
        ["simulate.rt60range", "did you mean simulate.rt60_range?"],
    ),
    (
        "unknown-fra",
        _set("simulate", "fra", "n_image", 4),
        ["simulate.fra.n_image", "did you mean simulate.fra.n_images?"],
    ),
    (
        "unknown-split-key",
        _set("simulate", "splits", "train", "n_room", 4),
        ["simulate.splits.train.n_room", "did you mean simulate.splits.train.n_rooms?"],
    ),
    ("str-for-int", _set("simulate", "sample_rate", "16000"), ["simulate.sample_rate", "16000"]),
    ("str-for-bool", _set("simulate", "rotate_array", "yes"), ["simulate.rotate_array", "yes"]),
    (
        "float-for-int",
        _set("simulate", "splits", "train", "n_rooms", 3000.0),
        ["simulate.splits.train.n_rooms", "3000.0"],
    ),
    ("zero-rooms", _set("simulate", "splits", "eval", "n_rooms", 0), ["splits.eval.n_rooms"]),
    ("negative-rooms", _set("simulate", "splits", "eval", "n_rooms", -5), ["n_rooms", "-5"]),
    ("zero-sources", _set("simulate", "n_sources", 0), ["simulate.n_sources"]),
    ("zero-images", _set("simulate", "fra", "n_images", 0), ["simulate.fra.n_images"]),
    ("zero-sim-batch", _set("simulate", "batch_size", 0), ["simulate.batch_size"]),
    ("zero-feat-batch", _set("features", "batch_size", 0), ["features.batch_size"]),
    ("zero-hop", _set("features", "hop", 0), ["features.hop"]),
    ("negative-seed", _set("sources", "seed", -1), ["sources.seed"]),
    ("negative-wall", _set("simulate", "min_wall_distance", -0.5), ["min_wall_distance"]),
    ("zero-rt60", _set("simulate", "rt60_range", [0.0, 0.7]), ["simulate.rt60_range"]),
    (
        "reversed-rt60",
        _set("simulate", "rt60_range", [0.7, 0.1]),
        ["simulate.rt60_range", "min 0.7 > max 0.1"],
    ),
    (
        "reversed-distance",
        _set("simulate", "src_distance_range", [5.0, 0.5]),
        ["simulate.src_distance_range", "min 5.0 > max 0.5"],
    ),
    ("reversed-snr", _set("features", "snr_db", [20.0, 0.0]), ["features.snr_db", "min 20.0"]),
    ("reversed-sir", _set("features", "sir_db", [5.0, -5.0]), ["features.sir_db", "min 5.0"]),
    ("nan-range", _set("simulate", "rt60_range", [0.1, float("nan")]), ["simulate.rt60_range"]),
    (
        "room-min-over-max",
        _set("simulate", "room_dim_min", [11.0, 3.0, 2.5]),
        ["room_dim_min[0] = 11.0 > room_dim_max[0] = 10.0"],
    ),
    (
        "room-too-small",
        _set("simulate", "room_dim_min", [3.0, 3.0, 1.0]),
        ["room_dim_min[2] (z) = 1.0", "min_wall_distance", "1.1 m"],
    ),
    (
        "mics-3m-apart",
        _set("simulate", "mic_offsets", [[-1.5, 0.0, 0.0], [1.5, 0.0, 0.0]]),
        ["room_dim_min[0]", "array radius", "4 m"],
    ),
    (
        "source-inside-array",
        _set("simulate", "src_distance_range", [0.04, 5.0]),
        ["src_distance_range", "mic_offsets"],
    ),
    ("one-mic", _set("simulate", "mic_offsets", [[0.0, 0.0, 0.0]]), ["simulate.mic_offsets"]),
    (
        "three-mics",
        _set("simulate", "mic_offsets", [[-0.05, 0, 0], [0.05, 0, 0], [0, 0.05, 0]]),
        ["simulate.mic_offsets", "got 3 microphones"],
    ),
    (
        "coincident-mics",
        _set("simulate", "mic_offsets", [[0.1, 0.0, 0.0], [0.1, 0.0, 0.0]]),
        ["simulate.mic_offsets", "coincide"],
    ),
    (
        "same-seed",
        _set("simulate", "splits", "eval", "seed", 20231),
        ["simulate.splits", "eval.seed 20231 equals train.seed"],
    ),
    ("no-splits", _set("simulate", "splits", {}), ["simulate.splits"]),
    ("bad-method", _set("simulate", "method", "raytrace"), ["simulate.method", "raytrace"]),
    (
        "bad-split-method",
        _set("simulate", "splits", "eval", "method", "raytrace"),
        ["simulate.splits.eval.method"],
    ),
    ("classes-not-180", _set("labels", "n_classes", 30), ["n_classes", "150 deg"]),
    ("bad-angle", _set("labels", "angle", "elevation"), ["labels.angle", "elevation"]),
    ("channels-no-ipd", _set("features", "channels", ["logmag"]), ["features.channels"]),
    ("channels-twice", _set("features", "channels", ["ipd", "ipd"]), ["features.channels"]),
    (
        "channels-order",
        _set("features", "channels", ["ipd", "onset", "logmag"]),
        ["features.channels", "order"],
    ),
    (
        "onset-threshold-without-onset",
        lambda r: r["features"].update(channels=["ipd", "logmag"], onset_threshold_db=6.0),
        ["onset_threshold_db 6", "add onset to channels"],
    ),
    (
        "onset-threshold-negative",
        _set("features", "onset_threshold_db", -3.0),
        ["features.onset_threshold_db"],
    ),
    ("hop-over-nfft", _set("features", "hop", 600), ["hop 600 > n_fft 512"]),
    ("duration-short", _set("features", "duration_s", 0.1), ["features.duration_s"]),
    ("keep-mix-unknown", _set("features", "keep_mix", ["test"]), ["features.keep_mix", "test"]),
    ("folder-null", _set("sources", "kind", "folder"), ["sources.folder"]),
    (
        "espeak-voice-of-a-tested-language",
        lambda r: r.setdefault("online", {}).update(talkers=["espeak"], espeak_voices=["nl", "de+m1"]),
        ["online.espeak_voices ['de+m1']", "conditions.voices"],
    ),
    (
        "espeak-voice-malformed",
        lambda r: r.setdefault("online", {}).update(espeak_voices=["Dutch voice"]),
        ["online.espeak_voices", "'Dutch voice'"],
    ),
    ("missing-key", lambda r: r["features"].pop("n_fft"), ["missing key features.n_fft"]),
    ("missing-section", lambda r: r.pop("labels"), ["missing key labels"]),
]


@pytest.mark.parametrize(("mutate", "needles"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_params_are_one_line_errors_naming_the_key(raw, mutate, needles):
    r = copy.deepcopy(raw)
    mutate(r)
    with pytest.raises(DualmicError) as err:
        parse_params(r)
    message = _one_line(err)
    assert message.startswith("params.yaml: ")
    for needle in needles:
        assert needle in message, message


def test_the_source_name_prefixes_the_message(raw):
    r = copy.deepcopy(raw)
    r["labels"]["n_classes"] = 0
    with pytest.raises(DualmicError) as err:
        parse_params(r, "exp/params.yaml")
    assert _one_line(err).startswith("exp/params.yaml: labels.n_classes")


@pytest.mark.parametrize("document", [None, [1, 2], "text"], ids=["empty", "list", "scalar"])
def test_params_that_are_not_a_mapping(document):
    with pytest.raises(DualmicError) as err:
        parse_params(document)
    assert _one_line(err).startswith("params.yaml: expected a mapping")


# ---------------------------------------------------------------- load_params


def test_load_params_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DualmicError) as err:
        load_params(missing)
    message = _one_line(err)
    assert str(missing) in message and "not found" in message


def test_load_params_invalid_yaml(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("simulate:\n  sample_rate: 16000\n  mic_offsets: [[0, 0, 0]\n")
    with pytest.raises(DualmicError) as err:
        load_params(bad)
    message = _one_line(err)
    assert str(bad) in message and "not valid YAML" in message and "line" in message


def test_load_params_names_the_file_in_validation_errors(tmp_path, raw):
    r = copy.deepcopy(raw)
    r["features"]["hop"] = 1024
    bad = tmp_path / "exp.yaml"
    bad.write_text(yaml.safe_dump(r))
    with pytest.raises(DualmicError) as err:
        load_params(bad)
    assert _one_line(err).startswith(f"{bad}: features: hop 1024 > n_fft 512")


# ---------------------------------------------------------------- stages exit cleanly


@pytest.mark.parametrize("stage", ["simulate", "features"])
def test_stage_with_bad_params_exits_2_with_one_line(tmp_path, raw, stage):
    r = copy.deepcopy(raw)
    r["simulate"]["rt60range"] = [0.1, 0.7]
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(r))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, f"stages/{stage}.py", "train", "--params", str(bad), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_USER_ERROR == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert "did you mean simulate.rt60_range?" in lines[0]
    assert not out.exists()
