"""Distances between spectra (or any signals along a last "acoustic" axis), in torch.

:func:`spectral_loss` compares a prediction with a target row by row: the LAST axis (samples or
frequency bins) is reduced first, to one value per row, and the rows are then reduced to a
scalar. It is differentiable, so it serves as a training loss as well as a fidelity measure
(``benchmarks/fidelity.py`` uses it to compare FRA-RIR and image-source spectra).
"""

from __future__ import annotations

import math

import numpy as np
import torch

METRICS = ("rmse", "mae", "lsd")
INPUT_SCALES = ("db", "linear")
REDUCTIONS = ("mean", "rms")

__all__ = ["INPUT_SCALES", "METRICS", "REDUCTIONS", "spectral_loss", "to_db"]


def to_db(x: torch.Tensor, epsilon: float = 1e-12) -> torch.Tensor:
    """Amplitude in dB: ``20 * log10(clamp(|x|, min=epsilon))`` (so 0 maps to 20 log10 ε)."""
    return 20 * torch.log10(x.abs().clamp_min(epsilon))


def spectral_loss(
    prediction,
    target,
    metric: str = "rmse",
    input_scale: str = "db",
    reduction: str = "mean",
    epsilon: float = 1e-12,
) -> torch.Tensor:
    """Distance between ``prediction`` and ``target`` along their last axis, reduced to a scalar.

    The last axis is the acoustic axis (samples or frequency bins). Each row (every index of the
    other axes) is first reduced over it, with ``n`` its length:

    * ``"rmse"``: ``sqrt(mean((p - t)**2))``, in the units of the inputs;
    * ``"mae"``: ``mean(|p - t|)``, in the units of the inputs;
    * ``"lsd"`` (log-spectral distance): ``sqrt(mean((P_db - T_db)**2))``, in dB.

    ``input_scale`` only matters for ``"lsd"``: with ``"linear"`` the inputs are amplitudes
    (magnitudes; the sign is ignored) and are converted with ``20 * log10(clamp(|x|, min=epsilon))``;
    with ``"db"`` they are already in dB and are used as they are. ``"rmse"`` and ``"mae"`` never
    convert anything: they compare the values as given with either scale (``input_scale`` just
    records what the inputs are), so e.g. ``metric="rmse", input_scale="linear"`` is the RMS
    amplitude error, not a dB error. For an RMS error in dB of linear inputs use ``"lsd"``.

    The per-row values are then reduced by ``reduction``: ``"mean"`` is their arithmetic mean,
    ``"rms"`` their root-mean-square ``sqrt(mean(row**2))``. A 1-D input is one row.

    Args:
        prediction, target: tensors or array-likes (numpy arrays, nested lists) of the same shape
            with at least one dimension and no empty axis. Array-likes are converted with
            ``torch.as_tensor``, onto the device of the other argument when that one is a tensor.
        metric: ``"rmse"``, ``"mae"`` or ``"lsd"``.
        input_scale: ``"db"`` or ``"linear"``.
        reduction: ``"mean"`` or ``"rms"``.
        epsilon: finite, > 0: the amplitude floor of the ``"lsd"`` conversion of linear inputs
            (the default 1e-12 is -240 dB). Validated for every metric.

    Returns:
        A 0-d tensor on the inputs' device. Its dtype is torch's promotion of the two inputs'
        dtypes when that is floating (float32 with float64 gives float64); integer or bool
        inputs are converted to torch's default float dtype. Half-precision inputs are computed
        in float32 (so that ``epsilon`` does not underflow) and the result is cast back.
        Gradients flow to whichever inputs require them (``sqrt`` at an exact match has the
        subgradient 0, not NaN; linear ``"lsd"`` inputs below ``epsilon`` get no gradient).

    Raises:
        ValueError: an unknown ``metric``, ``input_scale`` or ``reduction``; a non-finite or
            non-positive ``epsilon``; inputs that cannot be converted, are complex, are 0-d, are
            empty, differ in shape, or are tensors on different devices.
    """
    _check_choice("metric", metric, METRICS)
    _check_choice("input_scale", input_scale, INPUT_SCALES)
    _check_choice("reduction", reduction, REDUCTIONS)
    epsilon = _check_epsilon(epsilon)
    pred, targ = _as_tensors(prediction, target)

    out_dtype = _result_dtype(pred.dtype, targ.dtype)
    work = torch.float32 if torch.finfo(out_dtype).bits < 32 else out_dtype
    pred, targ = pred.to(work), targ.to(work)

    if metric == "lsd":
        if input_scale == "linear":
            pred, targ = to_db(pred, epsilon), to_db(targ, epsilon)
        rows = _rms(pred - targ, dim=-1)
    elif metric == "rmse":
        rows = _rms(pred - targ, dim=-1)
    else:  # mae
        rows = (pred - targ).abs().mean(dim=-1)

    result = rows.mean() if reduction == "mean" else _rms(rows.reshape(-1), dim=-1)
    return result.to(out_dtype)


def _rms(x: torch.Tensor, dim: int) -> torch.Tensor:
    """sqrt(mean(x**2)) along ``dim``; the norm's backward gives 0 (not NaN) where x is all 0."""
    return torch.linalg.vector_norm(x, ord=2, dim=dim) / math.sqrt(x.shape[dim])


def _check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} {value!r} is not supported; use one of {', '.join(map(repr, allowed))}")


def _check_epsilon(epsilon) -> float:
    if isinstance(epsilon, bool | str) or isinstance(epsilon, torch.Tensor) and epsilon.numel() != 1:
        raise ValueError(f"epsilon {epsilon!r} must be a finite number > 0")
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"epsilon {epsilon!r} must be a finite number > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"epsilon {epsilon!r} must be a finite number > 0")
    return value


def _as_tensors(prediction, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Both arguments as tensors on one device, validated for shape."""
    tensors = [x for x in (prediction, target) if isinstance(x, torch.Tensor)]
    if len(tensors) == 2 and prediction.device != target.device:
        raise ValueError(
            f"prediction is on {prediction.device} and target on {target.device}; put both on one device"
        )
    device = tensors[0].device if tensors else None
    pred = _as_tensor("prediction", prediction, device)
    targ = _as_tensor("target", target, device)
    if pred.shape != targ.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(targ.shape)}; "
            "they must be equal (no broadcasting)"
        )
    if pred.dim() == 0:
        raise ValueError(
            "prediction and target are scalars (0-d); need at least 1 dimension (the last is reduced)"
        )
    if pred.numel() == 0:
        raise ValueError(
            f"prediction and target are empty (shape {tuple(pred.shape)}); every axis needs length >= 1"
        )
    return pred, targ


def _as_tensor(name: str, x, device) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        if isinstance(x, np.ndarray) and any(s < 0 for s in x.strides):
            x = x.copy()  # torch.as_tensor cannot share memory with negative strides
        try:
            x = torch.as_tensor(x, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} could not be converted to a tensor: {err}") from None
    if x.is_complex():
        raise ValueError(f"{name} is complex ({x.dtype}); pass real values, e.g. magnitudes x.abs()")
    return x


def _result_dtype(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    dtype = torch.promote_types(a, b)
    return dtype if dtype.is_floating_point else torch.get_default_dtype()
