"""DVC stage simulate@<split>: rooms and their two-mic RIRs.

Writes data/rirs/<split>/rirs.npy (n_rooms, n_sources, n_mics, n_taps) float32 and
data/rirs/<split>/rooms.csv (geometry and both angle labels of every source).
"""

from __future__ import annotations

from pathlib import Path

import _paths  # noqa: F401, I001  (first: this repo's src/ before any installed dualmic)
import numpy as np
import pandas as pd
import typer

from dualmic.acoustics import rir_summary
from dualmic.errors import DualmicError, user_errors
from dualmic.io import npy_writer, save_csv, save_json
from dualmic.params import load_params
from dualmic.progress import progress_bar
from dualmic.runtime import resolve_device
from dualmic.simulation import simulate_batches

app = typer.Typer(add_completion=False)


@app.command()
def main(
    split: str = typer.Argument(..., help="split name from simulate.splits, e.g. train"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    out: Path = typer.Option(Path("data/rirs"), help="output folder; <out>/<split>/ is written"),
    metrics: Path = typer.Option(Path("metrics"), help="folder of the split's simulate_<split>.json"),
    n_check: int = typer.Option(100, help="rooms whose RIRs are measured for the metrics file"),
) -> None:
    """Simulate the rooms and RIRs of one split."""
    with user_errors():
        p = load_params(params)
        sim = p.simulate
        if split not in sim.splits:
            raise DualmicError(f"unknown split {split!r}; simulate.splits has {', '.join(sim.splits)}")
        device = resolve_device(sim.device)
        n_rooms = sim.splits[split].n_rooms
        shape = (n_rooms, sim.n_sources, len(sim.mic_offsets), sim.n_taps)
        tables, checked = [], []
        with (
            npy_writer(out / split / "rirs.npy", shape, "float32") as rirs,
            progress_bar(f"simulate {split} ({sim.method_for(split)}, {device})", n_rooms) as bar,
        ):
            for start, rooms, batch in simulate_batches(sim, split, device):
                rirs[start : start + len(rooms)] = batch
                tables.append(rooms.to_frame())
                if start < n_check:
                    checked.append((rooms, batch))
                bar(len(rooms))
            save_csv(out / split / "rooms.csv", pd.concat(tables, ignore_index=True))
        save_json(metrics / f"simulate_{split}.json", _physics_summary(checked, n_check, sim))


def _physics_summary(checked, n_check: int, sim) -> dict:
    """Measured RT60 / DRR / direct-delay accuracy of the first ``n_check`` rooms."""
    rirs = np.concatenate([b for _, b in checked])[:n_check]
    rt60 = np.concatenate([r.rt60 for r, _ in checked])[:n_check]
    src = np.concatenate([r.src_pos for r, _ in checked])[:n_check]
    mics = np.concatenate([r.mic_pos for r, _ in checked])[:n_check]
    delay = np.linalg.norm(src[:, :, None] - mics[:, None], axis=-1) / sim.speed_of_sound * sim.sample_rate
    return rir_summary(rirs, rt60, delay, sim.sample_rate)


if __name__ == "__main__":
    app()
