"""Per-epoch training checkpoints: written atomically, resumed only by the same run config."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch

from dualmic.core.files import save_torch
from dualmic.core.imports import code_fingerprint

# the module the train stage runs: its import closure is the code that decides what training computes
TRAINING_MODULE = "dualmic.pipeline.train"


def run_fingerprint(config: dict, module: str = TRAINING_MODULE) -> str:
    """Hash of everything that defines a training run: the params of the data, model and
    training, and the code the train stage imports (the same closure its DVC deps must cover),
    so no checkpoint outlives a code change."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(code_fingerprint(module).encode())
    return digest.hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    save_torch(path, state)


def load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """The checkpoint's state if it belongs to this run config, else None (start afresh)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError):
        return None  # unreadable or unsafe: ignore it, training restarts from scratch
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        return None
    if not _KEYS <= state.keys():  # written by an older dualmic: start afresh
        return None
    return state


_KEYS = {"epoch", "best", "history", "model", "optimizer", "scheduler", "torch_rng"}
