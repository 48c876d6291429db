"""Stage simulate@<split>: rooms and their two-mic RIRs.

Writes <out>/<split>/rirs.npy (n_rooms, n_sources, n_mics, n_taps) float32,
<out>/<split>/rooms.csv (geometry and both angle labels of every source; with
``simulate.noise_sources`` also the point-noise positions, whose RIRs go to noise_rirs.npy,
(n_rooms, noise_sources, n_mics, n_taps)), and
<metrics>/simulate_<split>.json (measured T30 / DRR / direct-delay accuracy of the first rooms),
and, for the plots, <metrics>/simulate_<split>/example_rir.csv (the first 100 ms of room 0's RIRs
from source 0 to both mics) and example_decay.csv (mic 0's Schroeder decay from the direct sound
on, beside the room's target RT60 slope).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dualmic.core.device import resolve_device
from dualmic.core.files import npy_appender, save_csv, save_json
from dualmic.core.params import load_params
from dualmic.core.progress import progress_bar
from dualmic.sim.acoustics import arrival_sample, rir_summary, schroeder_decay_db
from dualmic.sim.batches import head, mixed_head, room_spec, simulate_batches


def run(
    split: str,
    params: Path = Path("params.yaml"),
    out: Path = Path("data/rirs"),
    metrics: Path = Path("metrics"),
    n_check: int = 100,
) -> None:
    p = load_params(params)
    sim = p.simulate
    n_rooms = sim.split(split).n_rooms
    device = resolve_device(sim.device)
    room_spec(sim, split)  # a head's SOFA file is read and checked before any output is opened
    head(sim)
    shape = (n_rooms, sim.n_sources, len(sim.mic_offsets), sim.n_taps_for(split))
    tables, checked = [], []
    with (
        npy_appender(out / split / "rirs.npy", shape, "float32") as append,
        progress_bar(f"simulate {split} ({sim.method_for(split)}, {device})", n_rooms) as bar,
    ):
        for start, rooms, batch in simulate_batches(sim, split, device):  # in room order
            append(batch)
            tables.append(rooms.to_frame())
            if start < n_check:
                checked.append((rooms, batch))
            bar(len(rooms))
        save_csv(out / split / "rooms.csv", pd.concat(tables, ignore_index=True))
    if sim.noise_sources:
        write_noise_rirs(sim, split, device, out / split / "noise_rirs.npy", shape)
    save_json(metrics / f"simulate_{split}.json", physics_summary(checked, n_check, sim))
    rooms0, batch0 = checked[0]
    write_example(metrics / f"simulate_{split}", batch0[0, 0], float(rooms0.rt60[0]), sim.sample_rate)


def write_noise_rirs(sim, split: str, device, path: Path, shape: tuple[int, ...]) -> None:
    """The RIRs of every room's point-noise positions: (n_rooms, noise_sources, n_mics, n_taps)."""
    shape = (shape[0], sim.noise_sources, *shape[2:])
    with (
        npy_appender(path, shape, "float32") as append,
        progress_bar(f"simulate {split} noise positions", shape[0]) as bar,
    ):
        for _, rooms, batch in simulate_batches(sim, split, device, noise=True):
            append(batch)
            bar(len(rooms))


def write_example(folder: Path, rir: np.ndarray, rt60_s: float, sample_rate: int) -> None:
    """One room's RIRs (2 mics) and their Schroeder decay, as plot data."""
    rir = np.asarray(rir, dtype=np.float64)
    n_early = min(rir.shape[-1], int(0.1 * sample_rate))
    t_ms = np.arange(rir.shape[-1]) / sample_rate * 1000
    save_csv(
        folder / "example_rir.csv",
        pd.DataFrame({"time_ms": t_ms[:n_early], "mic0": rir[0, :n_early], "mic1": rir[1, :n_early]}),
    )
    step = max(1, sample_rate // 1000)  # one point per millisecond
    direct = int(np.argmax(np.abs(rir[0])))  # the decay is timed from the direct sound
    decay = schroeder_decay_db(rir[0, direct:])[::step]
    t_s = np.arange(len(decay)) * step / sample_rate
    table = pd.DataFrame(
        {"time_after_direct_ms": t_s * 1000, "mic0_db": decay, "target_db": -60.0 * t_s / rt60_s}
    )
    save_csv(folder / "example_decay.csv", table[table["mic0_db"] > -80].reset_index(drop=True))


def physics_summary(checked, n_check: int, sim) -> dict:
    """Measured RT60 / DRR / direct-delay accuracy of the first ``n_check`` rooms.

    The expected direct-path delay is d / c to each mic; for the ears of a head (kind hrtf, or a
    room of a split with head_fraction) it is the path to the head centre plus the delay of the
    main peak of the measured HRIR of that direction and ear after its origin (the head's own
    diffraction delay)."""
    rirs = np.concatenate([b for _, b in checked])[:n_check]
    rt60 = np.concatenate([r.rt60 for r, _ in checked])[:n_check]
    src = np.concatenate([r.src_pos for r, _ in checked])[:n_check]
    mics = np.concatenate([r.mic_pos for r, _ in checked])[:n_check]
    delay = np.linalg.norm(src[:, :, None] - mics[:, None], axis=-1) / sim.speed_of_sound * sim.sample_rate
    hrtf = head(sim)
    heads = None if checked[0][0].head is None else np.concatenate([r.head for r, _ in checked])[:n_check]
    if hrtf is None and heads is not None and heads.any():
        hrtf = mixed_head(sim)  # a free-field split with some rooms heard through the head
    if hrtf is not None:
        direction = np.concatenate([r.src_direction_array_frame() for r, _ in checked])[:n_check]
        peak = np.array([[arrival_sample(ir, len(ir) - 17) for ir in pair] for pair in hrtf.ir])  # (D, 2)
        centre = np.linalg.norm(direction, axis=-1) / sim.speed_of_sound * sim.sample_rate
        at_ears = centre[..., None] + peak[hrtf.nearest(direction)] - hrtf.origin
        delay = at_ears if heads is None else np.where(heads[:, None, None], at_ears, delay)
    return rir_summary(rirs, rt60, delay, sim.sample_rate)
