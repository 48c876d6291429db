"""Run SSL models on features: pooled window log-probabilities and decoded angles.

A model sees a fixed window of STFT frames. Longer inputs are cut into windows ``hop`` frames
apart, and the per-window log-probabilities are averaged (pooled) before decoding; train
(validation), evaluate, export and predict all go through :func:`pooled_log_probs`.
"""

from __future__ import annotations

import numpy as np
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import class_centre_deg
from dualmic.core.params import Params
from dualmic.learn.model import SSLModel


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the pooled windows; the last window ends at the last frame."""
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, hop))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


def pooled_log_probs(
    model: SSLModel, features, hop_frames: int, batch_size: int = 32, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Average window log-probabilities: features (N, C, F, T) → (N, n_slots, n_classes) float32.

    ``features`` is an array, a memmap or a tensor. Inputs shorter than the model window are
    zero-padded (zero cos/sin carries no phase).
    """
    cfg = model.cfg
    n, c, f, t = features.shape
    if c != cfg.in_channels or f != cfg.n_freq:
        raise DualmicError(
            f"features have {c} channels x {f} bins but the model expects {cfg.in_channels} x "
            f"{cfg.n_freq}; features.channels / n_fft differ from the model's training params"
        )
    starts = window_starts(t, cfg.n_frames, hop_frames)
    out = np.empty((n, cfg.n_slots, cfg.n_classes), dtype=np.float32)
    per_batch = max(1, batch_size // len(starts))
    model.eval()
    with torch.inference_mode():
        for lo in range(0, n, per_batch):
            batch = features[lo : lo + per_batch]
            if isinstance(batch, torch.Tensor):
                x = batch.detach().float().cpu()
            else:  # a copy: memmaps are read-only, torch wants writable memory
                x = torch.from_numpy(np.array(batch, dtype=np.float32))
            if t < cfg.n_frames:
                x = torch.nn.functional.pad(x, (0, cfg.n_frames - t))
            windows = torch.stack([x[..., s : s + cfg.n_frames] for s in starts], dim=1)
            logits = model(windows.flatten(0, 1).to(device)).float()
            logp = logits.log_softmax(-1).reshape(len(x), len(starts), cfg.n_slots, cfg.n_classes)
            out[lo : lo + len(x)] = logp.mean(1).cpu().numpy()
    return out


def decode_angles(log_probs: np.ndarray, class_width_deg: float) -> np.ndarray:
    """Predicted angles: centre of each slot's best class, sorted ascending: (N, n_slots) deg."""
    return np.sort(class_centre_deg(log_probs.argmax(-1), class_width_deg), axis=1)


def predict_split(model: SSLModel, features, p: Params, device: str | torch.device = "cpu") -> np.ndarray:
    """Sorted predicted angles (rooms, n_sources) in degrees: pooled windows every
    ``evaluate.hop_s``, centre of each slot's best class (the evaluate stage's predictions)."""
    return decode_angles(
        pooled_log_probs(model, features, p.hop_frames, device=device), p.labels.class_width_deg
    )
