"""The two SOFA files dualmic writes (see :mod:`dualmic.sofa` for the layout and conventions).

* :func:`write_general_fir`: every (room, source) of a split, convention GeneralFIR;
* :func:`write_single_room_srir`: one room, convention SingleRoomSRIR with shoebox corners.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from dualmic.errors import DualmicError
from dualmic.sofa import (
    AUTHOR_CONTACT,
    LICENSE,
    _add,
    _angles,
    _Export,
    _globals,
    _set,
    _write,
    load_sofar,
    resolve_date,
)


def write_general_fir(
    path: str | os.PathLike,
    rirs: np.ndarray,
    rooms: pd.DataFrame,
    mic_offsets,
    sample_rate: float,
    true_angles: np.ndarray,
    predicted_angles: np.ndarray | None,
    label: str,
    comment: str = "",
    *,
    title: str = "dualmic simulated two-microphone room impulse responses",
    date_created: str | None = None,
    license: str = LICENSE,
    author_contact: str = AUTHOR_CONTACT,
) -> Path:
    """Write every (room, source) of ``rirs`` (R, S, 2, N) as one GeneralFIR 1.0 file.

    ``rooms`` is the simulate stage's rooms.csv table (one row per room), ``mic_offsets`` (2, 3)
    the array-frame mic positions, ``true_angles`` / ``predicted_angles`` (R, S) degrees in source
    order (``predicted_angles`` None: no PredictedAngle variable), ``label`` lateral | azimuth,
    ``comment`` appended to "dualmic VERSION" in ``GLOBAL:Comment``, ``date_created`` UTC
    "YYYY-MM-DD hh:mm:ss" (None: SOURCE_DATE_EPOCH or now; a fixed value makes the file
    bit-identical across runs). Measurement m = room * S + source.
    """
    ex = _Export(rirs, rooms, mic_offsets, sample_rate, true_angles, predicted_angles, label)
    date = resolve_date(date_created)
    n_rooms, n_src = ex.n_rooms, ex.n_sources
    n_meas = n_rooms * n_src
    per_meas = np.repeat(np.arange(n_rooms), n_src)  # room of each measurement

    sofa = load_sofar().Sofa("GeneralFIR", mandatory=True)
    _globals(sofa, title, comment, date, license, author_contact)
    _set(sofa, "GLOBAL_RoomType", "reverberant")
    sofa.add_attribute(
        "GLOBAL_RoomDescription",
        "simulated shoebox rooms, one per group of consecutive measurements (RoomIndex); room corners "
        "at (0, 0, 0) and RoomDimensions; reverberation time in RT60",
    )
    _set(sofa, "Data_IR", ex.rirs.reshape(n_meas, ex.rirs.shape[2], ex.rirs.shape[3]).astype(np.float64))
    _set(sofa, "Data_SamplingRate", ex.sample_rate)
    _set(sofa, "Data_Delay", np.zeros((1, ex.rirs.shape[2])))
    _set(sofa, "ListenerPosition", ex.center[per_meas])
    _set(sofa, "ListenerView", ex.view()[per_meas])
    _set(sofa, "ListenerView_Type", "cartesian")
    _set(sofa, "ListenerView_Units", "metre")
    _add(sofa, "ListenerUp", [[0.0, 0.0, 1.0]], "IC", None, "up vector of the listener (array) frame: room z")
    _set(sofa, "ReceiverPosition", ex.mics)
    _set(sofa, "ReceiverPosition_Type", "cartesian")
    _set(sofa, "ReceiverPosition_Units", "metre")
    _set(sofa, "SourcePosition", ex.src.reshape(n_meas, 3))
    _set(sofa, "SourcePosition_Type", "cartesian")
    _set(sofa, "SourcePosition_Units", "metre")
    _set(sofa, "EmitterPosition", np.zeros((1, 3, 1)))

    _add(sofa, "RoomDimensions", ex.room_dim[per_meas], "MC", "metre",
         "room size (x, y, z); the room spans (0, 0, 0) .. RoomDimensions in room coordinates")  # fmt: skip
    _add(sofa, "RT60", ex.rt60[per_meas], "M", "second", "reverberation time (60 dB decay) of the room")
    _add(sofa, "RoomIndex", per_meas, "M", None, "index of the room in the split (row of rooms.csv)")
    _add(sofa, "SourceIndex", np.tile(np.arange(n_src), n_rooms), "M", None,
         "index k of the source in its room (src{k}_* columns of rooms.csv)")  # fmt: skip
    _angles(sofa, ex, ex.true.reshape(n_meas), None if ex.pred is None else ex.pred.reshape(n_meas))
    return _write(Path(path), sofa)


def write_single_room_srir(
    path: str | os.PathLike,
    room_index: int,
    rirs: np.ndarray,
    rooms: pd.DataFrame,
    mic_offsets,
    sample_rate: float,
    true_angles: np.ndarray,
    predicted_angles: np.ndarray | None,
    label: str,
    comment: str = "",
    *,
    title: str | None = None,
    database_name: str = "dualmic eval",
    date_created: str | None = None,
    license: str = LICENSE,
    author_contact: str = AUTHOR_CONTACT,
) -> Path:
    """Write room ``room_index`` of the split as one SingleRoomSRIR 1.0 file (M = its sources).

    Arguments as :func:`write_general_fir` (whole-split arrays and table); the room is a shoebox
    with ``RoomCornerA`` (0, 0, 0) and ``RoomCornerB`` its size, ``RoomVolume`` in cubic metres.
    """
    ex = _Export(rirs, rooms, mic_offsets, sample_rate, true_angles, predicted_angles, label)
    if not isinstance(room_index, int | np.integer) or not 0 <= room_index < ex.n_rooms:
        raise DualmicError(f"room index {room_index!r} is outside 0..{ex.n_rooms - 1}")
    i = int(room_index)
    date = resolve_date(date_created)
    n_src = ex.n_sources

    sofa = load_sofar().Sofa("SingleRoomSRIR", mandatory=True)
    _globals(sofa, title or f"dualmic simulated room {i:04d}: two-microphone RIRs", comment, date,
             license, author_contact)  # fmt: skip
    _set(sofa, "GLOBAL_RoomType", "shoebox")
    _set(sofa, "GLOBAL_DatabaseName", database_name)
    _set(sofa, "GLOBAL_RoomShortName", f"room_{i:04d}")
    _set(sofa, "GLOBAL_RoomDescription", f"simulated shoebox room, RT60 {ex.rt60[i]:.3f} s")
    _set(sofa, "GLOBAL_ListenerShortName", "dualmic two-mic array")
    _set(
        sofa,
        "GLOBAL_ListenerDescription",
        "two omnidirectional mics; listener frame = array frame (x = mic axis from mic 0 to mic 1, z up)",
    )
    _set(sofa, "GLOBAL_SourceDescription", "point sources (talkers), one per measurement")
    _set(sofa, "RoomCornerA", np.zeros((1, 3)))
    _set(sofa, "RoomCornerB", ex.room_dim[i][None, :])
    _set(sofa, "RoomCorners", 0.0)
    _set(sofa, "RoomCorners_Type", "cartesian")
    _set(sofa, "RoomCorners_Units", "metre")
    _set(sofa, "RoomVolume", float(np.prod(ex.room_dim[i])))
    _set(sofa, "RoomVolume_Units", "cubic metre")

    _set(sofa, "Data_IR", ex.rirs[i].astype(np.float64))
    _set(sofa, "Data_SamplingRate", ex.sample_rate)
    _set(sofa, "Data_Delay", np.zeros((1, ex.rirs.shape[2])))
    _set(sofa, "ListenerPosition", np.repeat(ex.center[i][None, :], n_src, axis=0))
    _set(sofa, "ListenerView", ex.view()[i][None, :])
    _set(sofa, "ListenerUp", np.array([[0.0, 0.0, 1.0]]))
    _set(sofa, "ListenerView_Type", "cartesian")
    _set(sofa, "ListenerView_Units", "metre")
    _set(sofa, "ReceiverPosition", ex.mics[:, :, None])
    _set(sofa, "ReceiverPosition_Type", "cartesian")
    _set(sofa, "ReceiverPosition_Units", "metre")
    _set(sofa, "SourcePosition", ex.src[i])
    _set(sofa, "SourcePosition_Type", "cartesian")
    _set(sofa, "SourcePosition_Units", "metre")
    _set(sofa, "EmitterPosition", np.zeros((1, 3, 1)))
    _set(sofa, "EmitterPosition_Type", "cartesian")
    _set(sofa, "EmitterPosition_Units", "metre")

    _add(sofa, "RT60", ex.rt60[i], "I", "second", "reverberation time (60 dB decay) of the room")
    _add(sofa, "RoomIndex", float(i), "I", None, "index of the room in the split (row of rooms.csv)")
    _add(sofa, "SourceIndex", np.arange(n_src), "M", None,
         "index k of the source in its room (src{k}_* columns of rooms.csv)")  # fmt: skip
    _angles(sofa, ex, ex.true[i], None if ex.pred is None else ex.pred[i])
    return _write(Path(path), sofa)
