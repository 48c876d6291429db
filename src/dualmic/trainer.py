"""The training loop: epochs of crops, pooled validation, best-model selection, DVCLive logs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from dualmic.checkpoint import load_checkpoint, save_checkpoint
from dualmic.distributed import Context, barrier
from dualmic.errors import DualmicError
from dualmic.inference import save_model
from dualmic.model import SSLModel
from dualmic.params import TrainParams
from dualmic.progress import progress_bar
from dualmic.training import CropDataset, lr_factor, slot_loss, split_train_val, validate


@dataclass
class TrainData:
    features: np.ndarray  # (n, C, F, T) memmap
    labels: np.ndarray  # (n, S) classes
    angles: np.ndarray  # (n, S) degrees
    hop_frames: int  # pooled-validation hop
    class_width_deg: float


def check_features(features: np.ndarray, labels: np.ndarray, cfg, where) -> None:
    """The features on disk must be what the params describe; else one clear DualmicError."""
    if features.ndim != 4 or features.shape[1:3] != (cfg.in_channels, cfg.n_freq):
        raise DualmicError(
            f"{where}/features.npy is shaped {tuple(features.shape)} but the params (features.channels, "
            f"features.n_fft) give ({cfg.in_channels}, {cfg.n_freq}) channels x bins; "
            "re-run the features stage"
        )
    if labels.shape != (len(features), cfg.n_slots) or labels.min() < 0 or labels.max() >= cfg.n_classes:
        raise DualmicError(
            f"{where}/labels.npy does not hold {len(features)} x {cfg.n_slots} classes in "
            f"0..{cfg.n_classes - 1}; re-run the features stage"
        )


def fit(
    model: SSLModel,
    data: TrainData,
    tp: TrainParams,
    ctx: Context,
    out: Path,
    meta: dict,
    fingerprint: str,
    live,
) -> dict:
    """Train, keep the weights of the best validation MAE in ``out/model.pt``; return a summary."""
    torch.manual_seed(tp.seed)
    train_idx, val_idx = split_train_val(len(data.labels), tp.val_fraction, tp.seed)
    dataset = CropDataset(data.features, data.labels, train_idx, model.cfg.n_frames, tp.seed)
    sampler = DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=tp.seed
    )
    loader = DataLoader(
        dataset, batch_size=tp.batch_size, sampler=sampler, drop_last=len(dataset) > tp.batch_size
    )
    model.to(ctx.device)
    net = DistributedDataParallel(model) if ctx.world_size > 1 else model
    opt = torch.optim.AdamW(net.parameters(), lr=tp.lr, weight_decay=tp.weight_decay)
    steps = len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, steps, tp.epochs, tp.schedule, tp.warmup_epochs, tp.step_epochs)
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=ctx.device.type == "cuda")
    ckpt_path = out / "checkpoint.pt"
    start_epoch, best, history = 0, {"val_mae_deg": float("inf"), "epoch": -1, "state": None}, []
    state = load_checkpoint(ckpt_path, fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
    if ctx.is_main:
        for record in history:  # a resumed run's logs start with the epochs it already did
            _log(live, record)
    rate = 0.0
    for epoch in range(start_epoch, tp.epochs):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        net.train()
        total, seen, t0 = 0.0, 0, time.perf_counter()
        with progress_bar(f"train epoch {epoch + 1}/{tp.epochs}", len(loader.sampler)) as bar:
            for x, y in loader:
                x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
                with autocast:
                    loss = slot_loss(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(x)
                seen += len(x)
                rate = seen * ctx.world_size / (time.perf_counter() - t0)
                bar(len(x), info=f"loss {total / seen:.3f}  {rate:.0f} samples/s")
        if ctx.is_main:
            val = validate(
                model,
                data.features,
                data.labels,
                data.angles,
                val_idx,
                data.hop_frames,
                data.class_width_deg,
                ctx.device,
                tp.batch_size,
            )
            if val.mae_deg < best["val_mae_deg"]:
                best = {
                    "val_mae_deg": val.mae_deg,
                    "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                }
            record = {
                "train/loss": total / max(seen, 1),
                "val/loss": val.loss,
                "val/mae_deg": val.mae_deg,
                "lr": opt.param_groups[0]["lr"],
                "samples_per_s": rate,
            }
            history.append(record)
            _log(live, record)
            save_checkpoint(
                ckpt_path,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "best": best,
                    "history": history,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                },
            )
        barrier(ctx)
    if ctx.is_main:
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        save_model(out / "model.pt", model, meta)
    return {
        "best_epoch": best["epoch"] + 1,
        "best_val_mae_deg": best["val_mae_deg"],
        "n_train": len(train_idx),
        "n_val": len(val_idx),
    }


def _log(live, record: dict) -> None:
    for name, value in record.items():
        live.log_metric(name, value)
    live.next_step()
