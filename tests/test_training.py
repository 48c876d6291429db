import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tests_support import tiny_raw_params

from dualmic.core.rooms_split import split_train_val
from dualmic.learn.crops import CropDataset
from dualmic.learn.objective import lr_factor, slot_loss

REPO = Path(__file__).resolve().parents[1]


def test_validation_split_is_disjoint_and_seeded():
    tr, va = split_train_val(100, 0.1, seed=3)
    assert len(va) == 10 and len(tr) == 90 and not set(tr) & set(va)
    np.testing.assert_array_equal(split_train_val(100, 0.1, 3)[1], va)
    assert not np.array_equal(split_train_val(100, 0.1, 4)[1], va)


def test_crops_depend_on_seed_epoch_and_item_only():
    feats = np.arange(4 * 2 * 3 * 50, dtype=np.float16).reshape(4, 2, 3, 50)
    labels = np.zeros((4, 2), dtype=np.int64)
    ds = CropDataset(feats, labels, np.arange(4), window=10, seed=1)
    a = ds[2][0]
    ds2 = CropDataset(feats, labels, np.array([2]), window=10, seed=1)
    assert torch.equal(ds2[0][0], a)
    assert a.shape == (2, 3, 10)
    ds.set_epoch(1)
    starts = {int(ds[k][0][0, 0, 0]) % 50 for k in range(4)}
    assert len(starts) > 1


def test_lr_schedules():
    cos = [lr_factor(s, 10, 5, "cosine", 1, 10) for s in range(50)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)
    assert cos[-1] < 0.01 and all(b <= a + 1e-12 for a, b in zip(cos[10:], cos[11:], strict=False))
    step = [lr_factor(s, 10, 30, "step", 0, 10) for s in (0, 99, 100, 250)]
    assert step == pytest.approx([1.0, 1.0, 0.1, 0.01])


def test_slot_loss_is_the_sum_of_per_slot_cross_entropies():
    logits = torch.randn(5, 2, 36)
    labels = torch.randint(0, 36, (5, 2))
    ce = torch.nn.functional.cross_entropy
    expected = ce(logits[:, 0], labels[:, 0]) + ce(logits[:, 1], labels[:, 1])
    targets = torch.nn.functional.one_hot(labels, 36).float()
    torch.testing.assert_close(slot_loss(logits, targets), expected)


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    """Tiny train features made by the real simulate + features stages."""
    root = tmp_path_factory.mktemp("train")
    raw = tiny_raw_params()
    raw["simulate"]["splits"]["train"]["n_rooms"] = 12
    raw["train"].update(epochs=2, batch_size=4, warmup_epochs=0)
    raw["model"].update(dim=32, depth=1, heads=2, dim_head=16)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    _run([sys.executable, str(REPO / "stages/simulate.py"), "train"], root)
    _run([sys.executable, str(REPO / "stages/features.py"), "train"], root)
    return root


def _train(root: Path, cmd_prefix=(sys.executable,)) -> dict:
    _run([*cmd_prefix, str(REPO / "stages/train.py")], root)
    return json.loads((root / "metrics/train/metrics.json").read_text())


def test_tiny_training_writes_a_safe_model_and_logs(train_dir, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(train_dir, root)
    metrics = _train(root)
    assert metrics["step"] == 1 and np.isfinite(metrics["val"]["mae_deg"])
    payload = torch.load(root / "models/model.pt", weights_only=True)
    assert payload["meta"]["label"] == "lateral" and payload["config"]["dim"] == 32
    assert (root / "metrics/train/plots/metrics/val/mae_deg.tsv").is_file()


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_killed_training_resumes_to_the_same_result(train_dir, tmp_path, ema_decay):
    """SIGKILL a run once its first epoch checkpoint exists; the rerun must end where an
    uninterrupted run ends (same best validation MAE, same weights), with or without the
    moving average of the weights (train.ema_decay), whose state the checkpoint carries."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    for root in (full, cut):
        shutil.copytree(train_dir, root)
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["train"]["ema_decay"] = ema_decay
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    reference = _train(full)
    state = torch.load(full / "models/checkpoint.pt", weights_only=True)
    assert ("ema" in state) == (ema_decay > 0)
    if ema_decay > 0:  # the average is not the raw weights, and it is what the model file keeps
        raw_w = state["model"]
        ema_w = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
        assert ema_w.keys() == raw_w.keys()
        assert any(not torch.equal(ema_w[k], raw_w[k]) for k in raw_w if raw_w[k].is_floating_point())
        saved = torch.load(full / "models/model.pt", weights_only=True)["state_dict"]
        if state["best"]["epoch"] == state["epoch"]:
            for k in saved:
                torch.testing.assert_close(saved[k], ema_w[k], rtol=0, atol=0)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "stages/train.py")],
        cwd=cut,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = cut / "models/checkpoint.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "models/model.pt").exists(), "killed before the end: no final model"
    assert torch.load(ckpt, weights_only=True)["epoch"] == 0
    resumed = _train(cut)
    assert resumed["best_val_mae_deg"] == pytest.approx(reference["best_val_mae_deg"], abs=1e-6)
    w_full = torch.load(full / "models/model.pt", weights_only=True)["state_dict"]
    w_cut = torch.load(cut / "models/model.pt", weights_only=True)["state_dict"]
    for k in w_full:
        torch.testing.assert_close(w_cut[k], w_full[k], rtol=0, atol=1e-6)
    # CPU training is deterministic: the final model files are byte-identical
    assert (cut / "models/model.pt").read_bytes() == (full / "models/model.pt").read_bytes()


def test_precision_resolves_per_device(monkeypatch):
    from dualmic.core import device as dev

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert dev.autocast_dtype(cpu, "fp32") is None and dev.autocast_dtype(cuda, "fp32") is None
    assert dev.autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert dev.autocast_dtype(cuda, "auto") is torch.bfloat16
    for has_units, expected in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda has=has_units: has)
        assert dev.autocast_dtype(cpu, "auto") is expected
    with pytest.raises(dev.DualmicError, match="fp16"):
        dev.autocast_dtype(cpu, "fp16")


def test_native_bf16_is_amx_or_avx512_bf16(monkeypatch):
    """auto trains in bf16 on a CPU with AMX tiles or with AVX-512 BF16 (AMD Zen 4), not on one
    with neither; a probe torch does not have counts as absent."""
    from dualmic.core import device as dev

    assert dev.cpu_has("no_such_instruction_set") is False
    for amx, avx in ((True, False), (False, True), (False, False)):
        flags = {"amx_tile": amx, "avx512_bf16": avx}
        monkeypatch.setattr(dev, "cpu_has", lambda f, flags=flags: flags.get(f, False))
        assert dev.cpu_has_native_bf16() is (amx or avx)


def test_bf16_training_on_cpu_is_deterministic_and_differs_from_fp32(train_dir, tmp_path):
    """train.precision bf16 runs the forward pass under CPU autocast: the same params give the
    same model file twice, and not the fp32 one (the autocast is really applied)."""
    files = {}
    for name, precision in (("a", "bf16"), ("b", "bf16"), ("c", "fp32")):
        root = tmp_path / name
        shutil.copytree(train_dir, root)
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["train"]["precision"] = precision
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        metrics = _train(root)
        assert np.isfinite(metrics["val"]["mae_deg"])
        files[name] = (root / "models/model.pt").read_bytes()
    assert files["a"] == files["b"]
    assert files["a"] != files["c"]


def test_a_diverged_run_stops_with_one_line_and_no_model(train_dir, tmp_path, monkeypatch):
    """A NaN loss (a diverged run, or a broken low-precision kernel) ends the stage with a
    DualmicError naming the epoch and step; no model file is written."""
    from dualmic.core.errors import DualmicError
    from dualmic.learn import trainer
    from dualmic.pipeline import train

    root = tmp_path / "nan"
    shutil.copytree(train_dir, root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["mixing"] = "cached"
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    _run([sys.executable, str(REPO / "stages/features.py"), "train"], root)  # every room's features
    monkeypatch.setattr(trainer, "slot_loss", lambda logits, targets: logits.sum() * float("nan"))
    with pytest.raises(DualmicError, match=r"training loss is nan at epoch 1, step 1 .*diverged"):
        train.run(root / "params.yaml", root / "data/features/train", root / "models", None)
    assert not (root / "models/model.pt").exists()


@pytest.mark.slow
def test_distributed_training_on_cpu_with_gloo(train_dir, tmp_path):
    root = tmp_path / "ddp"
    shutil.copytree(train_dir, root)
    torchrun = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
    ]
    metrics = _train(root, tuple(torchrun))
    assert metrics["step"] == 1 and np.isfinite(metrics["val"]["mae_deg"])
    assert (root / "models/model.pt").is_file()


def test_checkpoints_do_not_outlive_a_change_of_params_or_code(tmp_path, monkeypatch):
    from dualmic.learn import checkpoint

    base = checkpoint.run_fingerprint({"train": {"lr": 0.001}})
    assert checkpoint.run_fingerprint({"train": {"lr": 0.001}}) == base
    assert checkpoint.run_fingerprint({"train": {"lr": 0.002}}) != base
    # the code part hashes the train stage's import closure (tests/test_stage_deps.py edits it)
    monkeypatch.setattr(checkpoint, "code_fingerprint", lambda module: "other code")
    assert checkpoint.run_fingerprint({"train": {"lr": 0.001}}) != base


def test_checkpoint_fingerprint_covers_the_data_params(tmp_path, monkeypatch):
    """A run on other training data (augmentation, sources, speech bank) never resumes another's
    checkpoint; the conditions test and the export do not touch training."""
    import yaml

    from dualmic.learn import checkpoint
    from dualmic.pipeline import train

    seen = []
    monkeypatch.setattr(train, "run_fingerprint", lambda config: seen.append(config) or "x")
    monkeypatch.setattr(train, "Trainer", _stop)
    raw = tiny_raw_params()
    raw["train"]["mixing"] = "cached"  # no RIRs here: only the fingerprint is looked at
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    feats = tmp_path / "f"
    _tiny_features(feats, raw)
    with pytest.raises(_Stop):
        train.run(path, feats, tmp_path / "m", None)
    assert {"augment", "online", "sources", "speech", "features", "simulate", "train"} <= set(seen[0])
    assert "conditions" not in seen[0] and "export" not in seen[0]
    assert seen[0]["precision"] in ("fp32", "torch.bfloat16")  # train.precision as resolved here
    assert checkpoint.run_fingerprint(seen[0]) == checkpoint.run_fingerprint(dict(seen[0]))


class _Stop(Exception):
    pass


def _stop(*args, **kwargs):
    raise _Stop()


def _tiny_features(folder, raw) -> None:
    from dualmic.core.files import save_npy
    from dualmic.core.params import parse_params
    from dualmic.learn.model_file import model_config

    cfg = model_config(parse_params(raw))
    save_npy(folder / "features.npy", np.zeros((4, cfg.in_channels, cfg.n_freq, cfg.n_frames), np.float16))
    save_npy(folder / "labels.npy", np.zeros((4, cfg.n_slots), np.int64))
    save_npy(folder / "angles.npy", np.zeros((4, cfg.n_slots), np.float32))


def test_validating_only_the_later_epochs_keeps_the_weights(train_dir, tmp_path):
    """train.validate_from skips validation in the first epochs: the trained weights are those
    of a run that validates every epoch (validation draws nothing and changes no weights), the
    validation logs start at the first validated epoch, and the last epoch is always validated."""
    runs = {}
    for name, start in (("every", 0.0), ("late", 0.5)):
        root = tmp_path / name
        shutil.copytree(train_dir, root)
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["train"].update(epochs=3, validate_from=start)
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        runs[name] = (_train(root), root)
    (every, every_root), (late, late_root) = runs["every"], runs["late"]
    w_every = torch.load(every_root / "models/checkpoint.pt", weights_only=True)["model"]
    w_late = torch.load(late_root / "models/checkpoint.pt", weights_only=True)["model"]
    for k in w_every:
        torch.testing.assert_close(w_late[k], w_every[k], rtol=0, atol=0)
    assert late["val"] == every["val"]  # the last epoch: validated in both

    def rows(root, name):
        return (root / f"metrics/train/plots/metrics/{name}.tsv").read_text().strip().splitlines()[1:]

    assert len(rows(every_root, "val/mae_deg")) == 3 and len(rows(late_root, "val/mae_deg")) == 2
    assert len(rows(late_root, "train/loss")) == 3
    history = torch.load(late_root / "models/checkpoint.pt", weights_only=True)["history"]
    assert ["val/loss" in h for h in history] == [False, True, True]
    assert late["best_epoch"] >= 2


def test_validation_reads_the_featurised_rooms_of_an_online_split(tmp_path):
    """Features of the validation rooms only (train.mixing online) are read by room; features of
    other rooms, or for cached mixing, are one clear error."""
    from dualmic.core.errors import DualmicError
    from dualmic.core.files import save_npy
    from dualmic.core.params import parse_params
    from dualmic.learn.crops import FeatureRooms
    from dualmic.pipeline.train import _room_features

    raw = tiny_raw_params()
    raw["train"].update(mixing="online", val_fraction=0.2)
    p = parse_params(raw)
    val = split_train_val(20, 0.2, p.train.seed)[1]
    feats = np.arange(len(val) * 2, dtype=np.float16).reshape(len(val), 1, 1, 2)
    save_npy(tmp_path / "features.npy", feats)
    save_npy(tmp_path / "rooms.npy", val.astype(np.int64))
    view = _room_features(p, tmp_path, 20)
    assert isinstance(view, FeatureRooms) and len(view) == 20 and view.shape == (20, 1, 1, 2)
    np.testing.assert_array_equal(view[val[::-1]], feats[::-1])
    with pytest.raises(IndexError, match="no cached features"):
        view[np.setdiff1d(np.arange(20), val)[:1]]
    with pytest.raises(DualmicError, match="train.mixing is cached"):
        _room_features(parse_params({**raw, "train": {**raw["train"], "mixing": "cached"}}), tmp_path, 20)
    with pytest.raises(DualmicError, match="other validation rooms"):
        _room_features(parse_params({**raw, "train": {**raw["train"], "seed": 5}}), tmp_path, 20)
