"""DVC stage train: the SSL model on the train split's features.

Reads data/features/train/{features,labels,angles}.npy; writes models/model.pt (best epoch on a
validation split carved from the TRAIN rooms), models/checkpoint.pt (last epoch, resumed by an
interrupted run), and DVCLive logs in metrics/train/. Multi-GPU:

    torchrun --nproc_per_node 4 stages/train.py
"""

from __future__ import annotations

from pathlib import Path

import _paths  # noqa: F401, I001  (first: this repo's src/ before any installed dualmic)
import torch
import typer

from dualmic.checkpoint import run_fingerprint
from dualmic.distributed import setup, teardown
from dualmic.errors import user_errors
from dualmic.inference import model_config, model_meta
from dualmic.io import load_npy
from dualmic.model import SSLModel
from dualmic.params import load_params
from dualmic.runtime import resolve_device
from dualmic.trainer import TrainData, check_features, fit

app = typer.Typer(add_completion=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    features_dir: Path = typer.Option(Path("data/features/train"), help="train features folder"),
    out: Path = typer.Option(Path("models"), help="folder for model.pt and checkpoint.pt"),
    live_dir: Path = typer.Option(Path("metrics/train"), help="DVCLive log folder"),
) -> None:
    """Train the SSL model (single process, or DDP under torchrun)."""
    with user_errors():
        p = load_params(params)
        ctx = setup(resolve_device(p.train.device))
        features = load_npy(features_dir / "features.npy")
        labels = load_npy(features_dir / "labels.npy", mmap=False)
        angles = load_npy(features_dir / "angles.npy", mmap=False)
        cfg = model_config(p)
        check_features(features, labels, cfg, features_dir)
        torch.manual_seed(p.train.seed)  # initial weights
        model = SSLModel(cfg)
        fp = run_fingerprint(
            {
                "model": cfg.to_dict(),
                **p.model_dump(include={"train", "features", "labels", "simulate", "sources"}),
            }
        )
        hop_frames = max(1, round(p.evaluate.hop_s * p.simulate.sample_rate / p.features.hop))
        data = TrainData(features, labels, angles, hop_frames, p.labels.class_width_deg)
        live = _live(live_dir) if ctx.is_main else None
        summary = fit(model, data, p.train, ctx, out, model_meta(p), fp, live)
        if live is not None:
            live.summary.update(summary)
            live.end()
        teardown(ctx)


def _live(directory: Path):
    """A fresh DVCLive log; a resumed run replays its earlier epochs from the checkpoint."""
    from dvclive import Live  # imported late: it is slow to import and only rank 0 needs it

    return Live(str(directory), save_dvc_exp=False, dvcyaml=None)


if __name__ == "__main__":
    app()
