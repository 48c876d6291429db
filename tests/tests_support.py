"""Shared test helpers: the repo's params, shrunken so every test runs in seconds."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dualmic.core.params import Params, parse_params

REPO = Path(__file__).resolve().parents[1]


def tiny_raw_params() -> dict:
    """params.yaml with a handful of short rooms: the same code paths, a fraction of the work."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = copy.deepcopy(raw)
    sim = raw["simulate"]
    sim["splits"]["train"]["n_rooms"] = 6
    sim["splits"]["eval"]["n_rooms"] = 3
    sim["rt60_range"] = [0.15, 0.3]
    sim["batch_size"] = 4
    sim["fra"]["n_images"] = 1024
    raw["features"]["duration_s"] = 0.5
    raw["features"]["batch_size"] = 4
    raw["model"].update(dim=32, depth=1, heads=2, dim_head=16)  # 1-s window: short inputs are padded
    raw["train"].update(epochs=1, batch_size=4, warmup_epochs=0)
    raw["evaluate"]["srp_phat"] = True
    raw["conditions"] = {"n_rooms": 2, "n_talkers": 6, "babble_talkers": 2}
    raw.setdefault("speech", {}).update(n_clips=4, clip_s=2.0)
    # online mixing from a small pool of synthetic talkers (tests that need the bank add it)
    raw.setdefault("online", {}).update(talkers=["synthetic"], synthetic_talkers=8, clip_s=3.0, noise_s=3.0)
    return raw


def other_channels(channels) -> list[str]:
    """A features.channels list other than ``channels``: the model input of another run."""
    # both keep the log-magnitudes, which the default model's floor channels read
    return ["ipd", "logmag"] if list(channels) != ["ipd", "logmag"] else ["ipd", "logmag", "onset"]


@pytest.fixture
def tiny_params() -> Params:
    return parse_params(tiny_raw_params())


@pytest.fixture
def tiny_params_file(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_raw_params(), sort_keys=False))
    return path


def run(args: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command with the project's virtualenv first on PATH (as `make` does)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, **kwargs)
    if check:
        assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_project(root: Path, raw: dict | None = None) -> Path:
    """A git + DVC copy of the repo (pipeline, stages, library) with tiny params, committed."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "src", "stages", "benchmarks"):
        src = REPO / name
        if src.is_dir():  # bytecode a local run left in src/ is no part of the project
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")  # the offline page, plot templates
    (root / "params.yaml").write_text(yaml.safe_dump(raw or tiny_raw_params(), sort_keys=False))
    run(["git", "init", "-q"], root)
    git_commit(root, "init")
    return root


def git_commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(
        ["git", "-c", "user.name=dualmic", "-c", "user.email=dualmic@localhost", "commit", "-qm", message],
        root,
    )


def direct_ild_db(rirs: np.ndarray, fs: int = 16000, lo: float = 3000.0, hi: float = 6000.0) -> np.ndarray:
    """Level of mic 1 over mic 0 of the direct sound (4 ms from the first arrival) in a band, per
    (room, source): (B, S) dB."""
    first = np.argmax(np.abs(rirs).max(2) > 0.3 * np.abs(rirs).max((2, 3))[..., None], axis=-1)
    taps = np.arange(64)
    at = np.clip(first[..., None] - 8 + taps, 0, rirs.shape[-1] - 1)  # (B, S, 64)
    direct = np.take_along_axis(rirs, np.repeat(at[:, :, None], 2, axis=2), axis=-1)
    power = np.abs(np.fft.rfft(direct, n=256, axis=-1)) ** 2
    f = np.fft.rfftfreq(256, 1 / fs)
    band = (f > lo) & (f < hi)
    return 10 * np.log10(power[:, :, 1, band].sum(-1) / power[:, :, 0, band].sum(-1))
