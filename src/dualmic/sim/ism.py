"""Reference RIRs from pyroomacoustics' image-source method, on dualmic's room batches.

Used as the ``simulate.method: ism`` alternative and as the reference of the fidelity and
speed benchmarks. Absorption and maximum order come from ``pyroomacoustics.inverse_sabine``
(Eyring's formula where Sabine's cannot reach the target RT60, see :func:`ism_absorption`).
pyroomacoustics delays every RIR by half its fractional-delay filter; that offset is removed
so both simulators put the direct path at d / c.

With a measured head (``simulate.array.kind: hrtf``) both receivers sit at the head centre with
pyroomacoustics' measured directivities of the two ears (``MeasuredDirectivityFile``, which reads
the SOFA file through python-sofa), turned with the head: every image reaches each ear through
the HRIR of its direction. The HRIRs' own onset (:attr:`dualmic.sim.hrtf.Hrtf.origin`) is removed
too, so the arrival at the head centre is at d / c as in :mod:`dualmic.sim.binaural`.
"""

from __future__ import annotations

import functools

import numpy as np
import pyroomacoustics as pra

from dualmic.sim.hrtf import Hrtf
from dualmic.sim.rooms import Rooms


def ism_rirs(
    rooms: Rooms, sample_rate: int, n_taps: int, speed_of_sound: float = 343.0, hrtf: Hrtf | None = None
) -> np.ndarray:
    """Simulate rooms with the ISM: (B, S, M, n_taps) float32, direct path at d/c, gain ≈ 1/d;
    with ``hrtf``, to the two ears of that head (M = 2)."""
    offset = pra.constants.get("frac_delay_length") // 2
    ears = None
    if hrtf is not None:
        ears = _measured_ears(hrtf.path, sample_rate)
        offset += int(round(hrtf.origin))
    n_rooms, n_src = rooms.src_pos.shape[:2]
    n_mics = rooms.mic_pos.shape[1]
    out = np.zeros((n_rooms, n_src, n_mics, n_taps), dtype=np.float32)
    default_c = pra.constants.get("c")
    pra.constants.set("c", speed_of_sound)  # pyroomacoustics reads the speed of sound globally
    try:
        for b in range(n_rooms):
            out[b] = _one_room(rooms, b, sample_rate, n_taps, speed_of_sound, offset, ears)
    finally:
        pra.constants.set("c", default_c)
    return out


@functools.lru_cache(maxsize=2)
def _measured_ears(path: str, sample_rate: int):
    """pyroomacoustics' reading of a SOFA head, resampled to ``sample_rate`` (read once per file)."""
    from pyroomacoustics.directivities import MeasuredDirectivityFile  # noqa: PLC0415

    return MeasuredDirectivityFile(path, fs=sample_rate)


def ism_absorption(rt60: float, room_dim: np.ndarray, c: float) -> tuple[float, int]:
    """Energy absorption and maximum image order for a target RT60.

    pyroomacoustics' ``inverse_sabine`` where Sabine's formula is valid; in large rooms with a
    short RT60 it asks for more than full absorption, and Eyring's formula (valid there, and the
    one FRA-RIR uses) takes over, with the same maximum order rule.
    """
    try:
        return pra.inverse_sabine(rt60, room_dim, c=c)
    except ValueError:
        lx, ly, lz = room_dim
        volume, surface = lx * ly * lz, 2 * (lx * ly + ly * lz + lx * lz)
        absorption = 1 - np.exp(-24 * np.log(10) * volume / (c * surface * rt60))
        radius = min(a * b / np.hypot(a, b) for a, b in ((lx, ly), (ly, lz), (lx, lz)))
        return float(absorption), int(np.ceil(c * rt60 / radius - 1))


def _one_room(
    rooms: Rooms, b: int, sample_rate: int, n_taps: int, c: float, offset: int, ears=None
) -> np.ndarray:
    """(S, M, n_taps) ISM RIRs of room ``b``; ``ears``: a MeasuredDirectivityFile of a head."""
    n_src, n_mics = rooms.src_pos.shape[1], rooms.mic_pos.shape[1]
    out = np.zeros((n_src, n_mics, n_taps), dtype=np.float32)
    dim = rooms.room_dim[b]
    absorption, max_order = ism_absorption(float(rooms.rt60[b]), dim, c)
    room = pra.ShoeBox(
        dim,
        fs=sample_rate,
        materials=pra.Material(absorption),
        max_order=max_order,
        air_absorption=False,
    )
    for s in range(n_src):
        room.add_source(rooms.src_pos[b, s])
    if ears is None:
        room.add_microphone_array(rooms.mic_pos[b].T)
    else:  # both ears at the head centre; SOFA's front (x) is the array frame's y
        from pyroomacoustics.directivities import Rotation3D  # noqa: PLC0415

        turn = Rotation3D([float(rooms.array_rot_deg[b]) + 90.0], "z", degrees=True)
        for ear in range(2):
            room.add_microphone(
                rooms.array_center[b], directivity=ears.get_mic_directivity(ear, orientation=turn)
            )
    room.compute_rir()
    for m in range(n_mics):
        for s in range(n_src):
            h = np.asarray(room.rir[m][s][offset : offset + n_taps], dtype=np.float32)
            out[s, m, : len(h)] = h
    return out
