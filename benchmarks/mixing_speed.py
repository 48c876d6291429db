"""Speed of on-the-fly mixing (``data/online.py``) against the features stage's mixing, in one run.

Both turn cached RIRs of the train split (``data/rirs/train``) into two-mic mixtures and the
model's STFT features; one **room** is one mixture of its sources. Timed, on the same rooms:

* **reference**: the features stage's own loop (``dualmic.data.mixtures.feature_batches``): a
  fresh synthetic talker per source, ``features.duration_s`` (3 s) mixtures, clean;
* **online, 3 s clean**: the online mixer producing the same length, clean (same work);
* **online, 3 s conditions**: the same with the conditions of real recordings drawn as
  ``--conditions`` probabilities (one talker 0.2, point noise 0.5 of those, diffuse noise 0.5,
  sensor noise 0.5, imperfect mics 0.5);
* **online, window clean / conditions**: one model window (``model.window_s``, 1 s with the
  default preset) per room;
* **online, window, the params' own**: what training really mixes: one window under every
  ``augment`` probability of the params (a noise source at the room's own noise positions, a
  second voice from a talker's position, and so on) and ``features.active_sources``.

"Clean" sets every ``augment`` probability to 0 and two talkers; "conditions" the CONDITIONS
below and 0 for the rest, so these cases stay comparable as the params gain conditions.

The online pool (synthetic talkers, the speech bank, noise) is built once before timing; its
build time is printed apart (the train stage pays it once per run). Needs ``data/rirs/train``
and, unless ``online.talkers`` is [synthetic], ``data/speech`` (``dvc repro speech``).

    .venv/bin/python benchmarks/mixing_speed.py                 # 640 rooms each, about 1 min
    .venv/bin/python benchmarks/mixing_speed.py --n-rooms 320 --json mixing.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer
from common import (
    json_option,
    machine_info,
    params_option,
    peak_rss_mib,
    set_threads,
    threads_option,
    utc_now,
    write_json,
)
from rich import box
from rich.console import Console
from rich.table import Table

from dualmic.core.errors import DualmicError, user_errors
from dualmic.core.files import load_npy
from dualmic.core.params import load_params
from dualmic.data.mixtures import feature_batches
from dualmic.data.online import OnlineMixer
from dualmic.data.pool import build_pool
from dualmic.sim.rooms import Rooms

app = typer.Typer(add_completion=False)

CONDITIONS = {"point_noise": 0.5, "diffuse": 0.5, "sensor": 0.5, "mic": 0.5}
ACTIVE_SOURCES = (0.1, 0.3, 0.6)  # probability of 0, 1, 2 talkers with the conditions on
# every augment probability of online mixing; those not in CONDITIONS are 0 in the fixed cases
PROBABILITIES = (
    "point_noise",
    "noise_source",
    "talker_overlap",
    "talker_gaps",
    "band_limit",
    "diffuse",
    "sensor",
)


def with_conditions(p, on: bool | None):
    """``p`` with the augment probabilities of CONDITIONS and ACTIVE_SOURCES (on), two talkers
    and nothing else (off), or as they are (None: the params' own)."""
    if on is None:
        return p
    aug = p.augment
    values = {k: (CONDITIONS.get(k, 0.0) if on else 0.0) for k in PROBABILITIES}
    mic = aug.mic.model_copy(update={"probability": CONDITIONS["mic"] if on else 0.0})
    features = p.features.model_copy(update={"active_sources": ACTIVE_SOURCES if on else None})
    return p.model_copy(
        update={"augment": aug.model_copy(update={**values, "mic": mic}), "features": features}
    )


def time_reference(p, rirs, n_rooms: int) -> dict:
    q = p.model_copy(
        update={
            "augment": p.augment.model_copy(update={"splits": ()}),
            "features": p.features.model_copy(update={"snr_db": None, "active_sources": None}),
        }
    )
    t0 = time.perf_counter()
    shape = None
    for batch in feature_batches(q, "train", rirs[:n_rooms]):
        shape = batch.features.shape
    seconds = time.perf_counter() - t0
    return {
        "rooms": n_rooms,
        "seconds": seconds,
        "rooms_per_s": n_rooms / seconds,
        "features_shape": shape[1:],
    }


def time_online(
    p, rirs, angles, pool, n_rooms: int, n_samples: int, conditions: bool | None, batch: int, noise_rirs=None
) -> dict:
    q = with_conditions(p, conditions)
    mixer = OnlineMixer(rirs, angles, pool, q, n_samples=n_samples, noise_rirs=noise_rirs)
    mixer.batch(np.arange(min(batch, n_rooms)))  # warm-up (FFT plans, page cache)
    t0 = time.perf_counter()
    shape = None
    for start in range(0, n_rooms, batch):
        x, _ = mixer.batch(np.arange(start, min(start + batch, n_rooms)))
        if not torch.isfinite(x).all():
            raise DualmicError(f"online mixture of rooms {start}.. holds NaN/inf")
        shape = tuple(x.shape[1:])
    seconds = time.perf_counter() - t0
    return {"rooms": n_rooms, "seconds": seconds, "rooms_per_s": n_rooms / seconds, "features_shape": shape}


@app.command()
def main(
    params: Path = params_option(),
    rirs_dir: Path = typer.Option(Path("data/rirs/train"), help="cached RIRs to mix"),
    speech_dir: Path = typer.Option(Path("data/speech"), help="speech bank (online.talkers: speech)"),
    n_rooms: int = typer.Option(640, min=1, help="rooms per timed case"),
    batch_size: int = typer.Option(None, min=1, help="rooms per online batch (default: train.batch_size)"),
    threads: int = threads_option(),
    json_path: Path = json_option(),
) -> None:
    with user_errors():
        set_threads(threads)
        p = load_params(params)
        rirs = load_npy(rirs_dir / "rirs.npy")
        noise_path = rirs_dir / "noise_rirs.npy"  # the rooms' noise positions (simulate.noise_sources)
        noise_rirs = load_npy(noise_path) if noise_path.is_file() else None
        n_rooms = min(n_rooms, len(rirs))
        angles = Rooms.read(rirs_dir / "rooms.csv", p.simulate.mic_offsets, len(rirs)).angles(
            p.labels.angle, stored=True
        )
        batch = batch_size or p.train.batch_size
        fs = p.simulate.sample_rate
        result = {"date": utc_now(), "machine": machine_info("cpu")}
        t0 = time.perf_counter()
        pool = build_pool(p.online, fs, speech_dir)
        result["pool"] = {"talkers": len(pool.talkers), "build_s": time.perf_counter() - t0}
        np.asarray(rirs[:n_rooms]).sum()  # page the RIRs in for every case alike
        print(f"features stage loop on {n_rooms} rooms ...", file=sys.stderr)
        result["reference"] = time_reference(p, rirs, n_rooms)
        long_n = p.n_samples
        window_n = int(round(p.model.window_seconds * fs))
        cases = {
            "online_3s_clean": (long_n, False),
            "online_3s_conditions": (long_n, True),
            "online_window_clean": (window_n, False),
            "online_window_conditions": (window_n, True),
            "online_window_params": (window_n, None),
        }
        for name, (n, cond) in cases.items():
            print(f"{name} on {n_rooms} rooms ...", file=sys.stderr)
            result[name] = time_online(p, rirs, angles, pool, n_rooms, n, cond, batch, noise_rirs)
            result[name]["ratio_to_reference"] = (
                result[name]["rooms_per_s"] / result["reference"]["rooms_per_s"]
            )
        result["peak_rss_mib"] = peak_rss_mib()
        render(result, p, Console(width=110, highlight=False, soft_wrap=True))
        if json_path is not None:
            write_json(json_path, result)


def render(result: dict, p, console: Console) -> None:
    m = result["machine"]
    console.print(
        f"{m['cpu_model']} ({m['cpu_count']} CPUs, {m['torch_threads']} torch threads), load "
        f"{m['load_average_1_5_15min']}; pool of {result['pool']['talkers']} talkers built in "
        f"{result['pool']['build_s']:.1f} s; peak RSS {result['peak_rss_mib']:.0f} MiB"
    )
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("mixing + features", "seconds of audio", "rooms", "time (s)", "rooms/s", "× reference"):
        table.add_column(col, justify="left" if col == "mixing + features" else "right")
    window = p.model.window_seconds
    rows = [
        ("features stage (reference), clean", p.features.duration_s, result["reference"], None),
        ("online, clean", p.features.duration_s, result["online_3s_clean"], "x"),
        ("online, conditions", p.features.duration_s, result["online_3s_conditions"], "x"),
        ("online, one model window, clean", window, result["online_window_clean"], "x"),
        ("online, one model window, conditions", window, result["online_window_conditions"], "x"),
        ("online, one model window, the params' own (training)", window, result["online_window_params"], "x"),
    ]
    for label, secs, r, ratio in rows:
        table.add_row(
            label,
            f"{secs:g}",
            str(r["rooms"]),
            f"{r['seconds']:.2f}",
            f"{r['rooms_per_s']:.0f}",
            "1.00" if ratio is None else f"{r['ratio_to_reference']:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    app()
