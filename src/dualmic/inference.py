"""Build, save, load and run SSL models: the one path shared by train, evaluate and predict.

A model sees a fixed window of STFT frames. Longer inputs are cut into windows ``hop`` frames
apart, and the per-window log-probabilities are averaged (pooled) before decoding.
"""

from __future__ import annotations

import math
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from dualmic.errors import DualmicError
from dualmic.io import save_torch
from dualmic.labels import class_centre_deg
from dualmic.model import PRESETS, ModelConfig, SSLModel
from dualmic.params import Params

FORMAT = "dualmic-ssl-model/1"


def window_frames(p: Params) -> int:
    """STFT frames of one model window."""
    seconds = p.model.window_s or PRESETS[p.model.preset]["window_s"]
    return 1 + int(round(seconds * p.simulate.sample_rate)) // p.features.hop


def model_config(p: Params) -> ModelConfig:
    preset = PRESETS[p.model.preset]
    m = p.model
    return ModelConfig(
        in_channels=2 * len(p.features.channels),
        n_freq=p.features.n_fft // 2,
        n_frames=window_frames(p),
        n_classes=p.labels.n_classes,
        n_slots=p.simulate.n_sources,
        dim=m.dim or preset["dim"],
        depth=m.depth or preset["depth"],
        dim_head=m.dim_head,
        heads=m.heads,
        ff_mult=m.ff_mult,
        conv_expansion_factor=m.conv_expansion_factor,
        conv_kernel_size=m.conv_kernel_size,
        dropout=m.dropout,
    )


def model_meta(p: Params) -> dict:
    """What a user of a saved model needs to feed it: the feature and label conventions."""
    mics = np.asarray(p.simulate.mic_offsets, dtype=float)
    return {
        "label": p.labels.angle,
        "class_width_deg": p.labels.class_width_deg,
        "sample_rate": p.simulate.sample_rate,
        "n_fft": p.features.n_fft,
        "hop": p.features.hop,
        "channels": list(p.features.channels),
        "mic_distance_m": float(np.linalg.norm(mics[1] - mics[0])),
        "speed_of_sound": p.simulate.speed_of_sound,
        "hop_s": p.evaluate.hop_s,
    }


def save_model(path: str | Path, model: SSLModel, meta: dict) -> None:
    """Write weights + config + meta in plain types (loadable with ``weights_only=True``)."""
    module = model.module if hasattr(model, "module") else model
    payload = {
        "format": FORMAT,
        "config": module.cfg.to_dict(),
        "meta": meta,
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }
    save_torch(path, payload)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[SSLModel, dict]:
    """Load a model written by :func:`save_model`; anything else is a one-line DualmicError.

    Loading never unpickles code: ``weights_only=True`` refuses any payload but tensors and
    plain containers.
    """
    p = Path(path)
    if p.is_dir():
        raise DualmicError(f"model path {p} is a folder; give the model file (e.g. models/model.pt)")
    if not p.is_file():
        raise DualmicError(f"model file {p} not found; run the train stage (dvc repro)")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of junk files
            warnings.simplefilter("ignore")
            payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        what = f"pickled code ({found.group(1)})" if found else "pickled objects"
        raise DualmicError(f"refusing {p}: it holds {what}, not just weights") from None
    except Exception as err:  # the weights-only unpickler raises many types on junk input
        raise DualmicError(f"{p} is not a readable model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DualmicError(f"{p} is not a dualmic model (expected format {FORMAT})")
    try:
        cfg = ModelConfig(**payload["config"])
        model = SSLModel(cfg)
        model.load_state_dict(payload["state_dict"])
    except (TypeError, KeyError, RuntimeError, ValueError) as err:
        raise DualmicError(f"{p}: weights do not fit the model it describes ({type(err).__name__})") from None
    return model.to(device).eval(), payload["meta"]


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


# meta key of a saved model -> the params.yaml key it came from
META_PARAMS = {
    "label": "labels.angle",
    "class_width_deg": "labels.class_width_deg",
    "sample_rate": "simulate.sample_rate",
    "n_fft": "features.n_fft",
    "hop": "features.hop",
    "channels": "features.channels",
    "mic_distance_m": "simulate.mic_offsets (mic distance)",
    "speed_of_sound": "simulate.speed_of_sound",
}


def _same(a, b) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b


def check_model(path: str | Path, model: SSLModel, meta: dict, p: Params) -> None:
    """The model must have been trained on the label convention and features params.yaml describes."""
    expected = model_meta(p)
    for key, where in META_PARAMS.items():
        if key not in meta:
            raise DualmicError(f"{path}: model meta lacks {key!r}; re-run the train stage (dvc repro)")
        if not _same(meta[key], expected[key]):
            raise DualmicError(
                f"{path} was trained with {key} {meta[key]!r} but params.yaml has {where} "
                f"{expected[key]!r}; re-run train (dvc repro) or evaluate with the params it was trained with"
            )
    cfg = model.cfg
    if cfg.n_classes != p.labels.n_classes:
        raise DualmicError(
            f"{path} predicts {cfg.n_classes} classes but params.yaml has labels.n_classes "
            f"{p.labels.n_classes}; re-run train (dvc repro)"
        )
    if cfg.n_slots != p.simulate.n_sources:
        raise DualmicError(
            f"{path} predicts {cfg.n_slots} sources per room but params.yaml has simulate.n_sources "
            f"{p.simulate.n_sources}; re-run train (dvc repro)"
        )


def predict_split(model: SSLModel, features, p: Params, device: str | torch.device = "cpu") -> np.ndarray:
    """Sorted predicted angles (rooms, n_sources) in degrees: pooled windows every
    ``evaluate.hop_s``, centre of each slot's best class (the evaluate stage's predictions)."""
    hop_frames = max(1, round(p.evaluate.hop_s * p.simulate.sample_rate / p.features.hop))
    return decode_angles(
        pooled_log_probs(model, features, hop_frames, device=device), p.labels.class_width_deg
    )
