"""End to end: the real dvc.yaml on a copy of the repo with a handful of rooms."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tests_support import make_project, run

from dualmic.core.params import load_params
from dualmic.core.rooms_split import split_train_val
from dualmic.core.schema_conditions import CONDITION_NAMES

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _md5s(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git + DVC copy of the repo with tiny params, after one `dvc repro`."""
    root = make_project(tmp_path_factory.mktemp("project"))
    run(["dvc", "repro"], root)
    return root


def test_repro_builds_rirs_and_features_of_both_splits(project):
    p = load_params(project / "params.yaml")
    n_taps = p.simulate.n_taps
    for split, n in (("train", 6), ("eval", 3)):
        rirs = np.load(project / "data/rirs" / split / "rirs.npy")
        assert rirs.shape == (n, 2, 2, n_taps) and rirs.dtype == np.float32
        rooms = pd.read_csv(project / "data/rirs" / split / "rooms.csv")
        assert len(rooms) == n and "src1_lateral_deg" in rooms
        feats = np.load(project / "data/features" / split / "features.npy")
        # online mixing re-mixes the training rooms: only the train split's validation rooms
        # are featurised, the rooms the train stage validates on
        featurised = np.load(project / "data/features" / split / "rooms.npy")
        expected_rooms = (
            split_train_val(n, p.train.val_fraction, p.train.seed)[1] if split == "train" else np.arange(n)
        )
        np.testing.assert_array_equal(featurised, expected_rooms)
        assert feats.shape == (len(featurised), 2 * len(p.features.channels), 256, 51)
        assert feats.dtype == np.float16
        labels = np.load(project / "data/features" / split / "labels.npy")
        angles = np.load(project / "data/features" / split / "angles.npy")
        assert labels.shape == angles.shape == (n, 2)
        # talkers first, ascending; a silent slot (features.active_sources) is NaN, class 36
        assert not np.any(np.isnan(angles[:, 0]) & np.isfinite(angles[:, 1]))
        assert np.all(np.diff(angles, axis=1)[np.isfinite(angles).all(axis=1)] >= 0)
        room_angles = rooms[["src0_lateral_deg", "src1_lateral_deg"]].to_numpy()
        for got, room in zip(angles, room_angles, strict=True):
            for a in got[np.isfinite(got)]:
                assert np.isclose(room, a, rtol=1e-6).any()
        expected = np.where(np.isnan(angles), 36, np.clip(np.floor(np.nan_to_num(angles) / 5), 0, 35))
        np.testing.assert_array_equal(labels, expected)
    assert np.load(project / "data/features/eval/mix.npy").shape == (3, 2, 8000)
    assert not (project / "data/features/train/mix.npy").exists()
    assert (project / "dvc.lock").is_file()


def test_repro_trains_and_evaluates(project):
    payload = torch.load(project / "models/model.pt", weights_only=True)
    assert payload["meta"]["label"] == "lateral"
    metrics = json.loads((project / "metrics/eval.json").read_text())
    for method in ("model", "model_known_count", "srp_phat", "constant"):
        for key in (
            "mae_deg",
            "mae_slot1_deg",
            "mae_slot2_deg",
            "acc_5deg",
            "acc_10deg",
            "both_within_10deg",
        ):
            assert f"{method}.{key}" in metrics
        if method != "model":  # the tiny model may count no room right: its angles then go unscored
            assert 0 <= metrics[f"{method}.mae_deg"] <= 180 and 0 <= metrics[f"{method}.acc_10deg"] <= 1
    assert 0 <= metrics["model.count_acc"] <= 1
    names = ("confusion.json", "count_confusion.json", "mae_vs_rt60.csv", "mae_vs_separation.csv")
    for name in (*names, "error_histogram.csv"):
        assert (project / "metrics/plots" / name).is_file()
    assert (project / "metrics/train/metrics.json").is_file()
    shown = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert not shown.get("errors")
    assert {"MAE vs RT60", "MAE vs source separation", "Error histogram"} <= set(shown["data"])
    assert "metrics/train/plots/metrics/val/mae_deg.tsv" in shown["data"]


def test_repro_scores_every_condition(project):
    scores = json.loads((project / "metrics/conditions.json").read_text())
    for name in CONDITION_NAMES:
        assert scores[f"{name}.n_rooms"] == 2
        for method in ("model_known_count", "srp_phat", "constant"):
            assert 0 <= scores[f"{name}.{method}.mae_deg"] <= 180
        assert 0 <= scores[f"{name}.model.count_acc"] <= 1
    table = pd.read_csv(project / "metrics/conditions/mae_per_condition.csv")
    assert list(table["condition"]) == list(CONDITION_NAMES)
    shown = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert not shown.get("errors") and "MAE per acoustic condition" in shown["data"]


def test_repro_again_is_a_no_op(project):
    out = run(["dvc", "status"], project).stdout
    assert "up to date" in out


def test_forced_rerun_is_bit_identical(project):
    before = _md5s(project / "data")
    run(["dvc", "repro", "--force"], project)
    assert _md5s(project / "data") == before


def test_changing_eval_params_does_not_rerun_train(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["simulate"]["splits"]["eval"]["n_rooms"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "status"], project).stdout
    assert "simulate@eval" in out and "simulate@train" not in out


def test_stages_run_the_library_of_their_own_copy(project):
    """DVC experiments run in copies of the repo: their stages must import that copy's src/."""
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    prefix = pipeline["train"]["cmd"].split(" python ")[0]  # how dvc.yaml runs every stage
    assert prefix == "PYTHONPATH=src"
    code = "import dualmic.pipeline.train as m; print(m.__file__)"
    where = Path(run(["sh", "-c", f"{prefix} {sys.executable} -c '{code}'"], project).stdout.strip())
    assert where.resolve().is_relative_to((project / "src").resolve())
