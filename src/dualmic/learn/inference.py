"""Run SSL models on features: window log-probabilities, pooled, and the model's answers.

A model sees a fixed window of STFT frames. Longer inputs are cut into windows ``hop`` frames
apart, and the per-window log-probabilities are averaged (pooled) before decoding
(:mod:`dualmic.learn.decoding`); train (validation), evaluate, export and predict all go through
:func:`pooled_log_probs` or :func:`room_log_probs`, which adds mirror averaging
(:mod:`dualmic.learn.mirror`) and the evidence of talkers who take turns
(:mod:`dualmic.learn.turns`).
"""

from __future__ import annotations

import numpy as np
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import LabelCoding
from dualmic.core.params import Params
from dualmic.learn.decoding import PRESENCE, decode_angles, decode_known_count
from dualmic.learn.mirror import mirror_average, mirror_features
from dualmic.learn.model import SSLModel
from dualmic.learn.turns import add_turn_talkers, turn_evidence


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the pooled windows; the last window ends at the last frame."""
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, hop))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


def _window_batches(model: SSLModel, features, hop_frames: int, batch_size: int, device, mirror: bool):
    """Yield (first row, window log-probabilities (rows, W, n_slots, n_outputs) float32 tensor)."""
    cfg = model.cfg
    n, c, f, t = features.shape
    if c != cfg.in_channels or f != cfg.n_freq:
        raise DualmicError(
            f"features have {c} channels x {f} bins but the model expects {cfg.in_channels} x "
            f"{cfg.n_freq}; features.channels / n_fft differ from the model's training params"
        )
    starts = window_starts(t, cfg.n_frames, hop_frames)
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
            if mirror:
                x = mirror_features(x)
            windows = torch.stack([x[..., s : s + cfg.n_frames] for s in starts], dim=1)
            logits = model(windows.flatten(0, 1).to(device)).float()
            logp = logits.log_softmax(-1).reshape(len(x), len(starts), cfg.n_slots, cfg.n_outputs)
            yield lo, logp.cpu()


def pooled_log_probs(
    model: SSLModel,
    features,
    hop_frames: int,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    mirror: bool = False,
) -> np.ndarray:
    """Average window log-probabilities: features (N, C, F, T) → (N, n_slots, n_outputs) float32.

    ``features`` is an array, a memmap or a tensor. Inputs shorter than the model window are
    zero-padded (zero cos/sin carries no phase). ``mirror``: score the channel-swapped
    features instead (:func:`mirror_features`; the answer is about the mirrored scene).
    """
    out = np.empty((features.shape[0], model.cfg.n_slots, model.cfg.n_outputs), dtype=np.float32)
    for lo, logp in _window_batches(model, features, hop_frames, batch_size, device, mirror):
        out[lo : lo + len(logp)] = logp.mean(1).numpy()
    return out


def window_log_probs(
    model: SSLModel, features, hop_frames: int, batch_size: int = 32, device: str | torch.device = "cpu"
) -> np.ndarray:
    """The log-probabilities of every window before pooling: (N, W, n_slots, n_outputs) float32."""
    return np.concatenate(
        [logp.numpy() for _, logp in _window_batches(model, features, hop_frames, batch_size, device, False)]
    )


def room_log_probs(
    model: SSLModel,
    features,
    hop_frames: int,
    coding: LabelCoding,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    mirror: bool = False,
    turns: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled log-probabilities (N, n_slots, n_outputs) of :func:`pooled_log_probs`, with
    ``mirror`` averaged with the pooled answer to the swapped channels mapped back to this scene
    (:func:`~dualmic.learn.mirror.mirror_average`), and, with ``turns``, the
    :func:`~dualmic.learn.turns.turn_evidence` of the windows (of the channels as they are),
    else None."""
    n = features.shape[0]
    logp = np.empty((n, model.cfg.n_slots, model.cfg.n_outputs), dtype=np.float32)
    evidence = np.empty((n, 2, coding.n_classes)) if turns else None
    for lo, windows in _window_batches(model, features, hop_frames, batch_size, device, False):
        logp[lo : lo + len(windows)] = windows.mean(1).numpy()
        if evidence is not None:
            evidence[lo : lo + len(windows)] = turn_evidence(windows.numpy(), coding)
    if mirror:
        swapped = pooled_log_probs(model, features, hop_frames, batch_size, device, mirror=True)
        logp = mirror_average(logp, swapped, coding)
    return logp, evidence


def model_answers(
    log_probs: np.ndarray,
    coding: LabelCoding,
    true_counts: np.ndarray,
    evidence: np.ndarray | None = None,
    presence: float = PRESENCE,
) -> dict[str, np.ndarray]:
    """The model's scored angles (N, S): ``model`` with its own count (a counting model) or told
    the count (a model without the "no source" class), and for a counting model also
    ``model_known_count``, told the count as the baselines are; its own count keeps the slots
    whose presence is above ``presence`` (``evaluate.presence``). With ``evidence``
    (:func:`turn_evidence`), ``model`` adds the talkers who take turns (:func:`add_turn_talkers`)."""
    known = decode_known_count(log_probs, true_counts, coding)
    if not coding.counting:
        return {"model": known}
    found = decode_angles(log_probs, coding, presence)
    if evidence is not None:
        found = add_turn_talkers(found, evidence, coding)
    return {"model": found, "model_known_count": known}


def predict_split(model: SSLModel, features, p: Params, device: str | torch.device = "cpu") -> np.ndarray:
    """Sorted predicted slot angles (rooms, n_sources) in degrees (NaN = no source): pooled
    windows every ``evaluate.hop_s`` (and the swapped channels when ``evaluate.mirror``),
    decoded as ``labels.*`` says and counted at ``evaluate.presence``, with the talkers who take
    turns when ``evaluate.turns`` (the evaluate stage's)."""
    coding = LabelCoding.from_params(p)
    ev = p.evaluate
    logp, evidence = room_log_probs(
        model, features, p.hop_frames, coding, device=device, mirror=ev.mirror, turns=ev.turns
    )
    found = decode_angles(logp, coding, ev.presence)
    return found if evidence is None else add_turn_talkers(found, evidence, coding)
