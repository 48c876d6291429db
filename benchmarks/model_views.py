"""How much steadier do more views of a scene make the answer? One or more trained models, each
alone, each mirror-averaged (the swapped channels too, ``evaluate.mirror``), and all of them
averaged together (every model's pooled log-probabilities, slots matched to the first model's),
on the same eval rooms and conditions-test rooms.

    .venv/bin/python benchmarks/model_views.py models/model.pt /tmp/s1.pt

Prints, per method: the eval split's count accuracy and MAE (own count / told the count), and the
conditions test's means over its conditions. Needs ``data/features/eval`` (``dvc repro``) and
the ``espeak-ng`` program (the conditions' talkers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import typer
from common import json_option, machine_info, params_option, set_threads, threads_option, utc_now, write_json

from dualmic.core.errors import user_errors
from dualmic.core.files import load_npy
from dualmic.core.labels import LabelCoding, source_counts
from dualmic.core.params import load_params
from dualmic.learn.decoding import decode_angles, decode_known_count
from dualmic.learn.inference import pooled_log_probs
from dualmic.learn.mirror import match_slots, mirror_average
from dualmic.learn.model_file import check_model, load_model
from dualmic.scoring import metrics
from dualmic.scoring.condition_mixtures import render_condition, talker_pool
from dualmic.scoring.conditions import CONDITIONS


def scores(log_probs: np.ndarray, angles: np.ndarray, coding: LabelCoding) -> tuple[float, float, float]:
    """Count accuracy, MAE with the model's own count and MAE told the count (degrees)."""
    counts = source_counts(angles)
    own = decode_angles(log_probs, coding)
    known = decode_known_count(log_probs, counts, coding)
    mae = [metrics.summary(pred, angles, "m")["m.mae_deg"] for pred in (own, known)]
    return float((source_counts(own) == counts).mean()), mae[0], mae[1]


def main(
    models: list[Path] = typer.Argument(
        ..., help="model files (dvc exp apply NAME, then copy models/model.pt)"
    ),
    params_path: Path = params_option(),
    threads: int | None = threads_option(),
    json_out: Path | None = json_option(),
) -> None:
    with user_errors():
        set_threads(threads)
        p = load_params(params_path)
        coding = LabelCoding.from_params(p)
        nets = []
        for path in models:
            net, meta = load_model(path, "cpu")
            check_model(path, net, meta, p)
            nets.append(net)
        eval_dir = Path("data/features/eval")
        sets = {
            "eval": (
                load_npy(eval_dir / "features.npy"),
                np.asarray(load_npy(eval_dir / "angles.npy"), float),
            )
        }
        pool = talker_pool(p)
        for name in p.conditions.selected:
            rendered = render_condition(CONDITIONS[name], p, pool, "cpu")
            sets[name] = (rendered.features, rendered.angles)

        table: dict[str, dict[str, tuple[float, float, float]]] = {}
        for name, (features, angles) in sets.items():
            plain = [pooled_log_probs(net, features, p.hop_frames) for net in nets]
            swapped = [pooled_log_probs(net, features, p.hop_frames, mirror=True) for net in nets]
            mirrored = [mirror_average(a, b, coding) for a, b in zip(plain, swapped, strict=True)]
            row = {}
            for i, path in enumerate(models):
                row[f"{path}"] = scores(plain[i], angles, coding)
                row[f"{path} mirrored"] = scores(mirrored[i], angles, coding)
            if len(nets) > 1:
                together = np.mean([match_slots(plain[0], lp) for lp in plain], axis=0)
                row["all models"] = scores(together, angles, coding)
            table[name] = row

        conditions = [n for n in sets if n != "eval"]
        print(
            f"{'method':<40} {'eval: count / own / told':>28} {'conditions (mean): count / own / told':>40}"
        )
        for method in table["eval"]:
            ev = table["eval"][method]
            mean = np.nanmean([[np.nan if v is None else v for v in table[n][method]] for n in conditions], 0)
            cells = (
                f"{ev[0]:>10.3f} {ev[1]:>7.2f} {ev[2]:>7.2f} {mean[0]:>20.3f} {mean[1]:>8.2f} {mean[2]:>8.2f}"
            )
            print(f"{method:<40} {cells}")
        if json_out:
            write_json(json_out, {"date": utc_now(), "machine": machine_info(), "scores": table})


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    typer.run(main)
