"""Scores of angle predictions (pure numpy): errors per source slot, summaries, breakdowns.

Every room has ``S`` source slots (2 in dualmic); predictions and true angles are (N, S) degrees,
NaN where a slot holds no source. Both are sorted ascending per room (NaN last) before they are
compared, so slot 1 always pairs the smaller predicted angle with the smaller true angle,
whatever order a method returned them in. On a circular label (``period`` 360, labels.angle
azimuth360) errors go the shortest way round and each room's predictions are paired with its
true angles in the order that makes the summed error smallest. Angles are compared only in rooms
whose number of sources was found (the count is right); the count itself is scored apart.
"""

from __future__ import annotations

import numpy as np

from dualmic.core.labels import angle_difference, pair_slots, slot_errors, source_counts

DECIMALS = 4
HORIZONTAL_DEG = 30.0  # degrees of elevation within which front/back confusion is also scored apart


def separation_deg(true_deg, period: float | None = None) -> np.ndarray:
    """Angular separation of a room's sources: largest minus smallest angle (on a circle, the
    shorter way round), (N,) degrees (NaN for rooms with fewer than two sources)."""
    true = np.asarray(true_deg, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        sep = np.nanmax(np.where(np.isnan(true), -np.inf, true), axis=1) - np.nanmin(
            np.where(np.isnan(true), np.inf, true), axis=1
        )
    if period is not None:
        sep = np.abs(angle_difference(sep, 0.0, period))
    return np.where(source_counts(true) >= 2, sep, np.nan)


def front_back_summary(
    pred_deg,
    true_deg,
    prefix: str,
    margin_deg: float = 10.0,
    true_elevation_deg=None,
    horizontal_deg: float = HORIZONTAL_DEG,
) -> dict:
    """Front/back scores of full-circle azimuths (labels.angle azimuth360; front = 0..180°):
    ``front_back_confusion``, the fraction of sources (correctly counted rooms, more than
    ``margin_deg`` from the interaural axis) predicted in the wrong hemisphere, and
    ``mae_front_back_resolved_deg``, the MAE of the sources whose hemisphere is right (or that lie
    within the margin of the axis, where front and back meet).

    With ``true_elevation_deg`` (N, S), each true source's elevation in the same slot order as
    ``true_deg``, ``front_back_confusion_horizontal`` is the confusion of the sources within
    ``horizontal_deg`` of the horizontal plane: far above or below the head, front and back
    converge (a source overhead is neither), so the pinna has little to tell them by."""
    if true_elevation_deg is not None:
        order = np.argsort(np.asarray(true_deg, dtype=np.float64), axis=1)  # np.sort's order, NaN last
        elevation = np.take_along_axis(np.asarray(true_elevation_deg, dtype=np.float64), order, axis=1)
    pred, true = pair_slots(pred_deg, true_deg, 360.0)
    same_count = (source_counts(pred) == source_counts(true))[:, None]
    found = same_count & np.isfinite(pred) & np.isfinite(true)
    sin_t, sin_p = np.sin(np.radians(np.nan_to_num(true))), np.sin(np.radians(np.nan_to_num(pred)))
    judged = found & (np.abs(sin_t) > np.sin(np.radians(margin_deg)))
    confused = judged & (np.sign(sin_t) != np.sign(sin_p))
    err = np.abs(angle_difference(pred, true, 360.0))
    out = {
        f"{prefix}.front_back_confusion": _r(confused.sum() / judged.sum()) if judged.any() else None,
        f"{prefix}.mae_front_back_resolved_deg": _r(_mean(err[found & ~confused])),
    }
    if true_elevation_deg is not None:
        level = judged & (np.abs(np.nan_to_num(elevation, nan=90.0)) <= horizontal_deg)
        key = f"{prefix}.front_back_confusion_horizontal"
        out[key] = _r((confused & level).sum() / level.sum()) if level.any() else None
    return out


def _r(x) -> float | None:
    x = float(x)
    return round(x, DECIMALS) if np.isfinite(x) else None


def _mean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def count_summary(pred_deg, true_deg, prefix: str, period: float | None = None) -> dict:
    """Flat count scores ``{prefix}.<name>``: ``count_acc`` (rooms with the right number of
    sources), ``missed_rate`` (true sources not reported / true sources), ``false_alarm_rate``
    (sources reported beyond the true count / rooms) and ``mae_{k}src_deg`` (correctly counted
    rooms of k sources, k >= 1)."""
    pred, true = pair_slots(pred_deg, true_deg)
    k_pred, k_true = source_counts(pred), source_counts(true)
    err = slot_errors(pred, true, period)
    out = {
        f"{prefix}.count_acc": _r((k_pred == k_true).mean()),
        f"{prefix}.missed_rate": _r(np.maximum(k_true - k_pred, 0).sum() / max(k_true.sum(), 1)),
        f"{prefix}.false_alarm_rate": _r(np.maximum(k_pred - k_true, 0).sum() / max(len(k_true), 1)),
    }
    for k in range(1, true.shape[1] + 1):
        out[f"{prefix}.mae_{k}src_deg"] = _r(_mean(err[k_true == k]))
    return out


def count_confusion(true_deg, pred_deg, n_slots: int) -> np.ndarray:
    """(n_slots + 1, n_slots + 1) int64 room counts: row = true number of sources, column = found."""
    out = np.zeros((n_slots + 1, n_slots + 1), dtype=np.int64)
    np.add.at(out, (source_counts(true_deg), source_counts(pred_deg)), 1)
    return out


def summary(pred_deg, true_deg, prefix: str, period: float | None = None) -> dict:
    """Flat metrics of one method, keys ``{prefix}.<name>``.

    * ``mae_deg``: mean absolute error over all sources; ``mae_slot{k}_deg`` per sorted slot
      (slot 1 = the smaller angle);
    * ``acc_5deg`` / ``acc_10deg``: fraction of sources with error <= 5° / <= 10°;
    * ``both_within_10deg``: fraction of rooms whose every source is within 10°;
    * ``n_rooms``: count.

    Sources are those of correctly counted rooms (:func:`slot_errors`); with every count right
    and every slot full this is the plain two-slot score. ``both_within_10deg`` is over correctly
    counted rooms with a source. Floats are rounded to 4 decimals (None when nothing is scored).
    """
    err = slot_errors(pred_deg, true_deg, period)
    if len(err) == 0:
        raise ValueError("no rooms to score")
    found = np.isfinite(err)
    out = {f"{prefix}.mae_deg": _r(_mean(err))}
    for k in range(err.shape[1]):
        out[f"{prefix}.mae_slot{k + 1}_deg"] = _r(_mean(err[:, k]))
    n_found = max(int(found.sum()), 1)
    out[f"{prefix}.acc_5deg"] = _r((found & (err <= 5.0)).sum() / n_found) if found.any() else None
    out[f"{prefix}.acc_10deg"] = _r((found & (err <= 10.0)).sum() / n_found) if found.any() else None
    rooms = found.any(axis=1)
    within = (~found | (err <= 10.0)).all(axis=1)
    out[f"{prefix}.both_within_10deg"] = _r(within[rooms].mean()) if rooms.any() else None
    out[f"{prefix}.n_rooms"] = int(len(err))
    return out


def confusion(true_cls, pred_cls, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts over all slots: row = true class, column = predicted.

    Both (N, S) class arrays are sorted per room first, as angles are.
    """
    true = np.sort(np.asarray(true_cls, dtype=np.int64), axis=1).ravel()
    pred = np.sort(np.asarray(pred_cls, dtype=np.int64), axis=1).ravel()
    if true.shape != pred.shape:
        raise ValueError(
            f"true {np.shape(true_cls)} and predicted {np.shape(pred_cls)} classes differ in shape"
        )
    if len(true) and (min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= n_classes):
        raise ValueError(f"classes must lie in 0..{n_classes - 1}")
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (true, pred), 1)
    return out


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: [e_i, e_i+1), the last bin closed [e_-2, e_-1]; -1 outside the edges."""
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2
    idx[(values < edges[0]) | (values > edges[-1]) | ~np.isfinite(values)] = -1
    return idx


def binned_mae(values, errors, edges) -> list[dict]:
    """MAE of the rooms whose ``values`` (N,) fall in each bin of ``edges`` (e.g. RT60, separation).

    ``errors`` is (N, S) (from :func:`slot_errors`); a room's MAE is the mean over its scored
    sources, and rooms with none scored are left out.
    Bins are [lo, hi) except the last, [lo, hi]. Rooms whose value lies outside
    [edges[0], edges[-1]] are left out of every bin (not folded into the end bins), so
    ``sum(n)`` can be less than N. An empty bin has ``mae_deg`` None.

    Returns one row per bin: ``{"bin": "lo-hi", "lo", "hi", "mae_deg", "n"}``.
    """
    vals = np.asarray(values, dtype=np.float64)
    err = np.asarray(errors, dtype=np.float64)
    err = err.reshape(len(err), -1)
    if vals.shape != (len(err),):
        raise ValueError(f"values {vals.shape} must be one per room of errors {err.shape}")
    idx, bins = _bins(vals, edges)
    idx[~np.isfinite(err).any(axis=1)] = -1  # rooms with nothing scored (no source, wrong count)
    rows = []
    for b, head in enumerate(bins):
        sel = err[idx == b]
        rows.append({**head, "mae_deg": _r(np.nanmean(sel)) if len(sel) else None, "n": int(len(sel))})
    return rows


def _bins(values: np.ndarray, edges) -> tuple[np.ndarray, list[dict]]:
    """(bin index of each value as :func:`_bin_index`, ``{"bin": "lo-hi", "lo", "hi"}`` of each
    bin) of increasing ``edges``."""
    edges = np.asarray(edges, dtype=np.float64)
    if len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges {edges.tolist()} must be at least two increasing values")
    heads = [
        {"bin": f"{lo:g}-{hi:g}", "lo": float(lo), "hi": float(hi)}
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    return _bin_index(values, edges), heads


def binned_count_acc(values, pred_deg, true_deg, edges) -> list[dict]:
    """Count accuracy of the rooms whose ``values`` (N,) fall in each bin of ``edges``, e.g. the
    two-talker rooms by their talkers' separation (rooms whose value is NaN are left out).

    Bins as :func:`binned_mae`. Returns one row per bin: ``{"bin", "lo", "hi", "count_acc", "n"}``
    (``count_acc`` None for an empty bin).
    """
    vals = np.asarray(values, dtype=np.float64)
    right = source_counts(np.asarray(pred_deg, dtype=np.float64)) == source_counts(
        np.asarray(true_deg, dtype=np.float64)
    )
    if vals.shape != right.shape:
        raise ValueError(f"values {vals.shape} must be one per room of {right.shape}")
    idx, bins = _bins(vals, edges)
    rows = []
    for b, head in enumerate(bins):
        sel = right[idx == b]
        rows.append({**head, "count_acc": _r(sel.mean()) if len(sel) else None, "n": int(len(sel))})
    return rows


def error_histogram(errors, bin_width: float = 5.0, max_deg: float = 180.0) -> tuple[np.ndarray, np.ndarray]:
    """Counts of source errors in bins of ``bin_width`` from 0 to ``max_deg``.

    Returns (lower edges, counts); bins are [lo, lo + width) and the last also holds errors
    >= its lower edge (an error of exactly 180° counts in the last bin).
    """
    if bin_width <= 0:
        raise ValueError(f"bin_width {bin_width} must be > 0")
    err = np.asarray(errors, dtype=np.float64).ravel()
    err = err[np.isfinite(err)]
    n_bins = int(np.ceil(max_deg / bin_width - 1e-9))
    lower = np.arange(n_bins) * float(bin_width)
    idx = np.clip(np.floor(err / bin_width).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    return lower, counts
