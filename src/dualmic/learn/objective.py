"""What training minimises and how fast: the slot targets and loss, and the learning-rate schedule."""

from __future__ import annotations

import math

import torch

from dualmic.core.labels import LabelCoding


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


def slot_targets(angles: torch.Tensor, coding: LabelCoding) -> torch.Tensor:
    """Target distributions (B, S, n_outputs) of sorted slot labels ``angles`` (B, S) degrees.

    A NaN angle is "no source" (the last output of a counting model). An angle is one-hot on its
    class, or with ``coding.sigma_deg`` > 0 a Gaussian over the class centres around it, so the
    pooled probabilities of neighbouring classes carry where in its class the angle lies.
    """
    angles = angles.to(torch.float64)
    empty = torch.isnan(angles)
    if empty.any() and not coding.counting:
        raise ValueError("a slot without a source needs a counting model (labels.counting)")
    a = angles.nan_to_num(0.0)
    k = coding.n_classes
    if coding.sigma_deg > 0:
        centres = (torch.arange(k, dtype=torch.float64, device=a.device) + 0.5) * coding.class_width_deg
        diff = a[..., None] - centres
        if coding.circular:  # the shortest way round: the last class neighbours the first
            span = k * coding.class_width_deg
            diff = torch.remainder(diff + span / 2, span) - span / 2
        weight = torch.exp(-0.5 * (diff / coding.sigma_deg) ** 2)
        target = weight / weight.sum(-1, keepdim=True)
    else:
        cls = torch.floor(a / coding.class_width_deg).long().clamp(0, k - 1)
        target = torch.nn.functional.one_hot(cls, k).to(torch.float64)
    if coding.counting:
        target = torch.cat([target * (~empty[..., None]), empty[..., None].to(torch.float64)], dim=-1)
    return target.float()


def slot_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of slot 1 + slot 2 (+ …): logits and target distributions (B, S, K)."""
    per = -(targets * logits.float().log_softmax(-1)).sum(-1)
    return per.mean(0).sum()
