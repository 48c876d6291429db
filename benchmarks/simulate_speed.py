"""Speed of dualmic's FRA-RIR simulator against pyroomacoustics' image-source method (ISM).

One "config" is one room: n_sources x n_mics RIRs of ``simulate.n_taps`` samples. Both simulators
run on the same rooms (the first rooms of a split, drawn from its seed with the geometry and RT60
ranges of params.yaml), and the script prints configs/s for each, their ratio, peak memory and
two sanity checks (finite outputs, direct-path delay of mic 0 against the geometry). With a CUDA
device it also compares CUDA against CPU on the first rooms.

With ``--head`` both simulators render binaural rooms instead: the two receivers are the ears of
the head measured in ``simulate.array.sofa`` (dualmic's binaural FRA-RIR against
pyroomacoustics' ISM with the same file as measured ear directivities).

Run from the repository root:

    .venv/bin/python benchmarks/simulate_speed.py
    .venv/bin/python benchmarks/simulate_speed.py --head --n-ism 8
    .venv/bin/python benchmarks/simulate_speed.py --device cuda --json speed.json
"""

from __future__ import annotations

import dataclasses
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer
from common import (
    json_option,
    load_split,
    machine_info,
    params_option,
    peak_rss_mib,
    set_threads,
    split_option,
    threads_option,
    utc_now,
    write_json,
)
from rich import box
from rich.console import Console
from rich.table import Table

from dualmic.core.device import resolve_device
from dualmic.core.errors import DualmicError, user_errors
from dualmic.sim.batches import fra_config, head, room_rirs, room_spec, simulate_batches
from dualmic.sim.fra import image_draws
from dualmic.sim.hrtf import load_hrtf
from dualmic.sim.ism import ism_rirs
from dualmic.sim.rooms import Rooms, RoomSpec, sample_rooms

N_COMPARE = 64  # rooms simulated on both CPU and CUDA to check agreement
ARRIVAL_WINDOW_S = 1e-3  # the first-arrival window ends this long after the direct path

app = typer.Typer(add_completion=False)


class OtherLoad:
    """CPU time used by other processes during a block: /proc/stat busy time minus our own (and
    that of the child processes we waited for).

    Timings on a shared machine are only comparable when ``others_cpu_share`` is near 0.
    """

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        end = self._sample()
        self.result = None
        if self.start is not None and end is not None:
            wall = end[0] - self.start[0]
            busy = end[1] - self.start[1]
            own = end[2] - self.start[2]
            self.result = max(0.0, busy - own) / (wall * (os.cpu_count() or 1))

    @staticmethod
    def _sample():
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        own = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.perf_counter(), busy, sum(u.ru_utime + u.ru_stime for u in own)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def direct_delay_errors(rirs: np.ndarray, rooms: Rooms, sample_rate: int, c: float) -> np.ndarray:
    """|argmax |h| - d/c*fs| in samples for mic 0 of every (room, source): (B*S,).

    The argmax is taken over the first-arrival window: from 0 to ARRIVAL_WINDOW_S after the
    geometric direct-path delay d/c (d = source to mic 0).
    """
    d = np.linalg.norm(rooms.src_pos - rooms.mic_pos[:, None, 0, :], axis=-1)  # (B, S)
    expected = d / c * sample_rate
    stop = np.minimum(
        np.ceil(expected).astype(int) + round(ARRIVAL_WINDOW_S * sample_rate) + 1, rirs.shape[-1]
    )
    h = np.abs(rirs[:, :, 0, :])  # (B, S, T)
    t = np.arange(h.shape[-1])
    masked = np.where(t[None, None, :] < stop[..., None], h, -1.0)
    return np.abs(masked.argmax(-1) - expected).ravel()


def time_ism(
    spec: RoomSpec, seed: int, n_rooms: int, sim, n_taps: int | None = None, noise_positions: bool = False
) -> dict:
    """Time ISM (room sampling included) on rooms 0..n_rooms-1, one room per call, with
    ``n_taps`` (default ``simulate.n_taps``); ``noise_positions`` renders the rooms'
    point-noise positions too, as the simulate stage does.

    A room for which the ISM raises ValueError (pyroomacoustics rejects its parameters) is
    skipped and listed; configs/s counts the simulated rooms and their time only.
    """
    total, errors, finite, skipped = 0.0, [], True, []
    t_report = time.perf_counter()
    for i in range(n_rooms):
        t0 = time.perf_counter()
        rooms = sample_rooms(spec, seed, i, 1)
        if noise_positions and rooms.noise_pos is not None:
            rooms = dataclasses.replace(
                rooms, src_pos=np.concatenate([rooms.src_pos, rooms.noise_pos], axis=1), stored_angles={}
            )
        try:
            rirs = ism_rirs(rooms, sim.sample_rate, n_taps or sim.n_taps, sim.speed_of_sound, head(sim))
        except ValueError:
            skipped.append(i)
            continue
        total += time.perf_counter() - t0
        finite &= bool(np.isfinite(rirs).all())
        errors.append(direct_delay_errors(rirs, rooms, sim.sample_rate, sim.speed_of_sound))
        if time.perf_counter() - t_report > 10 or i + 1 == n_rooms:
            t_report = time.perf_counter()
            print(f"  ism {i + 1}/{n_rooms} rooms, {total:.1f} s", file=sys.stderr)
    done = n_rooms - len(skipped)
    if done == 0:
        raise DualmicError(f"pyroomacoustics could not simulate any of the {n_rooms} rooms")
    return {
        "rooms": done,
        "skipped_rooms": skipped,
        "seconds": total,
        "configs_per_s": done / total,
        "finite": finite,
        "direct_delay_err_median_samples": float(np.median(np.concatenate(errors))),
        "peak_rss_mib": peak_rss_mib(),
    }


def fra_batch(spec, seed, start, count, sim, cfg, device):
    """One batch as the simulate stage does it: rooms, draws, RIRs, copy to the host.

    Returns (rooms, rirs numpy, seconds for rooms+draws, seconds for the RIRs+copy).
    """
    t0 = time.perf_counter()
    rooms = sample_rooms(spec, seed, start, count)
    draws = image_draws(seed, start, count, sim.n_sources, cfg.n_images)
    t1 = time.perf_counter()
    rirs = room_rirs(rooms, draws, cfg, sim, head(sim), device)
    sync(device)
    t2 = time.perf_counter()
    return rooms, rirs, t1 - t0, t2 - t1


def time_fra(split: str, n_rooms: int, batch: int, device, sim) -> dict:
    """Time FRA-RIR on rooms 0..n_rooms-1 through the simulate stage's own loop
    (:func:`dualmic.simulation.simulate_batches`: rooms and draws of the next batch prepared
    while this one simulates), after one untimed warm-up batch."""
    sim = sim.model_copy(
        update={
            "batch_size": batch,
            "splits": {split: sim.splits[split].model_copy(update={"n_rooms": n_rooms})},
        }
    )
    fra_batch(room_spec(sim), sim.splits[split].seed, 0, min(batch, n_rooms), sim, fra_config(sim), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    errors, finite, checked_s = [], True, 0.0
    t0 = t_report = time.perf_counter()
    for start, rooms, rirs in simulate_batches(sim, split, device):
        c0 = time.perf_counter()
        finite &= bool(np.isfinite(rirs).all())  # checks are timed apart and subtracted
        errors.append(direct_delay_errors(rirs, rooms, sim.sample_rate, sim.speed_of_sound))
        checked_s += time.perf_counter() - c0
        if time.perf_counter() - t_report > 10 or start + len(rooms) == n_rooms:
            t_report = time.perf_counter()
            print(
                f"  fra {start + len(rooms)}/{n_rooms} rooms, {t_report - t0 - checked_s:.1f} s",
                file=sys.stderr,
            )
    total = time.perf_counter() - t0 - checked_s
    out = {
        "rooms": n_rooms,
        "batch_size": batch,
        "seconds": total,
        "configs_per_s": n_rooms / total,
        "finite": finite,
        "direct_delay_err_median_samples": float(np.median(np.concatenate(errors))),
        "peak_rss_mib": peak_rss_mib(),
    }
    if device.type == "cuda":
        out["cuda_max_memory_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def compare_devices(spec, seed, n_rooms, batch, sim, cfg, device) -> dict:
    """max |cpu - cuda| / max |cpu| over the RIRs of rooms 0..n_rooms-1."""
    max_diff, max_ref = 0.0, 0.0
    for start in range(0, n_rooms, batch):
        count = min(batch, n_rooms - start)
        rooms = sample_rooms(spec, seed, start, count)
        draws = image_draws(seed, start, count, sim.n_sources, cfg.n_images)
        ref = torch.from_numpy(room_rirs(rooms, draws, cfg, sim, head(sim), "cpu")).double()
        dev = torch.from_numpy(room_rirs(rooms, draws, cfg, sim, head(sim), device)).double()
        max_diff = max(max_diff, float((ref - dev).abs().max()))
        max_ref = max(max_ref, float(ref.abs().max()))
    return {
        "rooms": n_rooms,
        "max_abs_diff": max_diff,
        "max_abs_cpu": max_ref,
        "rel_max_diff": max_diff / max_ref,
    }


def render(result: dict, console: Console) -> None:
    m, ism, fra = result["machine"], result["ism"], result["fra"]
    share = m["others_cpu_share"]
    share = "unknown" if share is None else f"{100 * share:.0f}% (0% = idle machine)"
    console.print(
        f"machine: {m['cpu_model']} ({m['cpu_count']} CPUs), torch threads {m['torch_threads']}, "
        f"device {m['device_name']}; torch {m['torch']}, pyroomacoustics {m['pyroomacoustics']}; "
        f"other processes' share of the CPUs during the run: {share}"
    )
    s = result["setup"]
    console.print(
        f"split {s['split']} (seed {s['seed']}), {s['n_sources']} sources x {s['n_mics']} mics, "
        f"{s['n_taps']} taps at {s['sample_rate']} Hz; FRA {s['n_images']} images, "
        f"oversample {s['oversample']}; receivers: {s['receivers']}"
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for col in ("simulator", "device", "rooms", "seconds", "configs/s", "RIRs/s"):
        table.add_column(col, justify="left" if col in ("simulator", "device") else "right")
    rirs_per = s["n_sources"] * s["n_mics"]
    dev = m["device"]
    table.add_row(
        "pyroomacoustics ISM",
        "cpu",
        str(ism["rooms"]),
        f"{ism['seconds']:.2f}",
        f"{ism['configs_per_s']:.2f}",
        f"{ism['configs_per_s'] * rirs_per:.1f}",
    )
    table.add_row(
        "dualmic FRA-RIR",
        dev,
        str(fra["rooms"]),
        f"{fra['seconds']:.2f}",
        f"{fra['configs_per_s']:.1f}",
        f"{fra['configs_per_s'] * rirs_per:.1f}",
    )
    console.print(table)
    if ism["skipped_rooms"]:
        console.print(
            f"ISM skipped rooms {ism['skipped_rooms']}: pyroomacoustics raised ValueError "
            "(e.g. RT60 out of reach); FRA simulates them"
        )
    console.print(f"ratio FRA/ISM (configs/s): {result['ratio_fra_over_ism']:.1f}x")
    line = (
        f"peak RSS of the process: {ism['peak_rss_mib']:.0f} MiB after ISM, "
        f"{fra['peak_rss_mib']:.0f} MiB after FRA"
    )
    if "cuda_max_memory_allocated_mib" in fra:
        line += f"; CUDA max_memory_allocated: {fra['cuda_max_memory_allocated_mib']:.0f} MiB"
    console.print(line)
    console.print(
        f"sanity: outputs finite ISM={ism['finite']} FRA={fra['finite']}; median |direct-path "
        f"delay error| mic 0 (samples): FRA {fra['direct_delay_err_median_samples']:.3f}, "
        f"ISM {ism['direct_delay_err_median_samples']:.3f}"
    )
    if "cuda_vs_cpu" in result:
        cmp_ = result["cuda_vs_cpu"]
        console.print(
            f"CUDA vs CPU on the first {cmp_['rooms']} rooms: max|cpu-cuda| / max|cpu| = "
            f"{cmp_['rel_max_diff']:.2e}"
        )


@app.command(
    help=(
        "Time pyroomacoustics ISM and dualmic FRA-RIR on the same rooms; print configs/s.\n\n"
        "Rooms are rooms 0..n-1 of the split's seed (indices past the split's n_rooms are "
        "drawn the same way). FRA timing includes room sampling and image draws, as in the "
        "simulate stage, and excludes one warm-up batch; it is also shown without them."
    )
)
def main(
    params: Path = params_option(),
    split: str = split_option(),
    n_ism: int = typer.Option(48, min=1, help="rooms simulated with ISM (slow: about 0.2-1 s each)"),
    n_fra: int = typer.Option(
        3200, min=1, help="rooms simulated with FRA-RIR (about 25 s on an idle 2-core CPU)"
    ),
    batch_size: int = typer.Option(None, min=1, help="FRA rooms per batch (default: simulate.batch_size)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda (FRA only; ISM always runs on CPU)"),
    head_: bool = typer.Option(
        False, "--head", help="binaural: both simulators render the ears of simulate.array.sofa"
    ),
    threads: int = threads_option(),
    json_path: Path = json_option(),
) -> None:
    with user_errors():
        if device not in ("auto", "cpu", "cuda"):
            raise DualmicError(f"--device {device!r}: use auto, cpu or cuda")
        set_threads(threads)
        p, split_params = load_split(params, split)
        sim = p.simulate
        if head_:
            ears = load_hrtf(sim.array.sofa, sim.sample_rate).ear_offsets
            sim = sim.model_copy(
                update={
                    "array": sim.array.model_copy(update={"kind": "hrtf"}),
                    "mic_offsets": tuple(tuple(float(v) for v in ear) for ear in ears),
                }
            )
        dev = resolve_device(device)
        batch = batch_size or sim.batch_size
        spec, cfg, seed = room_spec(sim), fra_config(sim), split_params.seed

        result = {
            "date": utc_now(),
            "machine": machine_info(dev),
            "setup": {
                "params": str(params),
                "split": split,
                "seed": seed,
                "n_sources": sim.n_sources,
                "n_mics": len(sim.mic_offsets),
                "n_taps": sim.n_taps,
                "sample_rate": sim.sample_rate,
                "n_images": cfg.n_images,
                "oversample": cfg.oversample,
                "receivers": sim.array.sofa if sim.array.kind == "hrtf" else "free-field mics",
            },
        }
        with OtherLoad() as load:
            print(f"ISM on {n_ism} rooms ...", file=sys.stderr)
            result["ism"] = time_ism(spec, seed, n_ism, sim)
            print(f"FRA-RIR on {n_fra} rooms ({dev}, batch {batch}) ...", file=sys.stderr)
            result["fra"] = time_fra(split, n_fra, batch, dev, sim)
        result["machine"]["others_cpu_share"] = load.result
        result["ratio_fra_over_ism"] = result["fra"]["configs_per_s"] / result["ism"]["configs_per_s"]
        if dev.type == "cuda":
            n_cmp = min(N_COMPARE, n_fra)
            print(f"CUDA vs CPU on {n_cmp} rooms ...", file=sys.stderr)
            result["cuda_vs_cpu"] = compare_devices(spec, seed, n_cmp, batch, sim, cfg, dev)

        render(result, Console(width=110, highlight=False, soft_wrap=True))
        if json_path is not None:
            write_json(json_path, result)


if __name__ == "__main__":
    app()
