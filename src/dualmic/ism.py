"""Reference RIRs from pyroomacoustics' image-source method, on dualmic's room batches.

Used as the ``simulate.method: ism`` alternative and as the reference of the fidelity and
speed benchmarks. Absorption and maximum order come from ``pyroomacoustics.inverse_sabine``.
pyroomacoustics delays every RIR by half its fractional-delay filter; that offset is removed
so both simulators put the direct path at d / c.
"""

from __future__ import annotations

import numpy as np
import pyroomacoustics as pra

from dualmic.room import Rooms


def ism_rirs(rooms: Rooms, sample_rate: int, n_taps: int, speed_of_sound: float = 343.0) -> np.ndarray:
    """Simulate rooms with the ISM: (B, S, M, n_taps) float32, direct path at d/c, gain ≈ 1/d."""
    offset = pra.constants.get("frac_delay_length") // 2
    n_rooms, n_src = rooms.src_pos.shape[:2]
    n_mics = rooms.mic_pos.shape[1]
    out = np.zeros((n_rooms, n_src, n_mics, n_taps), dtype=np.float32)
    default_c = pra.constants.get("c")
    pra.constants.set("c", speed_of_sound)  # pyroomacoustics reads the speed of sound globally
    try:
        for b in range(n_rooms):
            out[b] = _one_room(rooms, b, sample_rate, n_taps, speed_of_sound, offset)
    finally:
        pra.constants.set("c", default_c)
    return out


def _one_room(rooms: Rooms, b: int, sample_rate: int, n_taps: int, c: float, offset: int) -> np.ndarray:
    """(S, M, n_taps) ISM RIRs of room ``b``."""
    n_src, n_mics = rooms.src_pos.shape[1], rooms.mic_pos.shape[1]
    out = np.zeros((n_src, n_mics, n_taps), dtype=np.float32)
    dim = rooms.room_dim[b]
    absorption, max_order = pra.inverse_sabine(float(rooms.rt60[b]), dim, c=c)
    room = pra.ShoeBox(
        dim,
        fs=sample_rate,
        materials=pra.Material(absorption),
        max_order=max_order,
        air_absorption=False,
    )
    for s in range(n_src):
        room.add_source(rooms.src_pos[b, s])
    room.add_microphone_array(rooms.mic_pos[b].T)
    room.compute_rir()
    for m in range(n_mics):
        for s in range(n_src):
            h = np.asarray(room.rir[m][s][offset : offset + n_taps], dtype=np.float32)
            out[s, m, : len(h)] = h
    return out
