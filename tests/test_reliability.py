"""A new user's accidents: a killed stage, a remote round trip, queued experiments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests_support import git_commit, make_project, run, tiny_raw_params

pytestmark = pytest.mark.slow


def test_sigkilled_stage_leaves_no_complete_looking_output_and_repro_recovers(tmp_path):
    raw = tiny_raw_params()
    raw["simulate"]["splits"]["train"]["n_rooms"] = 3000  # long enough to be killed mid-write
    root = make_project(tmp_path / "kill", raw)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.Popen(
        ["dvc", "repro", "simulate@train"],
        cwd=root,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out = root / "data/rirs/train"
    deadline = time.monotonic() + 120
    while not list(out.glob(".rirs.npy.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage ended before it could be killed"
    time.sleep(0.3)  # mid-stream
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "rirs.npy").exists() and not (out / "rooms.csv").exists()
    assert "simulate@train" in run(["dvc", "status"], root).stdout  # DVC knows it is not done
    run(["dvc", "repro", "simulate@train"], root)
    rirs = np.load(out / "rirs.npy", mmap_mode="r")
    assert rirs.shape[0] == 3000 and np.isfinite(rirs[-1]).all()
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_remote_push_clone_pull_is_clean_and_repro_is_a_no_op(built_project, tmp_path):
    store, clone = tmp_path / "store", tmp_path / "clone"
    built = built_project
    run(["dvc", "remote", "add", "-d", "store", str(store)], built)
    git_commit(built, "remote")
    run(["dvc", "push"], built)
    run(["git", "clone", "-q", str(built), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert "up to date" in run(["dvc", "status"], clone).stdout
    t0 = time.monotonic()
    out = run(["dvc", "repro"], clone).stdout
    elapsed = time.monotonic() - t0
    assert "Running stage" not in out, out
    print(f"no-op dvc repro after pull: {elapsed:.1f} s")
    np.testing.assert_array_equal(
        np.load(clone / "data/features/eval/features.npy"), np.load(built / "data/features/eval/features.npy")
    )


def test_queued_experiments_run_two_at_a_time_and_show_up(built_project):
    built = built_project
    for lr in ("0.002", "0.0005"):
        run(["dvc", "exp", "run", "--queue", "-S", f"train.lr={lr}"], built)
    try:
        run(["dvc", "queue", "start", "-j", "2"], built)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = run(["dvc", "queue", "status"], built).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(2)
        assert "Failed" not in status, status
    finally:
        run(["dvc", "queue", "stop"], built, check=False)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], built).stdout)
    lrs = set()
    for rev in shown:
        for exp in rev.get("experiments") or []:
            for run_ in exp.get("revs", []):
                data = run_.get("data", {})
                lr = data.get("params", {}).get("params.yaml", {}).get("data", {}).get("train", {}).get("lr")
                has_metrics = "metrics/eval.json" in data.get("metrics", {})
                if lr is not None and has_metrics:
                    lrs.add(lr)
    assert {0.002, 0.0005} <= lrs, shown
