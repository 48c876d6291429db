"""Data files for DVC plots (``dvc plots show``), written atomically.

* confusion: a JSON list with one record per eval source, ``{"actual": deg, "predicted": deg}``
  (class centres); DVC's ``confusion`` template counts the pairs itself. JSON keeps the
  numbers numeric, so the axes sort 2.5, 7.5, …, 177.5 (CSV values reach DVC as strings and
  would sort as text).
* binned MAE (vs RT60, vs source separation): CSV, one row per bin with its label, edges,
  centre, room count and one MAE column per method.
* error histogram: CSV, one row per error bin with one count column per method.

Every method column is always written; a method that was not run has empty cells, so the
plot definitions in dvc.yaml stay valid when e.g. ``evaluate.srp_phat`` is false.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from dualmic.core.files import atomic_path, save_csv
from dualmic.core.labels import class_centre_deg, source_counts
from dualmic.scoring.metrics import error_histogram

METHODS = ("model", "srp_phat", "constant")


def write_confusion(
    path: str | os.PathLike, true_cls, pred_cls, class_width_deg: float, n_classes: int = 0
) -> None:
    """One record per source: class centres of the true and predicted class, slots sorted.
    With ``n_classes`` given, slots where either side is "no source" (class >= n_classes) are
    left out (the count confusion holds them)."""
    true = np.sort(np.asarray(true_cls), axis=1).ravel()
    pred = np.sort(np.asarray(pred_cls), axis=1).ravel()
    if n_classes:
        keep = (true < n_classes) & (pred < n_classes)
        true, pred = true[keep], pred[keep]
    actual, predicted = class_centre_deg(true, class_width_deg), class_centre_deg(pred, class_width_deg)
    records = [{"actual": float(a), "predicted": float(p)} for a, p in zip(actual, predicted, strict=True)]
    _write_records(path, records)


def write_count_confusion(path: str | os.PathLike, true_deg, pred_deg) -> None:
    """One record per room: the true and the found number of sources (DVC confusion template)."""
    true, pred = source_counts(true_deg), source_counts(pred_deg)
    _write_records(path, [{"actual": int(a), "predicted": int(p)} for a, p in zip(true, pred, strict=True)])


def _write_records(path, records: list[dict]) -> None:
    with atomic_path(path) as tmp:  # a top-level list: save_json writes mappings
        tmp.write_text(json.dumps(records, indent=1) + "\n")


def write_binned_mae(
    path: str | os.PathLike,
    x_name: str,
    rows_by_method: dict[str, list[dict]],
    count_rows: list[dict] | None = None,
) -> None:
    """Binned MAE of every method (rows from :func:`dualmic.metrics.binned_mae`, same edges).

    Columns: bin, lo, hi, ``x_name`` (bin centre, the plot's x), n_rooms, model, srp_phat, constant;
    with ``count_rows`` (:func:`dualmic.metrics.binned_count_acc`, same edges) also n_counted
    (rooms in the bin) and model_count_acc.
    """
    first = next(iter(rows_by_method.values()))
    table = pd.DataFrame(
        {
            "bin": [r["bin"] for r in first],
            "lo": [r["lo"] for r in first],
            "hi": [r["hi"] for r in first],
            x_name: [(r["lo"] + r["hi"]) / 2 for r in first],
            "n_rooms": [r["n"] for r in first],
        }
    )
    for method in _methods(rows_by_method):
        rows = rows_by_method.get(method)
        table[method] = [r["mae_deg"] for r in rows] if rows is not None else None
    if count_rows is not None:
        table["n_counted"] = [r["n"] for r in count_rows]
        table["model_count_acc"] = [r["count_acc"] for r in count_rows]
    save_csv(path, table)


def write_error_histogram(
    path: str | os.PathLike, errors_by_method: dict[str, np.ndarray], bin_width: float = 5.0
) -> None:
    """Histogram of source errors per method. Columns: error_deg (bin's lower edge), one count per method."""
    lower = error_histogram(np.zeros(0), bin_width)[0]
    table = pd.DataFrame({"error_deg": lower})
    for method in _methods(errors_by_method):
        errors = errors_by_method.get(method)
        table[method] = error_histogram(errors, bin_width)[1] if errors is not None else None
    save_csv(path, table)


def _methods(by_method: dict) -> list[str]:
    return list(METHODS) + [m for m in by_method if m not in METHODS]


def write_polar_error(
    path: str | os.PathLike,
    true_angles: np.ndarray,
    errors_by_method: dict[str, np.ndarray],
    bin_width: float,
    span_deg: float = 180.0,
) -> None:
    """MAE per true angle (the polar error plot): one row per ``bin_width`` bin of 0..``span_deg``.

    Columns: angle_deg (bin centre), lo, hi, n_sources, one MAE column per method (empty where a
    bin holds no source or the method was not run). ``true_angles`` and the errors are (N, S).
    """
    true = np.asarray(true_angles, dtype=np.float64).ravel()
    edges = np.arange(0.0, span_deg + bin_width / 2, bin_width)
    idx = np.clip(np.digitize(true, edges[1:-1]), 0, len(edges) - 2)
    idx = np.where(np.isfinite(true), idx, len(edges) - 1)  # no source: an overflow bin, dropped
    table = pd.DataFrame({"angle_deg": (edges[:-1] + edges[1:]) / 2, "lo": edges[:-1], "hi": edges[1:]})
    n_bins = len(edges) - 1
    table["n_sources"] = np.bincount(idx, minlength=n_bins + 1)[:n_bins]
    for method in _methods(errors_by_method):
        errors = errors_by_method.get(method)
        if errors is None:
            table[method] = None
            continue
        e = np.asarray(errors, dtype=np.float64).ravel()
        scored = np.isfinite(e)
        sums = np.bincount(idx[scored], weights=e[scored], minlength=n_bins + 1)[:n_bins]
        n = np.bincount(idx[scored], minlength=n_bins + 1)[:n_bins]
        with np.errstate(invalid="ignore", divide="ignore"):
            table[method] = np.where(n > 0, sums / n, np.nan)
    save_csv(path, table)
