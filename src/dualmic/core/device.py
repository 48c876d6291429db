"""Where torch work runs."""

from __future__ import annotations

import torch

from dualmic.core.errors import DualmicError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DualmicError("device is cuda but no CUDA GPU is available; use auto or cpu")
    return torch.device(name)
