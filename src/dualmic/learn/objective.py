"""What training minimises and how fast: the two-slot loss and the learning-rate schedule."""

from __future__ import annotations

import math

import torch


def lr_factor(
    step: int, steps_per_epoch: int, epochs: int, schedule: str, warmup_epochs: int, step_epochs: int
) -> float:
    """Learning-rate multiplier at optimiser step ``step``."""
    epoch = step // max(steps_per_epoch, 1)
    if schedule == "step":
        return 0.1 ** (epoch // step_epochs)
    warm = warmup_epochs * steps_per_epoch
    total = max(epochs * steps_per_epoch, 1)
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(total - warm, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def slot_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of slot 1 + slot 2 (+ …): logits (B, S, K), labels (B, S) sorted classes."""
    per = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none")
    return per.mean(0).sum()
