"""Stage evaluate: score the trained model, SRP-PHAT and a constant guess on the eval rooms.

Reads <features_dir>/eval/{features,labels,angles,mix}.npy, <rirs_dir>/eval/rooms.csv (RT60
per room), the model and, for the constant baseline only, <features_dir>/train/angles.npy (no
other training data). Writes:

* <metrics_dir>/eval.json: flat ``model.*``, ``srp_phat.*``, ``constant.*`` scores
  (:func:`dualmic.scoring.metrics.summary`) plus ``label``, the angle they are scored on. The
  baselines are told each room's number of talkers; a counting model finds it, and adds
  ``model.count_acc``, ``.missed_rate``, ``.false_alarm_rate``, ``.mae_{k}src_deg``,
  ``.count_acc_2src_sep_{lo}-{hi}deg`` (two-talker rooms by their talkers' separation, the bins
  of ``evaluate.separation_bins_deg``) and ``model_known_count.*`` (told the count, like the
  baselines);
* <plots_dir>/confusion.json, count_confusion.json (true vs found number of sources),
  mae_vs_rt60.csv, mae_vs_separation.csv, error_histogram.csv, polar_error.csv
  (:mod:`dualmic.scoring.plots`).

Nothing is written unless every input is consistent: a model trained for another label or other
features than params.yaml describes ends the stage with one line.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from dualmic.core.device import resolve_device
from dualmic.core.errors import DualmicError
from dualmic.core.files import load_npy, save_json
from dualmic.core.labels import LabelCoding, label_period, label_span_deg, source_counts
from dualmic.core.params import load_params
from dualmic.core.progress import progress_bar
from dualmic.learn.inference import model_answers, room_log_probs
from dualmic.learn.model_file import check_model, load_model
from dualmic.scoring import metrics, plots
from dualmic.scoring.baselines import method_angles
from dualmic.sim.rooms import Rooms


def _check_rooms(named: dict[str, int]) -> int:
    counts = set(named.values())
    if len(counts) != 1:
        listing = ", ".join(f"{k} {v}" for k, v in named.items())
        raise DualmicError(f"eval inputs disagree on the number of rooms ({listing}); re-run dvc repro")
    return counts.pop()


def run(
    params: Path = Path("params.yaml"),
    features_dir: Path = Path("data/features"),
    rirs_dir: Path = Path("data/rirs"),
    model: Path = Path("models/model.pt"),
    metrics_dir: Path = Path("metrics"),
    plots_dir: Path = Path("metrics/plots"),
) -> dict:
    p = load_params(params)
    device = resolve_device(p.train.device)
    net, meta = load_model(model, device)
    check_model(model, net, meta, p)

    eval_dir = features_dir / "eval"
    feats = load_npy(eval_dir / "features.npy")
    classes = np.asarray(load_npy(eval_dir / "labels.npy"))
    angles = np.asarray(load_npy(eval_dir / "angles.npy"), dtype=np.float64)
    mix = load_npy(eval_dir / "mix.npy") if p.evaluate.srp_phat else None
    rooms = Rooms.read(rirs_dir / "eval" / "rooms.csv", p.simulate.mic_offsets)
    train_angles = np.asarray(load_npy(features_dir / "train" / "angles.npy"))
    sizes = {"features.npy": len(feats), "labels.npy": len(classes), "angles.npy": len(angles)}
    sizes["rooms.csv"] = len(rooms)
    if mix is not None:
        sizes["mix.npy"] = len(mix)
    n = _check_rooms(sizes)
    n_src = p.simulate.n_sources
    for name, arr in (("labels.npy", classes), ("angles.npy", angles), ("train angles.npy", train_angles)):
        if arr.ndim != 2 or arr.shape[1] != n_src:
            raise DualmicError(f"{name} has shape {arr.shape}; expected (rooms, {n_src}); re-run dvc repro")
    if feats.ndim != 4 or (mix is not None and (mix.ndim != 3 or mix.shape[1] != 2)):
        shapes = f"features.npy {feats.shape}" + (f", mix.npy {mix.shape}" if mix is not None else "")
        raise DualmicError(
            f"eval arrays have shapes {shapes}; expected (rooms, C, F, T) and (rooms, 2, samples)"
        )

    coding = LabelCoding.from_params(p)
    ev = p.evaluate
    log_probs, evidence = room_log_probs(
        net, feats, p.hop_frames, coding, device=device, mirror=ev.mirror, turns=ev.turns
    )
    pred_classes = np.sort(log_probs.argmax(-1), axis=1)
    true_counts = source_counts(angles)
    answers = model_answers(log_probs, coding, true_counts, evidence, ev.presence)
    bar = progress_bar("srp-phat eval", n) if mix is not None else contextlib.nullcontext()
    with bar as advance:
        pred = method_angles(
            answers.pop("model"), mix, meta["mic_distance_m"], p, train_angles, advance, true_counts
        )
    pred.update(answers)  # model_known_count, for a counting model

    period = label_period(p.labels.angle)
    errors = {name: metrics.slot_errors(pr, angles, period) for name, pr in pred.items()}
    scores: dict = {"label": p.labels.angle}
    if period is not None:  # each slot's elevation, for the front/back confusion near the horizontal
        elevation = rooms.slot_elevation_deg(angles, p.labels.angle)
    for name, pr in pred.items():
        scores.update(metrics.summary(pr, angles, name, period))
        if period is not None:
            scores.update(metrics.front_back_summary(pr, angles, name, true_elevation_deg=elevation))
    if coding.counting:
        scores.update(metrics.count_summary(pred["model"], angles, "model", period))
    separation = metrics.separation_deg(angles, period)
    # how often both of two talkers are found, by how far apart they are (a model that does not
    # count always answers two)
    count_by_separation = metrics.binned_count_acc(
        separation, pred["model"], angles, p.evaluate.separation_bins_deg
    )
    if coding.counting:
        for row in count_by_separation:
            scores[f"model.count_acc_2src_sep_{row['bin']}deg"] = row["count_acc"]

    plots.write_confusion(
        plots_dir / "confusion.json", classes, pred_classes, p.labels.class_width_deg, p.labels.n_classes
    )
    plots.write_count_confusion(plots_dir / "count_confusion.json", angles, pred["model"])
    plots.write_binned_mae(
        plots_dir / "mae_vs_rt60.csv",
        "rt60_s",
        {k: metrics.binned_mae(rooms.rt60, e, p.evaluate.rt60_bins) for k, e in errors.items()},
    )
    plots.write_binned_mae(
        plots_dir / "mae_vs_separation.csv",
        "separation_deg",
        {k: metrics.binned_mae(separation, e, p.evaluate.separation_bins_deg) for k, e in errors.items()},
        count_by_separation,
    )
    plots.write_error_histogram(plots_dir / "error_histogram.csv", errors)
    plots.write_polar_error(
        plots_dir / "polar_error.csv",
        angles,
        errors,
        p.labels.class_width_deg,
        label_span_deg(p.labels.angle),
    )
    save_json(metrics_dir / "eval.json", scores)
    return scores
