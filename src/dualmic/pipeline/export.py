"""Stage export: the eval rooms' RIRs, geometry, labels and model predictions as SOFA files.

Reads <rirs_dir>/eval/{rirs.npy,rooms.csv}, <features_dir>/eval/features.npy (and angles.npy, to
check it matches rooms.csv) and the model. Writes (see :mod:`dualmic.sofa.layout`):

* <out>/eval_rirs.sofa: GeneralFIR, every (room, source) of the eval split, measurement
  m = room * n_sources + source;
* <out>/rooms/room_0000.sofa ...: SingleRoomSRIR, one file for each of the first
  ``export.n_room_files`` eval rooms.

The model's predictions are made exactly as the evaluate stage makes them; the sorted
predictions are assigned to the sources in the order of their true angles. Everything is written
into a temporary folder beside <out> that replaces <out> only when every file is complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualmic.core.device import resolve_device
from dualmic.core.errors import DualmicError
from dualmic.core.files import atomic_folder, load_npy
from dualmic.core.params import Params, load_params
from dualmic.learn.inference import predict_split
from dualmic.learn.model_file import check_model, load_model
from dualmic.sim.rooms import Rooms
from dualmic.sofa.layout import SofaExport, params_comment
from dualmic.sofa.predictions import predictions_per_source, talking_sources
from dualmic.sofa.writers import write_general_fir, write_single_room_srir


def n_room_files(option: int | None, p: Params) -> int:
    """--n-room-files, else export.n_room_files; a count >= 0."""
    value, where = (
        (option, "--n-room-files") if option is not None else (p.export.n_room_files, "export.n_room_files")
    )
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DualmicError(f"{where} {value!r} must be a count >= 0")
    return value


def run(
    params: Path = Path("params.yaml"),
    rirs_dir: Path = Path("data/rirs"),
    features_dir: Path = Path("data/features"),
    model: Path = Path("models/model.pt"),
    out: Path = Path("export"),
    room_files: int | None = None,
    date_created: str | None = None,
) -> tuple[int, int]:
    """Write the export; (rooms in eval_rirs.sofa, single-room files written)."""
    p = load_params(params)
    n_files = n_room_files(room_files, p)
    sim, label, n_src = p.simulate, p.labels.angle, p.simulate.n_sources

    eval_rirs = rirs_dir / "eval"
    rirs = load_npy(eval_rirs / "rirs.npy")
    if rirs.ndim != 4 or rirs.shape[1] != n_src or rirs.shape[2] != len(sim.mic_offsets):
        raise DualmicError(
            f"{eval_rirs / 'rirs.npy'} has shape {rirs.shape}; expected (rooms, {n_src} sources, "
            f"{len(sim.mic_offsets)} mics, taps); re-run the simulate stage (dvc repro)"
        )
    n_rooms = rirs.shape[0]
    rooms = Rooms.read(eval_rirs / "rooms.csv", sim.mic_offsets, n_rooms)
    true = rooms.angles(label, stored=True)

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
    active = None
    if (eval_feats / "angles.npy").is_file():  # the features must come from these rooms
        angles = np.asarray(load_npy(eval_feats / "angles.npy"), dtype=np.float64)
        active = talking_sources(angles, true)
        if active is None:
            raise DualmicError(
                f"{eval_feats / 'angles.npy'} does not match the {label} angles of "
                f"{eval_rirs / 'rooms.csv'}; the features are from other rooms: re-run dvc repro"
            )

    pred = predictions_per_source(predict_split(net, feats, p, device), true, active)
    export = SofaExport(
        rirs,
        rooms,
        sim.mic_offsets,
        sim.sample_rate,
        true,
        pred,
        label,
        comment=params_comment(p),
        date_created=date_created or p.export.date_created,
        hrtf_file=sim.array.sofa if sim.array.kind == "hrtf" else None,
    )
    n_files = min(n_files, n_rooms)
    with atomic_folder(out) as tmp:
        write_general_fir(tmp / "eval_rirs.sofa", export)
        for i in range(n_files):
            write_single_room_srir(tmp / "rooms" / f"room_{i:04d}.sofa", export, i)
    return n_rooms, n_files
