"""DVC stage export: the eval rooms' RIRs, geometry, labels and model predictions as SOFA files.

Reads data/rirs/eval/{rirs.npy,rooms.csv}, data/features/eval/features.npy (and angles.npy, to
check it matches rooms.csv) and models/model.pt. Writes (see :mod:`dualmic.sofa`):

* <out>/eval_rirs.sofa: GeneralFIR, every (room, source) of the eval split, measurement
  m = room * n_sources + source;
* <out>/rooms/room_0000.sofa ...: SingleRoomSRIR, one file for each of the first
  ``export.n_room_files`` eval rooms.

The model's predictions are made exactly as the evaluate stage makes them (pooled window
log-probabilities, centre of each slot's best class, sorted); the sorted predictions are assigned
to the sources in the order of their true angles (smaller true angle, smaller prediction).

Everything is written into a temporary folder beside <out> that replaces <out> only when every
file is complete: a failure leaves no partial export behind (and an older export untouched).
"""

from __future__ import annotations

from pathlib import Path

import _paths  # noqa: F401, I001  (first: this repo's src/ before any installed dualmic)
import numpy as np
import typer

from dualmic.errors import DualmicError, user_errors
from dualmic.inference import check_model, load_model, predict_split
from dualmic.io import atomic_folder, load_npy, load_rooms
from dualmic.params import Params, load_params
from dualmic.runtime import resolve_device
from dualmic.sofa import (
    params_comment,
    predictions_per_source,
    resolve_date,
)
from dualmic.sofa_export import write_general_fir, write_single_room_srir

app = typer.Typer(add_completion=False)

DEFAULT_N_ROOM_FILES = 4


def _n_room_files(option: int | None, p: Params) -> int:
    if option is not None:
        value, where = option, "--n-room-files"
    else:  # export params are optional: params.yaml without an export section uses the default
        section = getattr(p, "export", None)
        value = getattr(section, "n_room_files", DEFAULT_N_ROOM_FILES)
        where = "export.n_room_files"
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DualmicError(f"{where} {value!r} must be a count >= 0")
    return value


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    rirs_dir: Path = typer.Option(Path("data/rirs"), help="simulate stage output folder (eval/)"),
    features_dir: Path = typer.Option(Path("data/features"), help="features stage output folder (eval/)"),
    model: Path = typer.Option(Path("models/model.pt"), help="trained model"),
    out: Path = typer.Option(Path("export"), help="output folder (replaced as a whole)"),
    n_room_files: int | None = typer.Option(
        None,
        help="eval rooms written as single-room SOFA files (default: params export.n_room_files, else 4)",
    ),
    date_created: str | None = typer.Option(
        None,
        help="GLOBAL:DateCreated, UTC 'YYYY-MM-DD hh:mm:ss' (default: params export.date_created, "
        "else SOURCE_DATE_EPOCH, else now); a fixed date makes the files bit-identical across runs",
    ),
) -> None:
    """Write the eval split's RIRs, geometry, true and predicted angles as SOFA files."""
    with user_errors():
        p = load_params(params)
        n_files = _n_room_files(n_room_files, p)
        date = resolve_date(date_created or getattr(getattr(p, "export", None), "date_created", None))
        sim = p.simulate
        n_src = sim.n_sources
        label = p.labels.angle

        eval_rirs = rirs_dir / "eval"
        rirs = load_npy(eval_rirs / "rirs.npy")
        if rirs.ndim != 4 or rirs.shape[1] != n_src or rirs.shape[2] != len(sim.mic_offsets):
            raise DualmicError(
                f"{eval_rirs / 'rirs.npy'} has shape {rirs.shape}; expected (rooms, {n_src} sources, "
                f"{len(sim.mic_offsets)} mics, taps); re-run the simulate stage (dvc repro)"
            )
        n_rooms = rirs.shape[0]
        rooms = load_rooms(eval_rirs / "rooms.csv", n_rooms)
        columns = [f"src{k}_{label}_deg" for k in range(n_src)]
        missing = [c for c in columns if c not in rooms.columns]
        if missing:
            raise DualmicError(
                f"{eval_rirs / 'rooms.csv'} lacks column(s) {', '.join(missing)}; re-run the simulate stage"
            )
        true = rooms[columns].to_numpy(dtype=np.float64)

        device = resolve_device(p.train.device)
        net, meta = load_model(model, device)
        check_model(model, net, meta, p)
        eval_feats = features_dir / "eval"
        feats = load_npy(eval_feats / "features.npy")
        if feats.ndim != 4 or len(feats) != n_rooms:
            raise DualmicError(
                f"{eval_feats / 'features.npy'} has shape {feats.shape}; expected ({n_rooms} rooms, C, F, T) "
                "to match rirs.npy; re-run dvc repro"
            )
        if (eval_feats / "angles.npy").is_file():  # the features must come from these rooms
            angles = np.asarray(load_npy(eval_feats / "angles.npy"), dtype=np.float64)
            if angles.shape != true.shape or not np.allclose(angles, np.sort(true, axis=1), atol=1e-3):
                raise DualmicError(
                    f"{eval_feats / 'angles.npy'} does not match the {label} angles of "
                    f"{eval_rirs / 'rooms.csv'}; the features are from other rooms: re-run dvc repro"
                )

        pred = predictions_per_source(predict_split(net, feats, p, device), true)

        common = dict(
            rirs=rirs,
            rooms=rooms,
            mic_offsets=sim.mic_offsets,
            sample_rate=sim.sample_rate,
            true_angles=true,
            predicted_angles=pred,
            label=label,
            comment=params_comment(p),
            date_created=date,
        )
        n_files = min(n_files, n_rooms)
        with atomic_folder(out) as tmp:
            write_general_fir(tmp / "eval_rirs.sofa", **common)
            for i in range(n_files):
                write_single_room_srir(tmp / "rooms" / f"room_{i:04d}.sofa", i, **common)
        typer.echo(
            f"export: {out / 'eval_rirs.sofa'} ({n_rooms * n_src} IRs: {n_rooms} rooms x {n_src} sources, "
            f"{rirs.shape[2]} mics x {rirs.shape[3]} taps at {sim.sample_rate} Hz) and {n_files} room "
            f"file(s) in {out / 'rooms'}",
            err=True,
        )


if __name__ == "__main__":
    app()
