"""The conditions test: the model, SRP-PHAT and the constant guess per acoustic condition.

Each condition (:data:`CONDITIONS`, run as ``conditions.names`` lists them) is a set of
``conditions.n_rooms`` rooms drawn like the splits' (``simulate.*``) but from the condition's
own seed (:meth:`~dualmic.core.schema_conditions.ConditionsParams.room_seed`; params validation refuses
one that a split uses), with talkers the model never heard (espeak-ng voices,
:mod:`dualmic.data.espeak`), mixed as the features stage mixes (``features.duration_s`` of
steady-state reverberant speech, talker levels from ``features.sir_db``, unit RMS) and then
changed as the condition says. SNRs are the talkers' power over the noise's, both at the mics.

Everything a room holds (geometry, RIRs, talkers, levels, noise) comes from streams of (room
seed, room index), so a condition's rooms do not depend on the batch size or on which other
conditions run, and the same params give the same numbers.

This module says what each condition is and draws its rooms and RIRs; the mixtures and scores
are in :mod:`dualmic.scoring.condition_mixtures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import angle_difference, label_period
from dualmic.core.params import Params
from dualmic.core.schema_conditions import CONDITION_NAMES
from dualmic.sim.batches import fra_config, head, heard_by_head, mixed_head, room_rirs, room_spec
from dualmic.sim.fra import image_draws
from dualmic.sim.ism import ism_rirs
from dualmic.sim.rooms import Rooms, RoomSpec, sample_rooms

N_SLOTS = 2  # the model's label slots: two talkers (one talker: the other slot is empty)
MIC_GAIN_DB = 3.0  # mic_mismatch: per-mic gain drawn from +-3 dB
MIC_TILT = 0.3  # mic_mismatch: per-mic first-order spectral tilt drawn from +-0.3
MIC_ALLPASS = 0.05  # mic_mismatch: per-mic first-order all-pass coefficient drawn from +-0.05
SENSOR_SNR_DB = 30.0  # mic_mismatch: white sensor noise, independent per mic
NARROWBAND_RATE = 8000  # narrowband: Hz, the sample rate the talkers were recorded at
TURN_OVERLAP_S = 0.2  # turn_taking: seconds both talkers speak, around the middle of the mixture
MIN_TALKER_SPACING_M = 0.3  # close_talkers: two people stand at least this far apart
METHODS = ("model", "srp_phat", "constant")

_CANDIDATES = 256  # source positions drawn per attempt
_ATTEMPTS = 200  # attempts before a room is declared unable to hold a constrained source
_PLACE_STREAM = 0xC0D1  # source positions of constrained conditions


@dataclass(frozen=True)
class Condition:
    """One acoustic condition of the conditions test."""

    name: str
    description: str
    talkers: int = 2  # active talkers; with 1, the second label slot holds no source
    noise: str | None = None  # diffuse (pink) | babble (diffuse talkers) | point (pink, own RIR) | sensor
    snr_db: float | None = None  # talkers' power over the noise's, at the mics
    rt60_range: tuple[float, float] | None = None  # seconds; None = simulate.rt60_range
    mic_mismatch: bool = False  # gain, tilt and all-pass errors per mic
    min_elevation_deg: float | None = None  # every talker at least this far above or below the array
    max_separation_deg: float | None = None  # the two talkers closer than this in the label angle
    turns: bool = False  # the talkers take turns: the first speaks the first half, the second the rest
    source_rate: int | None = None  # Hz: the talkers were recorded at this rate (no band above half of it)
    head: bool = False  # heard by the ears of simulate.array.sofa's head, whatever simulate.array.kind

    @property
    def n_sources(self) -> int:
        """Sources simulated per room: the talkers, plus the noise source of ``point``."""
        return self.talkers + (self.noise == "point")


def _diffuse(snr: float) -> Condition:
    return Condition(
        f"diffuse_snr{snr:g}",
        f"spherically diffuse pink noise at {snr:g} dB SNR",
        noise="diffuse",
        snr_db=snr,
    )


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition("clean", "two talkers, the rooms of simulate.*, nothing added"),
        *(_diffuse(snr) for snr in (20.0, 10.0, 5.0, 0.0)),
        Condition(
            "babble_snr10",
            "diffuse babble (two sums of babble_talkers other talkers) at 10 dB SNR",
            noise="babble",
            snr_db=10.0,
        ),
        Condition(
            "point_noise_snr5",
            "a third source in the room playing pink noise, through its own RIR, at 5 dB SNR",
            noise="point",
            snr_db=5.0,
        ),
        Condition("rt60_0.7-1.0", "RT60 0.7-1.0 s (longer than training's)", rt60_range=(0.7, 1.0)),
        Condition("rt60_1.0-1.5", "RT60 1.0-1.5 s", rt60_range=(1.0, 1.5)),
        Condition(
            "mic_mismatch",
            f"per-mic gain +-{MIC_GAIN_DB:g} dB, tilt +-{MIC_TILT:g}, all-pass +-{MIC_ALLPASS:g}, "
            f"white sensor noise at {SENSOR_SNR_DB:g} dB SNR",
            noise="sensor",
            snr_db=SENSOR_SNR_DB,
            mic_mismatch=True,
        ),
        Condition("elevated", "both talkers 30 deg or more above or below the array", min_elevation_deg=30.0),
        Condition("close_talkers", "the two talkers less than 15 deg apart", max_separation_deg=15.0),
        Condition("single_talker", "one talker (the model must find one source)", talkers=1),
        Condition(
            "turn_taking",
            f"two talkers taking turns: the first speaks the first half, the second the rest "
            f"({TURN_OVERLAP_S:g} s of overlap)",
            turns=True,
        ),
        Condition(
            "narrowband",
            f"talkers recorded at {NARROWBAND_RATE} Hz (nothing above {NARROWBAND_RATE // 2} Hz), "
            "as from a telephone or an old file",
            source_rate=NARROWBAND_RATE,
        ),
        Condition(
            "binaural",
            "two talkers heard by the ears of the measured head of simulate.array.sofa (MIT KEMAR) "
            "instead of two free-field mics: a hearing aid's or a dummy head's recording",
            head=True,
        ),
    )
}
if tuple(CONDITIONS) != CONDITION_NAMES:  # the schema numbers the room seeds in this order
    raise RuntimeError("CONDITIONS and dualmic.core.schema_conditions.CONDITION_NAMES disagree")


# --------------------------------------------------------------------------- rooms and RIRs


def condition_spec(cond: Condition, p: Params) -> RoomSpec:
    """The room sampler's spec for ``cond``: simulate.*, with the condition's RT60 and sources."""
    sim = p.simulate
    spec = replace(room_spec(sim), rt60_range=cond.rt60_range or sim.rt60_range, n_sources=cond.n_sources)
    return heard_by_head(spec, sim) if cond.head else spec


def condition_taps(cond: Condition, p: Params) -> int:
    """RIR length of ``cond``: simulate.n_taps, or the condition's largest RT60 when longer."""
    if cond.rt60_range is None:
        return p.simulate.n_taps
    return max(p.simulate.n_taps, math.ceil(cond.rt60_range[1] * p.simulate.sample_rate))


def _candidates(rng: np.random.Generator, spec: RoomSpec, dim, center, min_elevation_deg):
    """Random source positions around the array centre (uniform direction, or uniform on the two
    caps |elevation| >= min_elevation_deg) and whether each keeps its distance from the walls."""
    dist = rng.uniform(*spec.src_distance_range, size=_CANDIDATES)
    if min_elevation_deg is None:
        unit = rng.normal(size=(_CANDIDATES, 3))
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    else:  # sin(elevation) uniform on the caps is direction uniform on them
        sin_el = rng.uniform(math.sin(math.radians(min_elevation_deg)), 1.0, _CANDIDATES)
        sin_el *= rng.choice([-1.0, 1.0], _CANDIDATES)
        az = rng.uniform(0.0, 2 * math.pi, _CANDIDATES)
        cos_el = np.sqrt(1 - sin_el**2)
        unit = np.stack([cos_el * np.cos(az), cos_el * np.sin(az), sin_el], axis=1)
    pos = center + dist[:, None] * unit
    ok = np.all((pos >= spec.min_wall_distance) & (pos <= dim - spec.min_wall_distance), axis=1)
    return pos, ok


def _label_angles(rooms: Rooms, b: int, positions: np.ndarray, label: str) -> np.ndarray:
    """The label angle of candidate ``positions`` (K, 3) as sources of room ``b``: (K,) degrees."""
    one = replace(
        rooms,
        room_dim=rooms.room_dim[b : b + 1],
        rt60=rooms.rt60[b : b + 1],
        array_center=rooms.array_center[b : b + 1],
        array_rot_deg=rooms.array_rot_deg[b : b + 1],
        mic_pos=rooms.mic_pos[b : b + 1],
        src_pos=positions[None],
        stored_angles={},
    )
    return one.angles(label)[0]


def _place_sources(cond: Condition, spec: RoomSpec, rooms: Rooms, b: int, index: int, seed: int, label: str):
    """Source positions (S, 3) of room ``b`` that meet ``cond``'s elevation or separation."""
    rng = np.random.default_rng([seed, index, _PLACE_STREAM])
    dim, center = rooms.room_dim[b], rooms.array_center[b]
    placed: list[np.ndarray] = []
    for k in range(spec.n_sources):
        elevation = cond.min_elevation_deg if k < cond.talkers else None
        for _ in range(_ATTEMPTS):
            pos, ok = _candidates(rng, spec, dim, center, elevation)
            if k == 1 and cond.max_separation_deg is not None:
                ang = _label_angles(rooms, b, np.concatenate([placed[0][None], pos]), label)
                ok &= np.abs(angle_difference(ang[1:], ang[0], label_period(label))) < cond.max_separation_deg
                ok &= np.linalg.norm(pos - placed[0], axis=1) >= MIN_TALKER_SPACING_M
            if ok.any():
                placed.append(pos[np.argmax(ok)])
                break
        else:
            raise DualmicError(
                f"condition {cond.name}: no source position meets it in room {index} (size "
                f"{np.round(dim, 2).tolist()} m) within simulate.src_distance_range "
                f"{list(spec.src_distance_range)} and min_wall_distance {spec.min_wall_distance}"
            )
    return np.stack(placed)


def condition_rooms(cond: Condition, p: Params, start: int, count: int) -> Rooms:
    """Rooms ``start .. start+count-1`` of ``cond``."""
    seed = p.conditions.room_seed(cond.name)
    spec = condition_spec(cond, p)
    rooms = sample_rooms(spec, seed, start, count)
    if cond.min_elevation_deg is None and cond.max_separation_deg is None:
        return rooms
    src = np.stack(
        [_place_sources(cond, spec, rooms, b, start + b, seed, p.labels.angle) for b in range(count)]
    )
    return replace(rooms, src_pos=src)


def condition_rirs(
    cond: Condition, p: Params, rooms: Rooms, start: int, device: str | torch.device = "cpu"
) -> np.ndarray:
    """RIRs of rooms ``start ..`` of ``cond`` by simulate.method: (B, S, 2, taps) float32."""
    sim = p.simulate
    taps = condition_taps(cond, p)
    hrtf = head(sim)
    if cond.head and hrtf is None:
        hrtf = mixed_head(sim)
    rooms = replace(rooms, head=None)  # one kind of receivers for every room: hrtf's, or free field
    if sim.method == "ism":
        return ism_rirs(rooms, sim.sample_rate, taps, sim.speed_of_sound, hrtf)
    cfg = replace(fra_config(sim), n_taps=taps)
    seed = p.conditions.room_seed(cond.name)
    draws = image_draws(seed, start, len(rooms), rooms.n_sources, cfg.n_images)
    return room_rirs(rooms, draws, cfg, sim, hrtf, device)
