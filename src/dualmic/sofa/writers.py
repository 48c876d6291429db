"""The two SOFA files dualmic writes (see :mod:`dualmic.sofa.layout` for the layout and conventions).

* :func:`write_general_fir`: every (room, source) of a split, convention GeneralFIR;
* :func:`write_single_room_srir`: one room, convention SingleRoomSRIR with shoebox corners.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dualmic.core.errors import DualmicError
from dualmic.sofa.layout import (
    SofaExport,
    add_angles,
    add_variable,
    load_sofar,
    set_entry,
    set_globals,
    write_atomic,
)


def write_general_fir(
    path: str | os.PathLike,
    ex: SofaExport,
    *,
    title: str = "dualmic simulated two-microphone room impulse responses",
) -> Path:
    """Write every (room, source) of the export as one GeneralFIR 1.0 file; measurement
    m = room * S + source."""
    n_rooms, n_src = ex.n_rooms, ex.n_sources
    n_meas = n_rooms * n_src
    per_meas = np.repeat(np.arange(n_rooms), n_src)  # room of each measurement

    sofa = load_sofar().Sofa("GeneralFIR", mandatory=True)
    set_globals(sofa, title, ex)
    set_entry(sofa, "GLOBAL_RoomType", "reverberant")
    describe_receivers(sofa, ex)
    sofa.add_attribute(
        "GLOBAL_RoomDescription",
        "simulated shoebox rooms, one per group of consecutive measurements (RoomIndex); room corners "
        "at (0, 0, 0) and RoomDimensions; reverberation time in RT60",
    )
    set_entry(sofa, "Data_IR", ex.rirs.reshape(n_meas, ex.rirs.shape[2], ex.rirs.shape[3]).astype(np.float64))
    set_entry(sofa, "Data_SamplingRate", ex.sample_rate)
    set_entry(sofa, "Data_Delay", np.zeros((1, ex.rirs.shape[2])))
    set_entry(sofa, "ListenerPosition", ex.center[per_meas])
    set_entry(sofa, "ListenerView", ex.view()[per_meas])
    set_entry(sofa, "ListenerView_Type", "cartesian")
    set_entry(sofa, "ListenerView_Units", "metre")
    add_variable(
        sofa, "ListenerUp", [[0.0, 0.0, 1.0]], "IC", None, "up vector of the listener (array) frame: room z"
    )
    set_entry(sofa, "ReceiverPosition", ex.receivers())
    set_entry(sofa, "ReceiverPosition_Type", "cartesian")
    set_entry(sofa, "ReceiverPosition_Units", "metre")
    set_entry(sofa, "SourcePosition", ex.src.reshape(n_meas, 3))
    set_entry(sofa, "SourcePosition_Type", "cartesian")
    set_entry(sofa, "SourcePosition_Units", "metre")
    set_entry(sofa, "EmitterPosition", np.zeros((1, 3, 1)))

    add_variable(sofa, "RoomDimensions", ex.room_dim[per_meas], "MC", "metre",
         "room size (x, y, z); the room spans (0, 0, 0) .. RoomDimensions in room coordinates")  # fmt: skip
    add_variable(
        sofa, "RT60", ex.rt60[per_meas], "M", "second", "reverberation time (60 dB decay) of the room"
    )
    add_variable(sofa, "RoomIndex", per_meas, "M", None, "index of the room in the split (row of rooms.csv)")
    add_variable(sofa, "SourceIndex", np.tile(np.arange(n_src), n_rooms), "M", None,
         "index k of the source in its room (src{k}_* columns of rooms.csv)")  # fmt: skip
    add_angles(sofa, ex, ex.true.reshape(n_meas), None if ex.pred is None else ex.pred.reshape(n_meas))
    return write_atomic(Path(path), sofa)


def write_single_room_srir(
    path: str | os.PathLike,
    ex: SofaExport,
    room_index: int,
    *,
    title: str | None = None,
    database_name: str = "dualmic eval",
) -> Path:
    """Write room ``room_index`` of the export as one SingleRoomSRIR 1.0 file (M = its sources);
    the room is a shoebox with ``RoomCornerA`` (0, 0, 0) and ``RoomCornerB`` its size,
    ``RoomVolume`` in cubic metres."""
    if not isinstance(room_index, int | np.integer) or not 0 <= room_index < ex.n_rooms:
        raise DualmicError(f"room index {room_index!r} is outside 0..{ex.n_rooms - 1}")
    i = int(room_index)
    n_src = ex.n_sources

    sofa = load_sofar().Sofa("SingleRoomSRIR", mandatory=True)
    what = "binaural RIRs" if ex.hrtf_file else "two-microphone RIRs"
    set_globals(sofa, title or f"dualmic simulated room {i:04d}: {what}", ex)
    set_entry(sofa, "GLOBAL_RoomType", "shoebox")
    set_entry(sofa, "GLOBAL_DatabaseName", database_name)
    set_entry(sofa, "GLOBAL_RoomShortName", f"room_{i:04d}")
    set_entry(sofa, "GLOBAL_RoomDescription", f"simulated shoebox room, RT60 {ex.rt60[i]:.3f} s")
    describe_receivers(sofa, ex)
    set_entry(sofa, "GLOBAL_SourceDescription", "point sources (talkers), one per measurement")
    set_entry(sofa, "RoomCornerA", np.zeros((1, 3)))
    set_entry(sofa, "RoomCornerB", ex.room_dim[i][None, :])
    set_entry(sofa, "RoomCorners", 0.0)
    set_entry(sofa, "RoomCorners_Type", "cartesian")
    set_entry(sofa, "RoomCorners_Units", "metre")
    set_entry(sofa, "RoomVolume", float(np.prod(ex.room_dim[i])))
    set_entry(sofa, "RoomVolume_Units", "cubic metre")

    set_entry(sofa, "Data_IR", ex.rirs[i].astype(np.float64))
    set_entry(sofa, "Data_SamplingRate", ex.sample_rate)
    set_entry(sofa, "Data_Delay", np.zeros((1, ex.rirs.shape[2])))
    set_entry(sofa, "ListenerPosition", np.repeat(ex.center[i][None, :], n_src, axis=0))
    set_entry(sofa, "ListenerView", ex.view()[i][None, :])
    set_entry(sofa, "ListenerUp", np.array([[0.0, 0.0, 1.0]]))
    set_entry(sofa, "ListenerView_Type", "cartesian")
    set_entry(sofa, "ListenerView_Units", "metre")
    set_entry(sofa, "ReceiverPosition", ex.receivers()[:, :, None])
    set_entry(sofa, "ReceiverPosition_Type", "cartesian")
    set_entry(sofa, "ReceiverPosition_Units", "metre")
    set_entry(sofa, "SourcePosition", ex.src[i])
    set_entry(sofa, "SourcePosition_Type", "cartesian")
    set_entry(sofa, "SourcePosition_Units", "metre")
    set_entry(sofa, "EmitterPosition", np.zeros((1, 3, 1)))
    set_entry(sofa, "EmitterPosition_Type", "cartesian")
    set_entry(sofa, "EmitterPosition_Units", "metre")

    add_variable(sofa, "RT60", ex.rt60[i], "I", "second", "reverberation time (60 dB decay) of the room")
    add_variable(sofa, "RoomIndex", float(i), "I", None, "index of the room in the split (row of rooms.csv)")
    add_variable(sofa, "SourceIndex", np.arange(n_src), "M", None,
         "index k of the source in its room (src{k}_* columns of rooms.csv)")  # fmt: skip
    add_angles(sofa, ex, ex.true[i], None if ex.pred is None else ex.pred[i])
    return write_atomic(Path(path), sofa)


def describe_receivers(sofa, ex: SofaExport) -> None:
    """Listener and receiver descriptions; for a head, they name its HRTF file."""
    if ex.hrtf_file:
        name = Path(ex.hrtf_file).name
        listener = (
            f"the head measured in {name} ({ex.hrtf_file}, SimpleFreeFieldHRIR): binaural "
            "rooms simulated through its HRIRs; listener frame = SOFA head frame (x front, y left, z up)"
        )
        receivers = f"the two ears of {name}: receiver 0 = left ear = mic 0, receiver 1 = right ear = mic 1"
        short = f"head ({name})"
    else:
        listener = (
            "two omnidirectional mics; listener frame = array frame (x = mic axis from mic 0 to mic 1, z up)"
        )
        receivers = "two omnidirectional microphones: receiver k = mic k"
        short = "dualmic two-mic array"
    for key, text in (
        ("GLOBAL_ListenerShortName", short),
        ("GLOBAL_ListenerDescription", listener),
        ("GLOBAL_ReceiverDescription", receivers),
    ):
        if hasattr(sofa, key):
            set_entry(sofa, key, text)
        else:
            sofa.add_attribute(key, text)
