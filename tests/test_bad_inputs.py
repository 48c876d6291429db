"""Every stage and CLI, fed something wrong: one clear line, exit 2, no traceback, no output."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from tests_support import REPO, other_channels, run

pytestmark = pytest.mark.slow


class Smuggled:
    """A class whose pickled instance a model file must never be allowed to carry."""


@dataclass
class Case:
    argv: Callable[[Path], list[str]]  # scratch dir -> command (run with cwd = scratch)
    prepare: Callable[[Path], None]  # scratch dir -> mutation of the copied inputs
    says: str  # part of the one-line message
    no_output: str  # path (relative to scratch) that must not exist afterwards


def _stage(name: str, *args: str) -> Callable[[Path], list[str]]:
    return lambda d: [sys.executable, str(REPO / "stages" / f"{name}.py"), *args]


def _params(d: Path, edit) -> None:
    raw = yaml.safe_load((d / "params.yaml").read_text())
    edit(raw)
    (d / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_column(path: Path, column: str) -> None:
    pd.read_csv(path).drop(columns=[column]).to_csv(path, index=False)


def _swap_model(d: Path, mutate) -> None:
    payload = torch.load(d / "models/model.pt", weights_only=True)
    mutate(payload)
    torch.save(payload, d / "models/model.pt")


def _other_architecture(payload: dict) -> None:
    payload["config"]["dim"] = payload["config"]["dim"] * 2  # weights no longer fit the config


def _wav(channels: int) -> Callable[[Path], None]:
    return lambda d: sf.write(
        d / "rec.wav", np.random.default_rng(0).normal(size=(16000, channels)) * 0.1, 16000
    )


FEATURES = _stage("features", "eval", "--out", "out")
CASES = {
    "unknown param key": Case(
        _stage("simulate", "eval", "--out", "out"),
        lambda d: _params(d, lambda r: r["simulate"].update(rt60_rnge=[0.1, 0.5])),
        "did you mean simulate.rt60_range",
        "out",
    ),
    "param out of range": Case(
        _stage("features", "eval", "--out", "out"),
        lambda d: _params(d, lambda r: r["features"].update(hop=-160)),
        "features.hop",
        "out",
    ),
    "truncated rirs.npy": Case(
        FEATURES, lambda d: _truncate(d / "data/rirs/eval/rirs.npy"), "corrupt input", "out"
    ),
    "rooms.csv lacks a column": Case(
        FEATURES,
        lambda d: _drop_column(d / "data/rirs/eval/rooms.csv", "src1_lateral_deg"),
        "src1_lateral_deg",
        "out",
    ),
    "rooms.csv of other rooms": Case(
        FEATURES,
        lambda d: pd.read_csv(d / "data/rirs/eval/rooms.csv").iloc[:1].to_csv(d / "data/rirs/eval/rooms.csv"),
        "rooms",
        "out",
    ),
    "missing train features": Case(
        _stage("train", "--out", "out", "--live-dir", "live"),
        lambda d: shutil.rmtree(d / "data/features/train"),
        "missing input",
        "out/model.pt",
    ),
    "features of other channels": Case(
        _stage("train", "--out", "out", "--live-dir", "live"),
        lambda d: _params(
            d, lambda r: r["features"].update(channels=other_channels(r["features"]["channels"]))
        ),
        "re-run the features stage",
        "out/model.pt",
    ),
    "model file missing": Case(
        _stage("evaluate", "--model", "nope.pt", "--metrics", "out", "--plots", "out/plots"),
        lambda d: None,
        "not found",
        "out",
    ),
    "model of another architecture": Case(
        _stage("evaluate", "--metrics", "out", "--plots", "out/plots"),
        lambda d: _swap_model(d, _other_architecture),
        "do not fit",
        "out",
    ),
    "model of other features.channels": Case(
        _stage("evaluate", "--metrics", "out", "--plots", "out/plots"),
        lambda d: _params(
            d, lambda r: r["features"].update(channels=other_channels(r["features"]["channels"]))
        ),
        "channels",
        "out",
    ),
    "model carrying a pickled object": Case(
        _stage("evaluate", "--metrics", "out", "--plots", "out/plots"),
        lambda d: torch.save({"format": "dualmic-ssl-model/1", "x": Smuggled()}, d / "models/model.pt"),
        "refusing",
        "out",
    ),
    "unwritable output path": Case(
        _stage("simulate", "eval", "--out", "blocker/out", "--metrics", "metrics_out"),
        lambda d: (d / "blocker").write_text("a file where a folder must go"),
        "cannot write",
        "metrics_out",
    ),
    "mono recording": Case(
        lambda d: [sys.executable, "-m", "dualmic.cli", "predict", "rec.wav"], _wav(1), "1 channel", "none"
    ),
    "3-channel recording": Case(
        lambda d: [sys.executable, "-m", "dualmic.cli", "predict", "rec.wav"], _wav(3), "3 channels", "none"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_one_clear_line(name, built_project, tmp_path):
    case = CASES[name]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.copy(built_project / "params.yaml", scratch / "params.yaml")
    shutil.copytree(built_project / "data", scratch / "data")
    shutil.copytree(built_project / "models", scratch / "models")
    case.prepare(scratch)
    proc = run(case.argv(scratch), scratch, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and case.says in lines[0], lines
    assert not (scratch / case.no_output).exists()
