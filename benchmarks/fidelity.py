"""Physical fidelity of dualmic's FRA-RIR against pyroomacoustics' image-source method (ISM).

Both simulators render the same rooms (rooms 0..N-1 of a split's seed, default the eval split,
with the geometry and RT60 ranges of params.yaml). For each simulator the script measures, against
the room's geometry and target RT60 and against each other:

* direct path: the sub-sample arrival time of every (source, mic) RIR against d / c, and the
  inter-mic TDOA against the geometric one, in samples;
* reverberation: T20 and T30 from the Schroeder decay (``acoustics.rt60``) against the target RT60;
* DRR (``acoustics.direct_to_reverberant_db``) and the FRA-ISM DRR difference;
* spectral distance: log-spectral distance (``dualmic.spectral.spectral_loss``, lsd) between the
  two simulators' magnitude responses, on raw rfft bins and in third-octave bands, next to the
  same distance between two FRA realisations of the same room (different image draws).

Curves for a few rooms (Schroeder decays and the first 50 ms of the RIRs) are written as CSV for
``dvc plots`` and as one SVG image (drawn by ``svg_plot.py``: matplotlib is not a dependency);
``--json`` writes every number.

    .venv/bin/python benchmarks/fidelity.py                      # 100 eval rooms, about 2-3 min
    .venv/bin/python benchmarks/fidelity.py --n-rooms 20 --json fidelity.json
"""

from __future__ import annotations

import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import typer
from common import (
    json_option,
    load_split,
    machine_info,
    params_option,
    set_threads,
    split_option,
    threads_option,
    utc_now,
    write_json,
)
from rich import box
from rich.console import Console
from rich.table import Table
from svg_plot import Panel, line_panels_svg

from dualmic.core.errors import DualmicError, user_errors
from dualmic.sim.acoustics import schroeder_decay_db
from dualmic.sim.batches import fra_config, room_spec
from dualmic.sim.fidelity import (
    ENERGY_WINDOWS_MS,
    energy_key,
    geometric_delays,
    magnitudes,
    measure,
    per_row_lsd,
    stats_signed,
    third_octave_bands,
)
from dualmic.sim.fra import fra_rirs, image_draws
from dualmic.sim.ism import ism_rirs
from dualmic.sim.rooms import Rooms, sample_rooms
from dualmic.spectral import spectral_loss

REDRAW_SEED_OFFSET = 1_000_003  # image draws of the second FRA realisation: split seed + this
EARLY_MS = 50.0  # length of the early-RIR plot
DECAY_STEP_MS = 1.0  # time step of the decay curves written for plots

app = typer.Typer(add_completion=False)


# --------------------------------------------------------------------------- simulation


def take_rooms(rooms: Rooms, index) -> Rooms:
    """Rooms ``index`` (a slice or an array of indices) of a batch, stored angles included."""
    arrays = {
        f.name: value[index] if isinstance(value := getattr(rooms, f.name), np.ndarray) else value
        for f in fields(Rooms)
        if f.name != "stored_angles"
    }
    return Rooms(**arrays, stored_angles={k: v[index] for k, v in rooms.stored_angles.items()})


def simulate_fra(sim, rooms: Rooms, draw_seed: int, batch: int) -> np.ndarray:
    """FRA-RIRs of ``rooms`` (rooms 0..B-1 of the split), image draws from ``draw_seed``."""
    cfg = fra_config(sim)
    out = []
    for start in range(0, len(rooms), batch):
        stop = min(start + batch, len(rooms))
        part = take_rooms(rooms, slice(start, stop))
        draws = image_draws(draw_seed, start, stop - start, sim.n_sources, cfg.n_images)
        with torch.inference_mode():
            out.append(fra_rirs(part, draws, cfg).numpy())
    return np.concatenate(out)


def simulate_ism(sim, rooms: Rooms) -> tuple[np.ndarray, list[int]]:
    """ISM RIRs of ``rooms``, one room per call; rooms pyroomacoustics rejects are NaN and listed."""
    out = np.full((len(rooms), sim.n_sources, len(sim.mic_offsets), sim.n_taps), np.nan, np.float32)
    skipped, t0, t_report = [], time.perf_counter(), time.perf_counter()
    for b in range(len(rooms)):
        one = take_rooms(rooms, slice(b, b + 1))
        try:
            out[b] = ism_rirs(one, sim.sample_rate, sim.n_taps, sim.speed_of_sound)[0]
        except ValueError:
            skipped.append(b)
        if time.perf_counter() - t_report > 15 or b + 1 == len(rooms):
            t_report = time.perf_counter()
            print(f"  ism {b + 1}/{len(rooms)} rooms, {t_report - t0:.0f} s", file=sys.stderr)
    return out, skipped


# --------------------------------------------------------------------------- plots


def write_plots(
    plots_dir: Path, rooms: Rooms, fra, ism, fra2, sample_rate: int, c: float, n_plot: int
) -> list[str]:
    """CSV curves (dvc plots) and one SVG figure for rooms 0..n_plot-1, source 0, mic 0."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    step = max(1, int(round(DECAY_STEP_MS * 1e-3 * sample_rate)))
    n_early = int(round(EARLY_MS * 1e-3 * sample_rate))
    rows = []
    onsets = np.round(geometric_delays(rooms, sample_rate, c)[:, 0, 0]).astype(int)
    t_ms = np.arange(fra.shape[-1]) / sample_rate * 1e3
    for b in range(min(n_plot, len(rooms))):
        # Schroeder decays from the geometric direct-path sample, common to the three RIRs
        curves = [schroeder_decay_db(r[b, 0, 0, onsets[b] :].astype(np.float64)) for r in (fra, ism, fra2)]
        keep = slice(0, None, step)
        decay_rows = np.stack([t_ms[: len(curves[0])][keep]] + [d[keep] for d in curves], -1)
        path = plots_dir / f"decay_room{b}.csv"
        _write_csv(path, ["time_after_direct_ms", "fra_db", "ism_db", "fra_redraw_db"], decay_rows)
        written.append(str(path))
        early = np.stack([t_ms[:n_early], fra[b, 0, 0, :n_early], ism[b, 0, 0, :n_early]], -1)
        path = plots_dir / f"early_room{b}.csv"
        _write_csv(path, ["time_ms", "fra", "ism"], early)
        written.append(str(path))
        title = f"room {b}: {'x'.join(f'{v:.1f}' for v in rooms.room_dim[b])} m, RT60 {rooms.rt60[b]:.2f} s"
        # the figure shows the decays down to about -70 dB (1.2 RT60); the CSV keeps all of them
        rows.append(_figure_row(title, decay_rows[decay_rows[:, 0] <= 1200 * rooms.rt60[b]], early))
    path = plots_dir / "fidelity.svg"
    path.write_text(line_panels_svg(rows, _HEADING))
    written.append(str(path))
    return written


def _write_csv(path: Path, header: list[str], rows: np.ndarray) -> None:
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join("" if not np.isfinite(v) else f"{v:.6g}" for v in row))
    path.write_text("\n".join(lines) + "\n")


_COLOURS = {"fra": "#1f77b4", "ism": "#d62728", "fra_redraw": "#7fb8e0"}
_HEADING = "FRA-RIR (blue; light blue: second image draw) vs ISM (red), source 0, mic 0"


def _figure_row(title: str, decay: np.ndarray, early: np.ndarray) -> list[Panel]:
    """One room's row of the figure: Schroeder decays (left) and the early RIRs (right).

    ``decay`` columns: time (ms), FRA, ISM, FRA redraw (dB); ``early``: time (ms), FRA, ISM.
    """
    amp = np.nanmax(np.abs(early[:, 1:])) * 1.05
    return [
        Panel(
            f"{title}: Schroeder decay (dB)",
            decay[:, 0],
            [(_COLOURS[name], decay[:, k]) for k, name in enumerate(("fra", "ism", "fra_redraw"), 1)],
            (-70.0, 0.0),
            "ms",
        ),
        Panel(
            f"first {EARLY_MS:.0f} ms of the RIR",
            early[:, 0],
            [(_COLOURS[name], early[:, k]) for k, name in enumerate(("fra", "ism"), 1)],
            (-amp, amp),
            "ms",
        ),
    ]


# --------------------------------------------------------------------------- report


def summarise(fra_m: dict, ism_m: dict, fra2_m: dict, lsd: dict) -> dict:
    out = {}
    for name, m in (("fra", fra_m), ("ism", ism_m), ("fra_redraw", fra2_m)):
        out[name] = {
            "arrival_err_samples": stats_signed(m["arrival_err"]),
            "arrival_err_samples_parabola": stats_signed(m["arrival_err_parabola"]),
            "tdoa_err_samples": stats_signed(m["tdoa_err"]),
            "tdoa_err_samples_parabola": stats_signed(m["tdoa_err_parabola"]),
            "t20_rel_err": stats_signed(m["t20_rel"]),
            "t30_rel_err": stats_signed(m["t30_rel"]),
            "drr_vs_theory_db": stats_signed(m["drr_vs_theory_db"]),
            **{
                f"{energy_key(lo, hi)}_vs_theory": stats_signed(m[f"{energy_key(lo, hi)}_vs_theory"])
                for lo, hi in ENERGY_WINDOWS_MS
            },
            "drr_db": {
                "median": float(np.nanmedian(m["drr_db"])),
                "p10": float(np.nanpercentile(m["drr_db"], 10)),
                "p90": float(np.nanpercentile(m["drr_db"], 90)),
            },
        }
    for pair, (a, b) in (("fra_vs_ism", (fra_m, ism_m)), ("fra_vs_fra_redraw", (fra_m, fra2_m))):
        out[pair] = {
            "arrival_diff_samples": stats_signed(a["arrival_err"] - b["arrival_err"]),
            "drr_diff_db": stats_signed(a["drr_db"] - b["drr_db"]),
            "t20_ratio_minus_1": stats_signed(a["t20"] / b["t20"] - 1),
            "t30_ratio_minus_1": stats_signed(a["t30"] / b["t30"] - 1),
            **{
                f"{energy_key(lo, hi)}_diff": stats_signed(a[energy_key(lo, hi)] - b[energy_key(lo, hi)])
                for lo, hi in ENERGY_WINDOWS_MS
            },
        }
    out["lsd_db"] = lsd
    return out


def goals(s: dict) -> dict:
    """The fidelity goals and whether each is met."""
    fra, ism = s["fra"], s["ism"]
    g = {
        "direct_arrival_median_le_0.5_sample": fra["arrival_err_samples"]["median_abs"] <= 0.5,
        "tdoa_median_le_0.5_sample": fra["tdoa_err_samples"]["median_abs"] <= 0.5,
    }
    for t in ("t20", "t30"):
        f, i = fra[f"{t}_rel_err"]["median_abs"], ism[f"{t}_rel_err"]["median_abs"]
        g[f"{t}_median_abs_rel_le_10pct"] = f <= 0.10
        g[f"{t}_no_worse_than_ism"] = f <= i
    g["drr_median_abs_diff_le_2_db"] = s["fra_vs_ism"]["drr_diff_db"]["median_abs"] <= 2.0
    return g


def _stats_table(summary: dict, first: str, groups: list[tuple[str, tuple[str, ...]]], rows) -> Table:
    """A table of (median |x|, p90 |x|, median x) per group; rows are (label, unit, key, digits, scale)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column(first)
    table.add_column("unit")
    for _, names in groups:
        for name in names:
            table.add_column(name, justify="right")
    for label, unit, key, digits, scale in rows:
        cells = []
        for group, _ in groups:
            st = summary[group][key]
            cells += [f"{scale * st[k]:.{digits}f}" for k in ("median_abs", "p90_abs", "median")]
        table.add_row(label, unit, *cells)
    return table


def render(result: dict, console: Console) -> None:
    s, setup = result["summary"], result["setup"]
    console.print(
        f"{setup['n_rooms']} rooms of split {setup['split']} (seed {setup['seed']}), {setup['n_sources']} "
        f"sources x {setup['n_mics']} mics, {setup['n_taps']} taps at {setup['sample_rate']} Hz; "
        f"FRA {setup['n_images']} images; ISM skipped rooms: {result['ism_skipped_rooms'] or 'none'}"
    )
    rows = [
        ("arrival, band-limited", "samples", "arrival_err_samples", 4, 1),
        ("arrival, parabola", "samples", "arrival_err_samples_parabola", 3, 1),
        ("TDOA, band-limited", "samples", "tdoa_err_samples", 4, 1),
        ("TDOA, parabola", "samples", "tdoa_err_samples_parabola", 3, 1),
        ("T20 / target - 1", "%", "t20_rel_err", 1, 100),
        ("T30 / target - 1", "%", "t30_rel_err", 1, 100),
    ]
    console.print(
        _stats_table(
            s,
            "vs geometry / target",
            [
                ("fra", ("FRA med|e|", "FRA p90|e|", "FRA med e")),
                ("ism", ("ISM med|e|", "ISM p90|e|", "ISM med e")),
            ],
            rows,
        )
    )
    console.print(
        f"DRR (mic 0, +-2.5 ms window) median: FRA {s['fra']['drr_db']['median']:.2f} dB, "
        f"ISM {s['ism']['drr_db']['median']:.2f} dB"
    )
    rows = [
        ("arrival, band-limited", "samples", "arrival_diff_samples", 4, 1),
        ("DRR", "dB", "drr_diff_db", 2, 1),
        ("T20 ratio - 1", "%", "t20_ratio_minus_1", 1, 100),
        ("T30 ratio - 1", "%", "t30_ratio_minus_1", 1, 100),
    ] + [
        (
            f"energy {lo:g}-{'end' if hi is None else f'{hi:g}'} ms re direct",
            "dB",
            f"{energy_key(lo, hi)}_diff",
            2,
            1,
        )
        for lo, hi in ENERGY_WINDOWS_MS
    ]
    console.print(
        _stats_table(
            s,
            "difference per source",
            [
                ("fra_vs_ism", ("FRA-ISM med|d|", "p90|d|", "med d")),
                ("fra_vs_fra_redraw", ("FRA-redraw med|d|", "p90|d|", "med d")),
            ],
            rows,
        )
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for col in (
        "minus Eyring diffuse-field theory",
        "unit",
        "FRA med",
        "FRA med|e|",
        "ISM med",
        "ISM med|e|",
    ):
        table.add_column(col, justify="left" if col.startswith("minus") or col == "unit" else "right")
    rows = [("DRR", "drr_vs_theory_db")] + [
        (
            f"energy {lo:g}-{'end' if hi is None else f'{hi:g}'} ms re direct",
            f"{energy_key(lo, hi)}_vs_theory",
        )
        for lo, hi in ENERGY_WINDOWS_MS
    ]
    for label, key in rows:
        cells = [
            f"{s[n][key][k]:+.2f}" if k == "median" else f"{s[n][key][k]:.2f}"
            for n in ("fra", "ism")
            for k in ("median", "median_abs")
        ]
        table.add_row(label, "dB", *cells)
    console.print(table)
    lsd = s["lsd_db"]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for col in (
        "log-spectral distance (dB)",
        "raw bins",
        "p90 room",
        "1/3-oct bands",
        "p90 room",
        "band bias",
    ):
        table.add_column(col, justify="left" if col.startswith("log") else "right")
    for pair, label in (("fra_vs_ism", "FRA vs ISM"), ("fra_vs_fra_redraw", "FRA vs FRA redraw")):
        p = lsd[pair]
        table.add_row(
            label,
            f"{p['raw']:.2f}",
            f"{p['raw_p90_room']:.2f}",
            f"{p['bands']:.2f}",
            f"{p['bands_p90_room']:.2f}",
            f"{p['band_bias_db']:+.2f}",
        )
    console.print(table)
    console.print(
        f"LSD over all RIRs (mean of rows), p90 over rooms; {lsd['n_bands']} third-octave bands, centres "
        f"{lsd['band_centres_hz'][0]:.0f}-{lsd['band_centres_hz'][-1]:.0f} Hz; band bias: mean of first - "
        "second over RIRs and bands"
    )
    bias = lsd["fra_vs_ism"]["band_bias_db_per_band"]
    console.print(
        "FRA - ISM band level per band (dB): "
        + ", ".join(f"{f:.0f} Hz {b:+.2f}" for f, b in zip(lsd["band_centres_hz"], bias, strict=True))
    )
    for name, ok in result["goals"].items():
        console.print(f"goal {name}: {'met' if ok else 'MISSED'}")


@app.command(help="Physical fidelity of FRA-RIR against pyroomacoustics ISM on the same rooms.")
def main(
    params: Path = params_option(),
    split: str = split_option(),
    n_rooms: int = typer.Option(100, min=1, help="rooms 0..n-1 of the split (ISM: about 1 s each)"),
    plots_dir: Path = typer.Option(Path("benchmarks/fidelity"), help="where the CSV curves and the SVG go"),
    n_plot_rooms: int = typer.Option(4, min=0, help="rooms whose curves are written"),
    threads: int = threads_option(),
    json_path: Path = json_option(),
) -> None:
    with user_errors():
        set_threads(threads)
        p, split_params = load_split(params, split)
        sim = p.simulate
        seed, fs, c = split_params.seed, sim.sample_rate, sim.speed_of_sound
        t_start = time.perf_counter()
        rooms = sample_rooms(room_spec(sim), seed, 0, n_rooms)
        print(f"FRA-RIR on {n_rooms} rooms (two image draws) ...", file=sys.stderr)
        fra = simulate_fra(sim, rooms, seed, sim.batch_size)
        fra2 = simulate_fra(sim, rooms, seed + REDRAW_SEED_OFFSET, sim.batch_size)
        print(f"ISM on {n_rooms} rooms ...", file=sys.stderr)
        ism, skipped = simulate_ism(sim, rooms)
        ok = np.setdiff1d(np.arange(n_rooms), skipped)
        if ok.size == 0:
            raise DualmicError(f"pyroomacoustics could not simulate any of the {n_rooms} rooms")
        keep = take_rooms(rooms, ok)
        fra, fra2, ism = fra[ok], fra2[ok], ism[ok]

        print("measuring ...", file=sys.stderr)
        fra_m, ism_m, fra2_m = (measure(x, keep, fs, c) for x in (fra, ism, fra2))
        bands = third_octave_bands()
        spectra = {k: magnitudes(v, fs, bands) for k, v in (("fra", fra), ("ism", ism), ("fra2", fra2))}
        lsd = {"n_bands": len(bands), "band_centres_hz": bands[:, 1].round(1).tolist()}
        for pair, (a, b) in (("fra_vs_ism", ("fra", "ism")), ("fra_vs_fra_redraw", ("fra", "fra2"))):
            raw_rooms = per_row_lsd(spectra[a][0], spectra[b][0])
            band_rooms = per_row_lsd(spectra[a][1], spectra[b][1])
            bias = 20 * np.log10(spectra[a][1] / spectra[b][1])
            lsd[pair] = {
                "raw": float(spectral_loss(spectra[a][0], spectra[b][0], metric="lsd", input_scale="linear")),
                "raw_median_room": float(np.median(raw_rooms)),
                "raw_p90_room": float(np.percentile(raw_rooms, 90)),
                "bands": float(
                    spectral_loss(spectra[a][1], spectra[b][1], metric="lsd", input_scale="linear")
                ),
                "bands_median_room": float(np.median(band_rooms)),
                "bands_p90_room": float(np.percentile(band_rooms, 90)),
                "band_bias_db": float(bias.mean()),
                "band_bias_db_per_band": bias.mean(axis=(0, 1, 2)).round(3).tolist(),
                "per_room_raw": raw_rooms.round(3).tolist(),
                "per_room_bands": band_rooms.round(3).tolist(),
            }
        summary = summarise(fra_m, ism_m, fra2_m, lsd)
        plot_files = write_plots(plots_dir, keep, fra, ism, fra2, fs, c, n_plot_rooms) if n_plot_rooms else []

        result = {
            "date": utc_now(),
            "seconds": time.perf_counter() - t_start,
            "machine": machine_info(),
            "setup": {
                "params": str(params),
                "split": split,
                "seed": seed,
                "n_rooms": n_rooms,
                "n_sources": sim.n_sources,
                "n_mics": len(sim.mic_offsets),
                "n_taps": sim.n_taps,
                "sample_rate": fs,
                "n_images": sim.fra.n_images,
                "redraw_seed": seed + REDRAW_SEED_OFFSET,
            },
            "ism_skipped_rooms": [int(i) for i in skipped],
            "summary": summary,
            "goals": goals(summary),
            "plots": plot_files,
            "per_source": {
                name: {k: np.asarray(v).round(5).tolist() for k, v in m.items()}
                for name, m in (("fra", fra_m), ("ism", ism_m), ("fra_redraw", fra2_m))
            },
            "rooms": {"rt60": keep.rt60.round(4).tolist(), "room_dim": keep.room_dim.round(3).tolist()},
        }
        render(result, Console(width=130, highlight=False, soft_wrap=True))
        if json_path is not None:
            write_json(json_path, result, indent=1)


if __name__ == "__main__":
    app()
