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


def cpu_has(feature: str) -> bool:
    """Whether torch reports this CPU instruction set (``amx_tile``, ``avx512_bf16``, ...)."""
    probe = getattr(torch.cpu, f"_is_{feature}_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 in hardware: AMX tiles (Intel Xeon since Sapphire
    Rapids) or AVX-512 BF16 dot products (AMD Zen 4 and later, Intel Cooper Lake), where oneDNN's
    bf16 convolutions and matrix products run about twice as fast as fp32 or faster; elsewhere
    bf16 on the CPU is emulated and slower."""
    return cpu_has("amx_tile") or cpu_has("avx512_bf16")


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The lower precision the model's forward pass runs in under autocast, or None for fp32.

    ``fp32``: none. ``bf16``: bfloat16 on any device. ``auto``: bfloat16 on CUDA and on CPUs
    with native bf16 (:func:`cpu_has_native_bf16`), fp32 elsewhere. Weights,
    optimiser state and the loss stay fp32 in every case."""
    if precision not in ("auto", "fp32", "bf16"):
        raise DualmicError(f"precision is {precision!r}; use auto, fp32 or bf16")
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
