"""Run SSL models on features: pooled window log-probabilities and decoded angles.

A model sees a fixed window of STFT frames. Longer inputs are cut into windows ``hop`` frames
apart, and the per-window log-probabilities are averaged (pooled) before decoding; train
(validation), evaluate, export and predict all go through :func:`pooled_log_probs`.
"""

from __future__ import annotations

import numpy as np
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import LabelCoding, class_centre_deg
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
    """Average window log-probabilities: features (N, C, F, T) → (N, n_slots, n_outputs) float32.

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
    out = np.empty((n, cfg.n_slots, cfg.n_outputs), dtype=np.float32)
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
            logp = logits.log_softmax(-1).reshape(len(x), len(starts), cfg.n_slots, cfg.n_outputs)
            out[lo : lo + len(x)] = logp.mean(1).cpu().numpy()
    return out


def slot_peak_deg(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """The angle each slot points at, ignoring "no source": (..., S) degrees.

    ``argmax``: the centre of the best angle class. ``peak``: the vertex of the parabola through
    the pooled log-probabilities of the best class and its two neighbours (exact for a Gaussian
    peak, which ``labels.sigma_deg`` trains for), kept within the best class; edge classes keep
    their centre (on a circular label, the classes wrap round and none is an edge).
    """
    logp = np.asarray(log_probs, dtype=np.float64)[..., : coding.n_classes]
    best = logp.argmax(-1)
    angle = class_centre_deg(best, coding.class_width_deg)
    if coding.decode != "peak" or coding.n_classes < 3:
        return angle
    n = coding.n_classes
    inner = best if coding.circular else np.clip(best, 1, n - 2)  # a circle has no edge class
    y0, y1, y2 = (np.take_along_axis(logp, ((inner + d) % n)[..., None], -1)[..., 0] for d in (-1, 0, 1))
    curve = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curve < 0, 0.5 * (y0 - y2) / curve, 0.0)
    shift = np.where(best == inner, np.clip(shift, -0.5, 0.5), 0.0)
    angle = angle + shift * coding.class_width_deg
    return angle % (n * coding.class_width_deg) if coding.circular else angle


def pooled_probs(log_probs: np.ndarray) -> np.ndarray:
    """Pooled log-probabilities (averaged over windows, so no longer normalised) as
    probabilities that sum to 1 per slot: (..., K) float64."""
    logp = np.asarray(log_probs, dtype=np.float64)
    prob = np.exp(logp - logp.max(-1, keepdims=True))
    return prob / prob.sum(-1, keepdims=True)


def slot_presence(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """How sure each slot is that it holds a source, 0..1: (..., S). A counting model's
    1 - p(no source); otherwise the pooled probability of the best class."""
    prob = pooled_probs(log_probs)
    return 1.0 - prob[..., coding.n_classes] if coding.counting else prob.max(-1)


def decode_angles(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Predicted slot angles (N, S) degrees, sorted ascending; NaN (sorted last) where a counting
    model gives "no source" half or more of the slot's probability. (Not the single best class:
    a source's probability is spread over neighbouring angle classes, "no source" is one class.)"""
    angle = slot_peak_deg(log_probs, coding)
    if coding.counting:
        angle = np.where(slot_presence(log_probs, coding) <= 0.5, np.nan, angle)
    return np.sort(angle, axis=-1)


def decode_known_count(log_probs: np.ndarray, counts: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Slot angles (N, S) when the number of sources of each room is given: the ``counts[i]``
    slots most sure to hold a source (:func:`slot_presence`) give their angles, sorted, then NaN.
    Scores models with and without counting (and baselines) on the same footing."""
    angle = slot_peak_deg(log_probs, coding)
    order = np.argsort(-slot_presence(log_probs, coding), axis=-1, kind="stable")
    out = np.full(angle.shape, np.nan)
    for i, k in enumerate(np.asarray(counts, dtype=np.int64)):
        out[i, :k] = np.sort(angle[i, order[i, :k]])
    return out


def model_answers(
    log_probs: np.ndarray, coding: LabelCoding, true_counts: np.ndarray
) -> dict[str, np.ndarray]:
    """The model's scored angles (N, S): ``model`` with its own count (a counting model) or told
    the count (a model without the "no source" class), and for a counting model also
    ``model_known_count``, told the count as the baselines are."""
    known = decode_known_count(log_probs, true_counts, coding)
    if not coding.counting:
        return {"model": known}
    return {"model": decode_angles(log_probs, coding), "model_known_count": known}


def predict_split(model: SSLModel, features, p: Params, device: str | torch.device = "cpu") -> np.ndarray:
    """Sorted predicted slot angles (rooms, n_sources) in degrees (NaN = no source): pooled
    windows every ``evaluate.hop_s``, decoded as ``labels.*`` says (the evaluate stage's)."""
    return decode_angles(
        pooled_log_probs(model, features, p.hop_frames, device=device), LabelCoding.from_params(p)
    )
