"""End to end on binaural rooms: the real dvc.yaml with simulate.array.kind hrtf and the
full-circle azimuth label, on a handful of rooms; then `dualmic predict` on a binaural mixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sofar
import soundfile as sf
import torch
from tests_support import make_project, run, tiny_raw_params

KEMAR = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(KEMAR).is_file(), reason="MIT KEMAR HRIRs not installed (make hrtf-deps)"),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    raw = tiny_raw_params()
    raw["simulate"]["array"] = {"kind": "hrtf", "sofa": KEMAR, "reflection_directions": 8}
    raw["simulate"]["mic_offsets"] = [[-0.09, 0.0, 0.0], [0.09, 0.0, 0.0]]
    raw["labels"].update(angle="azimuth360", n_classes=72)
    raw["features"]["channels"] = ["ipd", "logmag"]
    raw["conditions"]["names"] = ["clean", "mic_mismatch"]
    root = make_project(tmp_path_factory.mktemp("binaural"), raw)
    run(["dvc", "repro"], root)
    return root


def test_binaural_rooms_train_evaluate_and_export(project):
    rirs = np.load(project / "data/rirs/eval/rirs.npy")
    assert rirs.shape[1:3] == (2, 2) and np.isfinite(rirs).all()
    angles = np.load(project / "data/features/eval/angles.npy")
    assert np.nanmax(angles) < 360 and np.nanmin(angles) >= 0
    payload = torch.load(project / "models/model.pt", weights_only=True)
    assert payload["meta"]["label"] == "azimuth360" and payload["meta"]["mic_distance_m"] == pytest.approx(
        0.18
    )
    scores = json.loads((project / "metrics/eval.json").read_text())
    assert scores["label"] == "azimuth360"
    for method in ("model_known_count", "srp_phat"):
        assert 0 <= scores[f"{method}.mae_deg"] <= 180  # circular errors never exceed 180
        assert f"{method}.front_back_confusion" in scores
        near = scores[f"{method}.front_back_confusion_horizontal"]  # sources within 30 deg of level
        assert near is None or 0 <= near <= 1
    polar = pd.read_csv(project / "metrics/plots/polar_error.csv")
    assert polar["hi"].max() == 360
    conditions = json.loads((project / "metrics/conditions.json").read_text())
    assert "clean.model.front_back_confusion" in conditions
    room = sofar.read_sofa(str(project / "export/rooms/room_0000.sofa"), verbose=False)
    room.verify()
    assert "MIT_KEMAR_normal_pinna.sofa" in room.GLOBAL_ListenerDescription
    np.testing.assert_allclose(np.asarray(room.ReceiverPosition).reshape(2, 3), [[0, 0.09, 0], [0, -0.09, 0]])


def test_predict_reads_a_binaural_recording(project, tmp_path):
    mix = np.load(project / "data/features/eval/mix.npy")[0]
    sf.write(tmp_path / "ears.wav", mix.T, 16000, subtype="FLOAT")
    res = subprocess.run(
        [sys.executable, "-m", "dualmic.cli", "predict", str(tmp_path / "ears.wav"), "--model",
         str(project / "models/model.pt"), "--json", "--device", "cpu"],
        capture_output=True, text=True, timeout=120, cwd=project,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["label"] == "azimuth360" and all(0 <= a < 360 for a in out["angles_deg"])
