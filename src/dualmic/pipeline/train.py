"""Stage train: the SSL model on the train split's features.

Reads <features_dir>/{features,labels,angles}.npy; writes <out>/model.pt (best epoch on a
validation split carved from the TRAIN rooms), <out>/checkpoint.pt (last epoch, resumed by an
interrupted run) and DVCLive logs in <live_dir>. Under torchrun it trains with DDP.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dualmic.core.device import resolve_device
from dualmic.core.files import load_npy
from dualmic.core.params import load_params
from dualmic.learn.checkpoint import run_fingerprint
from dualmic.learn.distributed import setup, teardown
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import model_config, model_meta
from dualmic.learn.trainer import TrainData, Trainer, check_features


def run(
    params: Path = Path("params.yaml"),
    features_dir: Path = Path("data/features/train"),
    out: Path = Path("models"),
    live_dir: Path | None = Path("metrics/train"),
) -> dict:
    p = load_params(params)
    ctx = setup(resolve_device(p.train.device))
    features = load_npy(features_dir / "features.npy")
    labels = load_npy(features_dir / "labels.npy", mmap=False)
    angles = load_npy(features_dir / "angles.npy", mmap=False)
    cfg = model_config(p)
    check_features(features, labels, cfg, features_dir)
    torch.manual_seed(p.train.seed)  # initial weights
    model = SSLModel(cfg)
    # every params section that shapes the training data or the run (all but the conditions test
    # and the export), so a checkpoint never resumes a run on other data
    fp = run_fingerprint({"model": cfg.to_dict(), **p.model_dump(exclude={"conditions", "export"})})
    data = TrainData(features, labels, angles, p.hop_frames, p.labels.class_width_deg)
    live = _live(live_dir) if ctx.is_main and live_dir is not None else None
    summary = Trainer(model, data, p.train, ctx, out, model_meta(p), fp, live).fit()
    if live is not None:
        live.summary.update(summary)
        live.end()
    teardown(ctx)
    return summary


def _live(directory: Path):
    """A fresh DVCLive log; a resumed run replays its earlier epochs from the checkpoint."""
    from dvclive import Live  # imported late: it is slow to import and only rank 0 needs it

    return Live(str(directory), save_dvc_exp=False, dvcyaml=None)
