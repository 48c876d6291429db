"""Per-epoch training checkpoints: written atomically, resumed only by the same run config."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch

from dualmic.io import save_torch

# modules whose code decides what training computes: a change to any of them starts afresh
_TRAINING_CODE = ("model.py", "training.py", "trainer.py", "inference.py", "checkpoint.py")


def run_fingerprint(config: dict) -> str:
    """Hash of everything that defines a training run: the params of the data, model and
    training, and the code of the modules that train, so no checkpoint outlives a code change."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    here = Path(__file__).parent
    for name in _TRAINING_CODE:
        digest.update((here / name).read_bytes())
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
