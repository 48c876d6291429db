"""Onsets: where a bin's log-magnitude rises above its last few frames, as a direct sound does
before its reflections (the precedence effect). Shared by the onset feature channels
(``dualmic.data.features``) and the model's level-difference token (``dualmic.learn.model``)."""

from __future__ import annotations

import math

import torch

ONSET_FRAMES = 3  # frames before each one whose largest log-magnitude an onset rises above


def onsets(logmag: torch.Tensor, frames: int = ONSET_FRAMES, threshold_db: float = 0.0) -> torch.Tensor:
    """relu(L[t] − max(L[t−frames .. t−1]) − threshold) per bin of natural-log magnitudes
    (..., F, T), the threshold given in dB of magnitude; a window's first frame is compared with
    itself (no rise)."""
    lead, (f, t) = logmag.shape[:-2], logmag.shape[-2:]
    flat = logmag.reshape(-1, f, t)
    padded = torch.cat([flat[..., :1].expand(-1, -1, frames), flat], dim=-1)
    before = torch.nn.functional.max_pool1d(padded, frames, stride=1)[..., :t]  # frames t-k .. t-1
    threshold = threshold_db * math.log(10.0) / 20.0  # dB of magnitude -> natural log
    return torch.relu(flat - before - threshold).reshape(*lead, f, t)
