"""End-to-end tests of stages/evaluate.py on tiny made-up eval data and an untrained model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tests_support import REPO, other_channels, tiny_raw_params

from dualmic.core.errors import DualmicError
from dualmic.core.files import save_csv, save_npy
from dualmic.core.labels import angle_to_class
from dualmic.core.params import parse_params
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import model_config, model_meta, save_model
from dualmic.pipeline import evaluate
from dualmic.sim.batches import room_spec
from dualmic.sim.rooms import sample_rooms

SCRIPT = REPO / "stages" / "evaluate.py"
PLOT_FILES = (
    "confusion.json",
    "count_confusion.json",
    "mae_vs_rt60.csv",
    "mae_vs_separation.csv",
    "error_histogram.csv",
    "polar_error.csv",
)


def _write_params(path: Path, **sections) -> Path:
    raw = tiny_raw_params()
    for section, values in sections.items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _make_inputs(root: Path, params_path: Path, model_labels: str = "lateral") -> dict[str, Path]:
    """Random eval features/labels/angles/mix, rooms.csv, train angles and an untrained model."""
    raw = yaml.safe_load(params_path.read_text())
    p = parse_params(raw)
    rng = np.random.default_rng(0)
    n = p.simulate.splits["eval"].n_rooms
    n_samples = int(round(p.features.duration_s * p.simulate.sample_rate))
    n_frames = 1 + n_samples // p.features.hop
    c = 2 * len(p.features.channels)
    feats = root / "features"
    phase = rng.uniform(-np.pi, np.pi, (n, c // 2, p.features.n_fft // 2, n_frames))
    save_npy(
        feats / "eval" / "features.npy", np.concatenate([np.cos(phase), np.sin(phase)], 1).astype(np.float16)
    )
    angles = np.sort(rng.uniform(0, 180, (n, 2)), axis=1).astype(np.float32)
    angles[0, 1] = np.nan  # room 0: one talker
    save_npy(feats / "eval" / "angles.npy", angles)
    save_npy(
        feats / "eval" / "labels.npy", angle_to_class(angles, p.labels.class_width_deg, p.labels.n_classes)
    )
    save_npy(feats / "eval" / "mix.npy", rng.standard_normal((n, 2, n_samples)).astype(np.float32))
    train_n = p.simulate.splits["train"].n_rooms
    save_npy(
        feats / "train" / "angles.npy", np.sort(rng.uniform(0, 180, (train_n, 2)), axis=1).astype(np.float32)
    )
    rirs = root / "rirs"
    (rirs / "eval").mkdir(parents=True)
    frame = sample_rooms(room_spec(p.simulate), p.simulate.split("eval").seed, 0, n).to_frame()
    save_csv(rirs / "eval" / "rooms.csv", frame)
    raw["labels"]["angle"] = model_labels
    trained = parse_params(raw)
    torch.manual_seed(0)
    model = root / "models" / "model.pt"
    save_model(model, SSLModel(model_config(trained)), model_meta(trained))
    return {"features": feats, "rirs": rirs, "model": model}


def _args(params: Path, paths: dict[str, Path], root: Path) -> list[str]:
    return [
        "--params", str(params),
        "--features-dir", str(paths["features"]),
        "--rirs-dir", str(paths["rirs"]),
        "--model", str(paths["model"]),
        "--metrics", str(root / "metrics"),
        "--plots", str(root / "plots"),
    ]  # fmt: skip


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_evaluate_end_to_end(tmp_path):
    params = _write_params(tmp_path / "params.yaml")
    paths = _make_inputs(tmp_path, params)
    proc = _run(_args(params, paths, tmp_path))
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert scores["label"] == "lateral"
    # the baselines and model_known_count are told the count (room 0: one talker): all scored
    for method in ("model_known_count", "srp_phat", "constant"):
        assert scores[f"{method}.n_rooms"] == 3
        for key in ("mae_deg", "mae_slot1_deg", "mae_slot2_deg"):
            assert 0.0 <= scores[f"{method}.{key}"] <= 180.0
        for key in ("acc_5deg", "acc_10deg", "both_within_10deg"):
            assert 0.0 <= scores[f"{method}.{key}"] <= 1.0
    # the counting model finds the count itself: angles are scored in correctly counted rooms
    assert 0.0 <= scores["model.count_acc"] <= 1.0
    assert {"model.missed_rate", "model.false_alarm_rate", "model.mae_1src_deg", "model.mae_2src_deg"} <= set(
        scores
    )
    sep_bins = parse_params(yaml.safe_load(params.read_text())).evaluate.separation_bins_deg
    by_sep = {
        f"model.count_acc_2src_sep_{lo:g}-{hi:g}deg" for lo, hi in zip(sep_bins, sep_bins[1:], strict=False)
    }
    assert by_sep <= set(scores)  # two-talker rooms found as two, per separation bin
    assert len(scores) == 1 + 4 * 7 + 5 + len(by_sep)
    plots = tmp_path / "plots"
    assert sorted(f.name for f in plots.iterdir()) == sorted(PLOT_FILES)
    confusion = json.loads((plots / "confusion.json").read_text())
    assert len(confusion) <= 5 and set(confusion[0]) == {"actual", "predicted"}
    counts = json.loads((plots / "count_confusion.json").read_text())
    assert [c["actual"] for c in counts] == [1, 2, 2]
    rt60 = pd.read_csv(plots / "mae_vs_rt60.csv")
    assert list(rt60.columns) == [
        "bin", "lo", "hi", "rt60_s", "n_rooms", "model", "srp_phat", "constant", "model_known_count"
    ]  # fmt: skip
    assert rt60["n_rooms"].sum() <= 3 and len(rt60) == 3
    sep = pd.read_csv(plots / "mae_vs_separation.csv")
    assert sep["n_rooms"].sum() <= 2 and "separation_deg" in sep.columns  # two-talker rooms only
    assert sep["n_counted"].sum() == 2 and sep["model_count_acc"].dropna().between(0, 1).all()
    hist = pd.read_csv(plots / "error_histogram.csv")
    assert (hist[["srp_phat", "constant"]].sum() == 5).all()  # 1 + 2 + 2 sources


def test_model_for_other_label_is_refused(tmp_path):
    params = _write_params(tmp_path / "params.yaml")
    paths = _make_inputs(tmp_path, params, model_labels="azimuth")
    proc = _run(_args(params, paths, tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert "label 'azimuth'" in lines[0] and "labels.angle 'lateral'" in lines[0]
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()


def _evaluate(params: Path, paths: dict[str, Path], root: Path) -> dict:
    return evaluate.run(
        params, paths["features"], paths["rirs"], paths["model"], root / "metrics", root / "plots"
    )


def test_without_srp_phat_and_other_features(tmp_path):
    """srp_phat false: no srp_phat metrics, empty plot columns; other features channels refused."""
    params = _write_params(tmp_path / "params.yaml", evaluate={"srp_phat": False})
    paths = _make_inputs(tmp_path, params)
    (paths["features"] / "eval" / "mix.npy").unlink()  # not needed without SRP-PHAT
    _evaluate(params, paths, tmp_path)
    scores = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert "model.mae_deg" in scores and "constant.mae_deg" in scores
    assert not any(k.startswith("srp_phat.") for k in scores)
    assert pd.read_csv(tmp_path / "plots" / "mae_vs_rt60.csv")["srp_phat"].isna().all()

    other = other_channels(tiny_raw_params()["features"]["channels"])
    other_path = _write_params(tmp_path / "other.yaml", features={"channels": other})
    with pytest.raises(DualmicError, match=re.escape(f"features.channels {other}")):
        _evaluate(other_path, paths, tmp_path)
