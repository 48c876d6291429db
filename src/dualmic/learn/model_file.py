"""The model file: build a model from params, save it with its conventions, load it safely,
and check that a loaded model fits the params it is used with."""

from __future__ import annotations

import math
import pickle
import re
import warnings
from pathlib import Path

import torch

from dualmic.core.errors import DualmicError
from dualmic.core.files import save_torch
from dualmic.core.params import Params
from dualmic.learn.model import ModelConfig, SSLModel

FORMAT = "dualmic-ssl-model/1"


def model_config(p: Params) -> ModelConfig:
    m = p.model
    return ModelConfig(
        in_channels=2 * len(p.features.channels),
        n_freq=p.features.n_fft // 2,
        n_frames=p.window_frames,
        n_classes=p.labels.n_classes,
        n_slots=p.simulate.n_sources,
        dim=m.width,
        depth=m.n_layers,
        dim_head=m.dim_head,
        heads=m.heads,
        ff_mult=m.ff_mult,
        conv_expansion_factor=m.conv_expansion_factor,
        conv_kernel_size=m.conv_kernel_size,
        dropout=m.dropout,
        none_class=p.labels.counting,
        level_norm=m.level_norm and "logmag" in p.features.channels,
        frontend=m.token_grid,
        stem_layers=m.stem_layers,
        ild_token=m.ild_token,
        ild_segments=m.ild_segments,
        floor_channels=m.floor_channels,
    )


def model_meta(p: Params) -> dict:
    """What a user of a saved model needs to feed it: the feature and label conventions."""
    meta = {
        "label": p.labels.angle,
        "class_width_deg": p.labels.class_width_deg,
        "sample_rate": p.simulate.sample_rate,
        "n_fft": p.features.n_fft,
        "hop": p.features.hop,
        "channels": list(p.features.channels),
        "mic_distance_m": p.simulate.mic_distance_m,
        "speed_of_sound": p.simulate.speed_of_sound,
        "hop_s": p.evaluate.hop_s,
        "counting": p.labels.counting,
        "onset_threshold_db": p.features.onset_threshold_db,
    }
    for key in p.features.idle_keys():  # models that do not use it keep their meta (and bytes)
        meta.pop(key)
    return meta


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
    "onset_threshold_db": "features.onset_threshold_db",
}
# meta keys that model files made before them lack, with the value those files were made with
META_DEFAULTS = {"onset_threshold_db": 0.0}


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
        if key not in expected:  # acts on nothing with these params (FeaturesParams.idle_keys)
            continue
        if key not in meta and key not in META_DEFAULTS:
            raise DualmicError(f"{path}: model meta lacks {key!r}; re-run the train stage (dvc repro)")
        found = meta.get(key, META_DEFAULTS.get(key))
        if not _same(found, expected[key]):
            raise DualmicError(
                f"{path} was trained with {key} {found!r} but params.yaml has {where} "
                f"{expected[key]!r}; re-run train (dvc repro) or evaluate with the params it was trained with"
            )
    cfg = model.cfg
    if cfg.n_classes != p.labels.n_classes:
        raise DualmicError(
            f"{path} predicts {cfg.n_classes} classes but params.yaml has labels.n_classes "
            f"{p.labels.n_classes}; re-run train (dvc repro)"
        )
    if cfg.none_class != p.labels.counting:
        raise DualmicError(
            f"{path} {'counts' if cfg.none_class else 'does not count'} talkers but params.yaml has "
            f"labels.counting {str(p.labels.counting).lower()}; re-run train (dvc repro)"
        )
    if cfg.n_slots != p.simulate.n_sources:
        raise DualmicError(
            f"{path} predicts {cfg.n_slots} sources per room but params.yaml has simulate.n_sources "
            f"{p.simulate.n_sources}; re-run train (dvc repro)"
        )
