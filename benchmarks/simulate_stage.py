"""End to end: the simulate stage of a split against pyroomacoustics' ISM on the same rooms.

``simulate_speed.py`` times the simulator's loop; a user waits for the whole stage: start-up,
the RIRs of the talkers and of the point-noise positions (``simulate.noise_sources``),
``rooms.csv``, the physics metrics and the files. This script runs the stage exactly as
``dvc.yaml`` does (its ``cmd`` for the split, with the venv's ``python``) ``--repeats`` times into
a temporary folder, so the workspace's ``data/`` and ``metrics/`` are not touched, and takes the
median wall time.

The reference is pyroomacoustics' ISM (``dualmic.sim.ism.ism_rirs``) on the first ``--n-ism``
rooms of the same split, one room per call, timed twice: rendering every position the stage
renders (talkers and noise positions), and the talkers alone. Mean seconds per room times the
split's rooms is the ISM's time for the split; the ratio is that over the stage's wall time.
DVC's own work around the stage (hashing and caching the outputs) is not included: time it with
``dvc repro -f simulate@train``.

Run from the repository root:

    .venv/bin/python benchmarks/simulate_stage.py
    .venv/bin/python benchmarks/simulate_stage.py --params /tmp/other_params.yaml --repeats 1
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer
import yaml
from common import json_option, load_split, machine_info, params_option, split_option, utc_now, write_json
from simulate_speed import OtherLoad, time_ism

from dualmic.core.errors import DualmicError, user_errors
from dualmic.sim.batches import room_spec

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False)


def stage_command(split: str, params: Path, out: Path) -> str:
    """dvc.yaml's simulate cmd for ``split``, writing to ``out`` instead of data/ and metrics/."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["simulate"]
    cmd = stage["do"]["cmd"].replace("${key}", split)
    return f"{cmd} --params {params} --out {out / 'rirs'} --metrics {out / 'metrics'}"


def time_stage(split: str, params: Path, repeats: int) -> list[float]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    walls = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory(prefix="simulate_stage_") as tmp:
            cmd = stage_command(split, params.resolve(), Path(tmp))
            t0 = time.perf_counter()
            done = subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, capture_output=True, text=True)
            walls.append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise DualmicError(f"the stage failed: {cmd}: {done.stderr.strip().splitlines()[-1:]}")
        print(f"  stage run {i + 1}/{repeats}: {walls[-1]:.2f} s", file=sys.stderr)
    return walls


def time_ism_split(sim, split: str, n_rooms: int, noise_positions: bool) -> dict:
    """The ISM on rooms 0..n_rooms-1 of ``split`` (``simulate_speed.time_ism``), in seconds per
    room; ``noise_positions`` adds the rooms' point-noise positions, as the stage does."""
    ism = time_ism(room_spec(sim, split), sim.split(split).seed, n_rooms, sim,
                   n_taps=sim.n_taps_for(split), noise_positions=noise_positions)  # fmt: skip
    positions = sim.n_sources + (sim.noise_sources if noise_positions else 0)
    return dict(ism, positions_per_room=positions, seconds_per_room=ism["seconds"] / ism["rooms"])


@app.command(
    help="Wall time of the simulate stage (as dvc.yaml runs it) against pyroomacoustics' ISM on "
    "the split's first rooms, scaled to the split."
)
def main(
    params: Path = params_option(),
    split: str = split_option("train"),
    n_ism: int = typer.Option(48, min=1, help="rooms simulated with the ISM, twice (about 0.3-0.5 s each)"),
    repeats: int = typer.Option(3, min=1, help="runs of the stage; the median is reported"),
    json_path: Path = json_option(),
) -> None:
    with user_errors():
        p, split_params = load_split(params, split)
        sim = p.simulate
        if sim.method_for(split) != "fra" or sim.array.kind != "free_field":
            raise DualmicError(
                "simulate_stage.py times the free-field FRA-RIR stage: simulate.method fra, "
                "simulate.array.kind free_field"
            )
        n_rooms = split_params.n_rooms
        with OtherLoad() as load:
            print(f"stage simulate@{split}: {n_rooms} rooms, {repeats} runs ...", file=sys.stderr)
            walls = time_stage(split, params, repeats)
            print(f"ISM on {n_ism} rooms, all positions and talkers only ...", file=sys.stderr)
            ism_all = time_ism_split(sim, split, n_ism, noise_positions=True)
            ism_talkers = time_ism_split(sim, split, n_ism, noise_positions=False)
        wall = statistics.median(walls)
        result = {
            "date": utc_now(),
            "machine": dict(machine_info("cpu"), others_cpu_share=load.result),
            "setup": {"params": str(params), "split": split, "n_rooms": n_rooms,
                      "n_sources": sim.n_sources, "noise_sources": sim.noise_sources,
                      "early_ms": sim.fra.early_ms, "command": stage_command(split, params, Path("TMP"))},
            "stage_seconds": walls,
            "stage_seconds_median": wall,
            "ism_all_positions": ism_all,
            "ism_talkers_only": ism_talkers,
            "ratio_all_positions": ism_all["seconds_per_room"] * n_rooms / wall,
            "ratio_talkers_only": ism_talkers["seconds_per_room"] * n_rooms / wall,
        }  # fmt: skip
        share = load.result
        print(f"simulate@{split}: {n_rooms} rooms, {sim.n_sources} talkers + {sim.noise_sources} noise "
              f"positions each, early_ms {sim.fra.early_ms}; other processes' CPU share "
              f"{'?' if share is None else f'{share:.0%}'}")  # fmt: skip
        runs = ", ".join(f"{w:.2f}" for w in walls)
        print(f"stage wall, median of {repeats}: {wall:.2f} s  (runs: {runs})")
        for name, ism in (("all positions", ism_all), ("talkers only", ism_talkers)):
            est = ism["seconds_per_room"] * n_rooms
            print(f"ISM, {name} ({ism['positions_per_room']} per room): "
                  f"{ism['seconds_per_room']:.3f} s/room on {ism['rooms']} rooms -> {est:.0f} s for "
                  f"the split; the stage is {est / wall:.1f}x faster")  # fmt: skip
        if json_path is not None:
            write_json(json_path, result)


if __name__ == "__main__":
    app()
