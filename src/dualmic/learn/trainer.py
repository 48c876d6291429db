"""The training loop: resume, epochs of crops, pooled validation, best-model selection, checkpoints.

:class:`Trainer` keeps each job in its own step (``resume``, ``train_epoch``, ``validate``,
``checkpoint``, ``finish``); :meth:`Trainer.fit` strings them together. Machine-dependent timings
(samples/s) go to the console only, never into logs that DVC hashes or git tracks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler

from dualmic.core.device import autocast_dtype
from dualmic.core.errors import DualmicError
from dualmic.core.labels import LabelCoding
from dualmic.core.params import TrainParams
from dualmic.core.progress import progress_bar
from dualmic.core.rooms_split import split_train_val
from dualmic.learn.checkpoint import load_checkpoint, save_checkpoint
from dualmic.learn.crops import CropDataset, RoomIndices
from dualmic.learn.distributed import Context, barrier
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import save_model
from dualmic.learn.objective import lr_factor, slot_loss, slot_targets
from dualmic.learn.validation import ValResult, validate


@dataclass
class TrainData:
    features: np.ndarray  # (n, C, F, T) memmap
    labels: np.ndarray  # (n, S) classes (n_classes = no source)
    angles: np.ndarray  # (n, S) degrees, sorted; NaN = no source
    hop_frames: int  # pooled-validation hop
    coding: LabelCoding  # targets from angles, decoding of outputs
    mixer: object | None = None  # an online mixer (data.online.OnlineMixer): fresh mixtures per epoch


def check_features(features: np.ndarray, labels: np.ndarray, cfg, where) -> None:
    """The features on disk must be what the params describe; else one clear DualmicError."""
    if features.ndim != 4 or features.shape[1:3] != (cfg.in_channels, cfg.n_freq):
        raise DualmicError(
            f"{where}/features.npy is shaped {tuple(features.shape)} but the params (features.channels, "
            f"features.n_fft) give ({cfg.in_channels}, {cfg.n_freq}) channels x bins; "
            "re-run the features stage"
        )
    if labels.shape != (len(features), cfg.n_slots) or labels.min() < 0 or labels.max() >= cfg.n_outputs:
        raise DualmicError(
            f"{where}/labels.npy does not hold {len(features)} x {cfg.n_slots} classes in "
            f"0..{cfg.n_outputs - 1}; re-run the features stage (labels.counting needs it too)"
        )


class Trainer:
    """One training run of ``model`` on ``data``; the weights of the best validation MAE end in
    ``out/model.pt``, the last finished epoch in ``out/checkpoint.pt``."""

    def __init__(
        self,
        model: SSLModel,
        data: TrainData,
        tp: TrainParams,
        ctx: Context,
        out: Path,
        meta: dict,
        fingerprint: str,
        live=None,
    ):
        self.model, self.data, self.tp, self.ctx = model, data, tp, ctx
        self.out, self.meta, self.fingerprint, self.live = out, meta, fingerprint, live
        torch.manual_seed(tp.seed)
        self.train_idx, self.val_idx = split_train_val(len(data.labels), tp.val_fraction, tp.seed)
        if data.mixer is None:  # crops of the cached features
            self.dataset = CropDataset(
                data.features, data.angles, self.train_idx, model.cfg.n_frames, tp.seed
            )
            collate = None
        else:  # the training rooms re-mixed every epoch; validation stays on the cached features
            self.dataset = RoomIndices(self.train_idx, data.mixer)
            collate = data.mixer.batch
        self.sampler = DistributedSampler(
            self.dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=tp.seed
        )
        self.loader = DataLoader(
            self.dataset,
            batch_size=tp.batch_size,
            sampler=self.sampler,
            drop_last=len(self.dataset) > tp.batch_size,
            collate_fn=collate,
        )
        model.to(ctx.device)
        self.net = DistributedDataParallel(model) if ctx.world_size > 1 else model
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=tp.lr, weight_decay=tp.weight_decay)
        steps = len(self.loader)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, steps, tp.epochs, tp.schedule, tp.warmup_epochs, tp.step_epochs)
        )
        # train.ema_decay: an exponential moving average of the weights (and BatchNorm statistics)
        # is what gets validated, selected and saved; the optimiser still steps the raw weights
        self.ema = None
        if tp.ema_decay > 0:
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tp.ema_decay), use_buffers=True)
        # train.precision: the forward pass in bfloat16 where the hardware has it (CUDA, CPUs
        # with AMX or AVX-512 BF16); weights, optimiser and loss stay fp32
        self.precision = autocast_dtype(ctx.device, tp.precision)
        self.autocast = torch.autocast(
            ctx.device.type, dtype=torch.bfloat16, enabled=self.precision is not None
        )
        self.start_epoch = 0
        # a counting model is selected on the validation loss, which also scores its counts
        self.select_on = "val_loss" if data.coding.counting else "val_mae_deg"
        self.best = {"val_mae_deg": float("inf"), "val_loss": float("inf"), "epoch": -1, "state": None}
        self.history: list[dict] = []

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def resume(self) -> None:
        """Continue from the checkpoint of this very run config, if there is one."""
        state = load_checkpoint(self.checkpoint_path, self.fingerprint)
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            torch.set_rng_state(state["torch_rng"])
            self.start_epoch, self.best, self.history = state["epoch"] + 1, state["best"], state["history"]
        if self.ctx.is_main:
            for record in self.history:  # a resumed run's logs start with the epochs it already did
                self._log(record)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the crops of the training rooms; the mean loss."""
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        self.net.train()
        total, seen, t0 = 0.0, 0, time.perf_counter()
        device = self.ctx.device
        with progress_bar(f"train epoch {epoch + 1}/{self.tp.epochs}", len(self.loader.sampler)) as bar:
            for x, y in self.loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                targets = slot_targets(y, self.data.coding)
                with self.autocast:
                    loss = slot_loss(self.net(x), targets)
                value = loss.item()
                if not np.isfinite(value):  # never go on to save the weights of a diverged run
                    raise DualmicError(
                        f"training loss is {value} at epoch {epoch + 1}, step {seen // len(x) + 1} "
                        f"(train.precision {self.tp.precision}, lr {self.tp.lr}): the run diverged; "
                        "lower train.lr or set train.precision: fp32"
                    )
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.sched.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                total += value * len(x)
                seen += len(x)
                rate = seen * self.ctx.world_size / (time.perf_counter() - t0)  # console only
                bar(len(x), info=f"loss {total / seen:.3f}  {rate:.0f} samples/s")
        return total / max(seen, 1)

    @property
    def kept_model(self) -> SSLModel:
        """The weights that are validated and saved: the moving average when train.ema_decay."""
        return self.model if self.ema is None else self.ema.module

    def validate(self) -> ValResult:
        """The kept weights on the validation rooms, in the precision they train in (bf16
        autocast where ``train.precision`` resolves to it: half the time of fp32 on the CPU)."""
        with self.autocast:
            return validate(self.kept_model, self.data, self.val_idx, self.ctx.device, self.tp.batch_size)

    def record(self, epoch: int, train_loss: float, val: ValResult | None) -> None:
        """Keep the best weights so far and log the epoch (``val`` None: an epoch not validated,
        logged with its training loss and learning rate only)."""
        if val is not None:
            score = val.loss if self.select_on == "val_loss" else val.mae_deg
            if score < self.best.get(self.select_on, float("inf")):
                self.best = {
                    "val_mae_deg": val.mae_deg,
                    "val_loss": val.loss,
                    "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in self.kept_model.state_dict().items()},
                }
        record = {"train/loss": train_loss}
        if val is not None:
            record.update({"val/loss": val.loss, "val/mae_deg": val.mae_deg})
        record["lr"] = self.opt.param_groups[0]["lr"]
        if val is not None and val.count_acc is not None:
            record["val/count_acc"] = val.count_acc
        self.history.append(record)
        self._log(record)

    def checkpoint(self, epoch: int) -> None:
        save_checkpoint(
            self.checkpoint_path,
            {
                "fingerprint": self.fingerprint,
                "epoch": epoch,
                "best": self.best,
                "history": self.history,
                "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                **({} if self.ema is None else {"ema": self.ema.state_dict()}),
            },
        )

    def finish(self) -> dict:
        """Write the best epoch's weights (the moving average's with train.ema_decay) as the model
        file; a summary of the run."""
        if self.ctx.is_main:
            if self.best["state"] is not None:
                self.model.load_state_dict(self.best["state"])
            elif self.ema is not None:
                self.model.load_state_dict(self.ema.module.state_dict())
            save_model(self.out / "model.pt", self.model, self.meta)
        return {
            "best_epoch": self.best["epoch"] + 1,
            "best_val_mae_deg": self.best["val_mae_deg"],
            "n_train": len(self.train_idx),
            "n_val": len(self.val_idx),
        }

    def validated(self, epoch: int) -> bool:
        """Whether ``epoch`` is validated: from ``train.validate_from`` of the epochs on, and the
        last. Validation reads the weights only (eval mode, no random draws), so skipping it
        leaves the trained weights as they are; it only narrows the epochs the model is picked
        from (the best epochs of the default runs were late: 38-53 of 40-55)."""
        return epoch >= int(self.tp.validate_from * self.tp.epochs) or epoch == self.tp.epochs - 1

    def fit(self) -> dict:
        self.resume()
        for epoch in range(self.start_epoch, self.tp.epochs):
            train_loss = self.train_epoch(epoch)
            if self.ctx.is_main:
                self.record(epoch, train_loss, self.validate() if self.validated(epoch) else None)
                self.checkpoint(epoch)
            barrier(self.ctx)
        return self.finish()

    def _log(self, record: dict) -> None:
        if self.live is None:
            return
        for name, value in record.items():
            if name in _LOGGED:  # checkpoints of older runs may hold timings: never log them
                self.live.log_metric(name, value)
        self.live.next_step()


_LOGGED = ("train/loss", "val/loss", "val/mae_deg", "val/count_acc", "lr")
