"""Stage conditions: the model, SRP-PHAT and a constant guess per acoustic condition.

Renders every condition of ``conditions.names`` (:mod:`dualmic.scoring.conditions`: rooms from
seeds no split uses, espeak-ng talkers the model never heard) and scores the three methods on
it. Reads the model and, for the constant baseline only, the train split's angles.npy. Writes:

* <metrics_dir>/conditions.json: flat ``<condition>.<method>.mae_deg`` and ``.acc_10deg``,
  ``<condition>.n_rooms`` and ``label``, the angle they are scored on;
* <plots_dir>/mae_per_condition.csv: one row per condition, the MAE (deg) of each method.

Nothing is written unless every condition was scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dualmic.core.device import resolve_device
from dualmic.core.errors import DualmicError
from dualmic.core.files import load_npy, save_csv, save_json
from dualmic.core.labels import label_period
from dualmic.core.params import load_params
from dualmic.core.progress import progress_bar
from dualmic.learn.model_file import check_model, load_model
from dualmic.scoring.condition_mixtures import condition_scores, predictions, render_condition, talker_pool
from dualmic.scoring.conditions import CONDITIONS, METHODS, N_SLOTS

PLOT_FILE = "mae_per_condition.csv"


def run(
    params: Path = Path("params.yaml"),
    model: Path = Path("models/model.pt"),
    train_angles: Path = Path("data/features/train/angles.npy"),
    metrics_dir: Path = Path("metrics"),
    plots_dir: Path = Path("metrics/conditions"),
) -> dict:
    p = load_params(params)
    if p.simulate.n_sources != N_SLOTS:
        raise DualmicError(
            f"simulate.n_sources is {p.simulate.n_sources}; the conditions test scores models of "
            f"{N_SLOTS} talkers"
        )
    device = resolve_device(p.train.device)
    net, meta = load_model(model, device)
    check_model(model, net, meta, p)
    train = np.asarray(load_npy(train_angles), dtype=np.float64)
    if train.ndim != 2 or train.shape[1] != N_SLOTS or len(train) == 0:
        raise DualmicError(
            f"{train_angles} has shape {train.shape}; expected (rooms, {N_SLOTS}); re-run dvc repro"
        )
    sim_device = resolve_device(p.simulate.device)
    pool = talker_pool(p)

    scores: dict = {"label": p.labels.angle}
    rows = []
    names = p.conditions.selected
    with progress_bar("conditions", len(names) * p.conditions.n_rooms) as bar:
        for name in names:
            rendered = render_condition(CONDITIONS[name], p, pool, sim_device)
            pred = predictions(rendered, net, meta, p, train, device, srp_phat=p.evaluate.srp_phat)
            period = label_period(p.labels.angle)
            elevation = None  # each slot's elevation, for the front/back confusion near the horizontal
            if period is not None:
                elevation = rendered.rooms.slot_elevation_deg(rendered.angles, p.labels.angle)
            found = condition_scores(name, pred, rendered.angles, period, elevation)
            scores.update(found)
            rows.append({"condition": name, **{m: found.get(f"{name}.{m}.mae_deg") for m in METHODS}})
            bar(p.conditions.n_rooms, info=name)
    save_csv(plots_dir / PLOT_FILE, pd.DataFrame(rows, columns=["condition", *METHODS]))
    save_json(metrics_dir / "conditions.json", scores)
    return scores
