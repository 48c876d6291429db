"""End-to-end tests of stages/export.py on tiny made-up eval data and an untrained model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import sofar
import torch
import yaml
from tests_support import REPO, tiny_raw_params

from dualmic.core.errors import DualmicError
from dualmic.core.files import save_csv, save_npy
from dualmic.core.labels import LabelCoding
from dualmic.core.params import parse_params
from dualmic.learn.decoding import decode_angles
from dualmic.learn.inference import pooled_log_probs
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import load_model, model_config, model_meta, save_model
from dualmic.pipeline import export
from dualmic.sim.rooms import RoomSpec, sample_rooms
from dualmic.sofa.info import sofa_info

SCRIPT = REPO / "stages" / "export.py"
DATE = "2026-11-21 00:00:00"


def _make_inputs(root: Path) -> dict[str, Path]:
    """params.yaml, eval rirs.npy + rooms.csv, eval features + angles, an untrained model."""
    raw = tiny_raw_params()
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    p = parse_params(raw)
    sim = p.simulate
    n = sim.splits["eval"].n_rooms
    spec = RoomSpec(
        sim.room_dim_min, sim.room_dim_max, sim.rt60_range, sim.src_distance_range,
        sim.min_wall_distance, sim.mic_offsets, sim.rotate_array, sim.n_sources,
    )  # fmt: skip
    frame = sample_rooms(spec, sim.splits["eval"].seed, 0, n).to_frame()
    rng = np.random.default_rng(0)
    rirs = root / "rirs"
    save_npy(rirs / "eval" / "rirs.npy", rng.standard_normal((n, 2, 2, sim.n_taps)).astype(np.float32))
    save_csv(rirs / "eval" / "rooms.csv", frame)
    feats = root / "features"
    n_frames = 1 + int(round(p.features.duration_s * sim.sample_rate)) // p.features.hop
    phase = rng.uniform(-np.pi, np.pi, (n, 1, p.features.n_fft // 2, n_frames))
    channels = [np.cos(phase), np.sin(phase)]
    for kind in ("logmag", "onset"):
        if kind in p.features.channels:
            channels += list(rng.normal(2.0, 1.0, (2, n, 1, p.features.n_fft // 2, n_frames)))
    save_npy(feats / "eval" / "features.npy", np.concatenate(channels, 1).astype(np.float16))
    lateral = frame[["src0_lateral_deg", "src1_lateral_deg"]].to_numpy()
    save_npy(feats / "eval" / "angles.npy", np.sort(lateral, axis=1).astype(np.float32))
    torch.manual_seed(0)
    model = root / "models" / "model.pt"
    save_model(model, SSLModel(model_config(p)), model_meta(p))
    return {"params": params, "rirs": rirs, "features": feats, "model": model, "out": root / "export"}


def _args(paths: dict[str, Path], *extra: str) -> list[str]:
    return [
        "--params", str(paths["params"]),
        "--rirs-dir", str(paths["rirs"]),
        "--features-dir", str(paths["features"]),
        "--model", str(paths["model"]),
        "--out", str(paths["out"]),
        "--date-created", DATE,
        *extra,
    ]  # fmt: skip


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def _export(paths: dict[str, Path], room_files: int | None = None, date: str = DATE):
    return export.run(
        paths["params"], paths["rirs"], paths["features"], paths["model"], paths["out"], room_files, date
    )


def test_room_file_count_comes_from_option_then_params_then_default():
    pick = export.n_room_files
    assert pick(None, SimpleNamespace(export=SimpleNamespace(n_room_files=2))) == 2
    assert pick(7, SimpleNamespace(export=SimpleNamespace(n_room_files=2))) == 7
    with pytest.raises(DualmicError, match="export.n_room_files -1"):
        pick(None, SimpleNamespace(export=SimpleNamespace(n_room_files=-1)))


def test_export_end_to_end(tmp_path):
    paths = _make_inputs(tmp_path)
    proc = _run(_args(paths))
    assert proc.returncode == 0, proc.stderr
    out = paths["out"]
    assert (out / "eval_rirs.sofa").is_file()
    # 3 eval rooms < the default of 4 room files: one file per room
    assert sorted(f.name for f in (out / "rooms").iterdir()) == [f"room_{i:04d}.sofa" for i in range(3)]
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "export",
        "features",
        "models",
        "params.yaml",
        "rirs",
    ]

    sofa = sofar.read_sofa(str(out / "eval_rirs.sofa"), verbose=False)
    sofa.verify()
    rirs = np.load(paths["rirs"] / "eval" / "rirs.npy")
    np.testing.assert_array_equal(sofa.Data_IR, rirs.reshape(6, 2, -1).astype(np.float64))
    assert sofa.GLOBAL_DateCreated == DATE and sofa.Data_SamplingRate == 16000

    # the predictions are the evaluate stage's, assigned to sources by their true angles' order
    p = parse_params(yaml.safe_load(paths["params"].read_text()))
    net, _ = load_model(paths["model"])
    hop = max(1, round(p.evaluate.hop_s * p.simulate.sample_rate / p.features.hop))
    feats = np.load(paths["features"] / "eval" / "features.npy")
    expected_sorted = decode_angles(pooled_log_probs(net, feats, hop), LabelCoding.from_params(p))
    true = np.asarray(sofa.TrueAngle).reshape(3, 2)
    pred = np.asarray(sofa.PredictedAngle).reshape(3, 2)
    talking = np.isfinite(np.load(paths["features"] / "eval" / "angles.npy")).sum(axis=1)
    for t, q, e, k in zip(true, pred, expected_sorted, talking, strict=True):
        found = np.sort(q[np.isfinite(q)])  # the room's predictions, given to its talkers
        np.testing.assert_array_equal(found, e[np.isfinite(e)][: len(found)])
        assert len(found) == min(k, np.isfinite(e).sum())
        if len(found) == 2:
            assert (t[0] <= t[1]) == (q[0] <= q[1]) or q[0] == q[1]

    for i in range(3):
        room = sofar.read_sofa(str(out / "rooms" / f"room_{i:04d}.sofa"), verbose=False)
        room.verify()
        np.testing.assert_array_equal(room.Data_IR, rirs[i].astype(np.float64))
        np.testing.assert_array_equal(room.PredictedAngle, pred[i])
    info = sofa_info(out / "eval_rirs.sofa")
    assert "GeneralFIR" in info and "M = 6" in info and "sampling rate: 16000 hertz" in info
    assert "export:" in proc.stderr and "(3 rooms) and 3 room file(s)" in proc.stderr


def test_missing_rooms_csv_fails_cleanly(tmp_path):
    paths = _make_inputs(tmp_path)
    (paths["rirs"] / "eval" / "rooms.csv").unlink()
    proc = _run(_args(paths))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "rooms.csv" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not paths["out"].exists()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temporary folder left


def test_room_file_count_and_replacing_an_old_export(tmp_path):
    paths = _make_inputs(tmp_path)
    paths["out"].mkdir()
    (paths["out"] / "stale.txt").write_text("from an older run")
    assert _export(paths, 1) == (3, 1)
    assert sorted(f.name for f in paths["out"].iterdir()) == ["eval_rirs.sofa", "rooms"]
    assert [f.name for f in (paths["out"] / "rooms").iterdir()] == ["room_0000.sofa"]
    first = (paths["out"] / "eval_rirs.sofa").read_bytes()

    assert _export(paths, 0) == (3, 0)
    assert sorted(f.name for f in paths["out"].iterdir()) == ["eval_rirs.sofa"]
    assert (paths["out"] / "eval_rirs.sofa").read_bytes() == first  # same date: bit-identical
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


def test_bad_inputs_keep_the_old_export(tmp_path):
    paths = _make_inputs(tmp_path)
    paths["out"].mkdir()
    (paths["out"] / "keep.txt").write_text("previous export")

    with pytest.raises(DualmicError, match="--n-room-files -1 must be a count >= 0"):
        _export(paths, -1)
    with pytest.raises(DualmicError, match="YYYY-MM-DD hh:mm:ss"):
        _export(paths, date="yesterday")
    save_npy(paths["features"] / "eval" / "angles.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(DualmicError, match="features are from other rooms"):
        _export(paths)
    save_npy(paths["rirs"] / "eval" / "rirs.npy", np.zeros((3, 2, 2), np.float32))
    with pytest.raises(DualmicError, match=re.escape("rirs.npy has shape (3, 2, 2)")):
        _export(paths)

    assert [f.name for f in paths["out"].iterdir()] == ["keep.txt"]
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]
