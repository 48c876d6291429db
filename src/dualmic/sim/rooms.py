"""Random shoebox rooms with a rotated two-mic array and sources around it.

Each room is drawn from its own random stream, ``SeedSequence([split_seed, room_index])``, so a
room's geometry depends only on its split's seed and its index: not on batch size, device or
how the split is chunked, and rooms of splits with different seeds come from different streams.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dualmic.core.errors import DualmicError
from dualmic.core.labels import azimuth360_deg, azimuth_deg, elevation_deg, lateral_deg, slot_values

GEOMETRY_COLUMNS = ("room_x", "room_y", "room_z", "rt60", "array_x", "array_y", "array_z", "array_rot_deg")
LABELS = ("lateral", "azimuth")  # stored in rooms.csv
DERIVED = {"azimuth360": azimuth360_deg}  # computed from the stored geometry

_CANDIDATES = 256  # source positions drawn per attempt; the first valid one is kept
_NOISE_STREAM = 0x501  # keeps point-noise positions apart from the room and source draws
_HEAD_STREAM = 0x4EAD  # which rooms' receivers are a head (RoomSpec.head_fraction)


@dataclass(frozen=True)
class RoomSpec:
    """What the room sampler needs (a plain mirror of the simulate params)."""

    room_dim_min: tuple[float, float, float]
    room_dim_max: tuple[float, float, float]
    rt60_range: tuple[float, float]
    src_distance_range: tuple[float, float]
    min_wall_distance: float
    mic_offsets: tuple[tuple[float, float, float], ...]
    rotate_array: bool
    n_sources: int
    noise_sources: int = 0
    head_fraction: float = 0.0  # probability per room that its receivers are the ears at ear_offsets
    ear_offsets: tuple[tuple[float, float, float], ...] | None = None  # array frame, metres (a head's ears)


@dataclass
class Rooms:
    """A batch of rooms. Shapes use B rooms, S sources, M mics; all lengths in metres.

    Attributes:
        room_dim: (B, 3) room size.
        rt60: (B,) seconds.
        array_center: (B, 3) array centre in room coordinates.
        array_rot_deg: (B,) rotation of the array about z (array x axis = mic axis).
        mic_pos: (B, M, 3) microphone positions in room coordinates.
        src_pos: (B, S, 3) source positions in room coordinates.
        noise_pos: (B, N, 3) positions of point noise sources (``simulate.noise_sources``), or None.
        head: (B,) bool, the rooms whose receivers are the ears of a head rather than the
            free-field pair (a split's ``head_fraction``; their ``mic_pos`` are the ears), or None
            when no room of the split can be.
    """

    room_dim: np.ndarray
    rt60: np.ndarray
    array_center: np.ndarray
    array_rot_deg: np.ndarray
    mic_pos: np.ndarray
    src_pos: np.ndarray
    # label -> (B, S) degrees as read from rooms.csv (exactly the stored values); else computed
    stored_angles: dict[str, np.ndarray] = field(default_factory=dict)
    where: str = ""  # the table the rooms were read from, for error messages
    noise_pos: np.ndarray | None = None
    head: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rt60)

    def src_direction_array_frame(self) -> np.ndarray:
        """(B, S, 3) source direction vectors (not normalised) in the array frame."""
        rel = self.src_pos - self.array_center[:, None, :]
        rot = np.radians(self.array_rot_deg)[:, None]
        cos, sin = np.cos(rot), np.sin(rot)
        # inverse rotation about z: room frame -> array frame
        x = cos * rel[..., 0] + sin * rel[..., 1]
        y = -sin * rel[..., 0] + cos * rel[..., 1]
        return np.stack([x, y, rel[..., 2]], axis=-1)

    def take(self, rows: np.ndarray) -> Rooms:
        """The rooms at ``rows`` (indices or a boolean mask), in that order."""
        pick = {
            f: getattr(self, f)[rows]
            for f in ("room_dim", "rt60", "array_center", "array_rot_deg", "mic_pos", "src_pos")
        }
        optional = {
            f: None if getattr(self, f) is None else getattr(self, f)[rows] for f in ("noise_pos", "head")
        }
        stored = {k: v[rows] for k, v in self.stored_angles.items()}
        return Rooms(**pick, **optional, stored_angles=stored, where=self.where)

    def slot_elevation_deg(self, slots_deg: np.ndarray, label: str) -> np.ndarray:
        """(B, S) degrees above (+) or below (−) the array's horizontal plane of the source in each
        slot of sorted ``label`` angles ``slots_deg`` (NaN for an empty slot)."""
        return slot_values(slots_deg, self.angles(label), elevation_deg(self.src_direction_array_frame()))

    @property
    def n_sources(self) -> int:
        return self.src_pos.shape[1]

    def angles(self, label: str, stored: bool = False) -> np.ndarray:
        """(B, S) degrees of ``label`` (lateral | azimuth | azimuth360) per source, in source order:
        the values read from rooms.csv when there are (``stored``: they must be), else computed;
        azimuth360 is always computed from the stored geometry."""
        if label in self.stored_angles:
            return self.stored_angles[label]
        if label in DERIVED:
            return DERIVED[label](self.src_direction_array_frame())
        if stored:
            cols = ", ".join(f"src{k}_{label}_deg" for k in range(self.n_sources))
            raise DualmicError(
                f"{self.where or 'rooms table'} lacks the {label} label column(s) ({cols}); "
                "re-run the simulate stage"
            )
        if label not in LABELS:
            raise DualmicError(f"label {label!r}: expected one of {', '.join(LABELS)}")
        angle = lateral_deg if label == "lateral" else azimuth_deg
        return angle(self.src_direction_array_frame())

    def to_frame(self) -> pd.DataFrame:
        """The rooms.csv table: geometry plus both labels of every source."""
        direction = self.src_direction_array_frame()
        cols: dict[str, np.ndarray] = {
            "room_x": self.room_dim[:, 0],
            "room_y": self.room_dim[:, 1],
            "room_z": self.room_dim[:, 2],
            "rt60": self.rt60,
            "array_x": self.array_center[:, 0],
            "array_y": self.array_center[:, 1],
            "array_z": self.array_center[:, 2],
            "array_rot_deg": self.array_rot_deg,
        }
        for k in range(self.src_pos.shape[1]):
            cols[f"src{k}_x"] = self.src_pos[:, k, 0]
            cols[f"src{k}_y"] = self.src_pos[:, k, 1]
            cols[f"src{k}_z"] = self.src_pos[:, k, 2]
            cols[f"src{k}_distance"] = np.linalg.norm(direction[:, k], axis=-1)
            cols[f"src{k}_azimuth_deg"] = azimuth_deg(direction[:, k])
            cols[f"src{k}_lateral_deg"] = lateral_deg(direction[:, k])
        for j in range(0 if self.noise_pos is None else self.noise_pos.shape[1]):
            for a, axis in enumerate("xyz"):
                cols[f"noise{j}_{axis}"] = self.noise_pos[:, j, a]
        if self.head is not None:  # 1 = the ears of the head, 0 = the free-field pair
            cols["head"] = self.head.astype(np.int64)
            cols["mic_distance"] = np.linalg.norm(self.mic_pos[:, 1] - self.mic_pos[:, 0], axis=-1)
        return pd.DataFrame(cols)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, mic_offsets, where: str = "rooms table") -> Rooms:
        """Rebuild rooms from a rooms.csv table (the inverse of :meth:`to_frame`); the stored
        angle labels are kept as stored. A table that lacks a column is a one-line DualmicError."""
        n_src = sum(1 for c in frame.columns if c.startswith("src") and c.endswith("_x"))
        columns = [*GEOMETRY_COLUMNS, *(f"src{k}_{a}" for k in range(n_src) for a in "xyz")]
        missing = [c for c in columns if c not in frame.columns]
        if missing or n_src == 0:
            what = ", ".join(missing) or "src0_x"
            raise DualmicError(f"{where} lacks column(s) {what}; re-run the simulate stage")
        values = frame[columns].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DualmicError(f"{where} holds NaN or infinite values; re-run the simulate stage")
        src = np.stack(
            [frame[[f"src{k}_x", f"src{k}_y", f"src{k}_z"]].to_numpy(dtype=np.float64) for k in range(n_src)],
            1,
        )
        center = frame[["array_x", "array_y", "array_z"]].to_numpy(dtype=np.float64)
        rot = frame["array_rot_deg"].to_numpy(dtype=np.float64)
        stored = {}
        for label in LABELS:
            cols = [f"src{k}_{label}_deg" for k in range(n_src)]
            if all(c in frame.columns for c in cols):
                stored[label] = frame[cols].to_numpy(dtype=np.float64)
        n_noise = sum(1 for c in frame.columns if c.startswith("noise") and c.endswith("_x"))
        noise = None
        if n_noise:
            noise = np.stack(
                [frame[[f"noise{j}_{a}" for a in "xyz"]].to_numpy(dtype=np.float64) for j in range(n_noise)],
                1,
            )
        mics = mic_positions(center, rot, np.asarray(mic_offsets, dtype=np.float64))
        head = None
        if "head" in frame.columns:  # a split that mixes heads in: their ears, on the interaural axis
            head = frame["head"].to_numpy(dtype=np.int64) == 1
            half = frame["mic_distance"].to_numpy(dtype=np.float64)[:, None] / 2
            ears = np.stack([-half, np.zeros_like(half), np.zeros_like(half)], -1) * [[[1.0], [-1.0]]]
            ears = center[:, None] + _rotate(ears, rot)
            mics = np.where(head[:, None, None], ears, mics)
        return cls(
            room_dim=frame[["room_x", "room_y", "room_z"]].to_numpy(dtype=np.float64),
            rt60=frame["rt60"].to_numpy(dtype=np.float64),
            array_center=center,
            array_rot_deg=rot,
            mic_pos=mics,
            src_pos=src,
            noise_pos=noise,
            head=head,
            stored_angles=stored,
            where=where,
        )

    @classmethod
    def read(cls, path: str | os.PathLike, mic_offsets, n_rooms: int | None = None) -> Rooms:
        """Read a simulate stage's rooms.csv (checked against its rirs.npy's ``n_rooms``): the one
        reader of rooms.csv that features, evaluate, export and the SOFA files use."""
        p = Path(path)
        if not p.is_file():
            raise DualmicError(f"missing input {p}: run the simulate stage (dvc repro)")
        try:
            frame = pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise DualmicError(f"corrupt input {p}: {err}") from err
        if n_rooms is not None and len(frame) != n_rooms:
            raise DualmicError(f"{p} has {len(frame)} rooms but rirs.npy has {n_rooms}; re-run simulate")
        return cls.from_frame(frame, mic_offsets, str(p))


def mic_positions(center: np.ndarray, rot_deg: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Rotate array-frame mic offsets (M, 3) about z and place them: → (B, M, 3) room frame."""
    return center[:, None, :] + _rotate(np.broadcast_to(offsets, (len(rot_deg), *offsets.shape)), rot_deg)


def _rotate(offsets: np.ndarray, rot_deg: np.ndarray) -> np.ndarray:
    """Array-frame vectors (B, M, 3) turned about z by each room's ``rot_deg`` (B,)."""
    rot = np.radians(rot_deg)[:, None]
    cos, sin = np.cos(rot), np.sin(rot)
    x = cos * offsets[..., 0] - sin * offsets[..., 1]
    y = sin * offsets[..., 0] + cos * offsets[..., 1]
    return np.stack([x, y, offsets[..., 2]], axis=-1)


def _draw_source(rng: np.random.Generator, spec: RoomSpec, dim: np.ndarray, center: np.ndarray):
    lo = np.full(3, spec.min_wall_distance)
    hi = dim - spec.min_wall_distance
    while True:
        dist = rng.uniform(*spec.src_distance_range, size=_CANDIDATES)
        unit = rng.normal(size=(_CANDIDATES, 3))
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        pos = center + dist[:, None] * unit
        ok = np.all((pos >= lo) & (pos <= hi), axis=1)
        if ok.any():
            return pos[np.argmax(ok)]


def sample_room(spec: RoomSpec, split_seed: int, index: int):
    """Draw room ``index`` of a split: (room_dim, rt60, center, rot_deg, src_pos (S, 3))."""
    rng = np.random.default_rng(np.random.SeedSequence([split_seed, index]))
    dim = rng.uniform(spec.room_dim_min, spec.room_dim_max)
    rt60 = rng.uniform(*spec.rt60_range)
    radius = max(float(np.linalg.norm(m)) for m in spec.mic_offsets)
    margin = spec.min_wall_distance + radius
    center = rng.uniform(margin, dim - margin)
    rot = rng.uniform(0.0, 360.0) if spec.rotate_array else 0.0
    src = np.stack([_draw_source(rng, spec, dim, center) for _ in range(spec.n_sources)])
    return dim, rt60, center, rot, src


def noise_positions(spec: RoomSpec, split_seed: int, index: int, dim: np.ndarray, center: np.ndarray):
    """(N, 3) point-noise positions of room ``index``, placed like its sources but from a stream
    of their own, so adding noise positions leaves the room and its talkers as they were."""
    rng = np.random.default_rng(np.random.SeedSequence([split_seed, index, _NOISE_STREAM]))
    return np.stack([_draw_source(rng, spec, dim, center) for _ in range(spec.noise_sources)])


def head_rooms(spec: RoomSpec, split_seed: int, start: int, count: int) -> np.ndarray | None:
    """(count,) bool: which of rooms ``start ..`` have the head's ears as receivers (each drawn
    with probability ``spec.head_fraction`` from a stream of its own, so the rooms' geometry and
    talkers are those of a split without heads); None when the split has no heads."""
    if spec.head_fraction <= 0:
        return None
    if spec.ear_offsets is None:
        raise ValueError("head_fraction > 0 needs the head's ear_offsets")
    draws = [
        np.random.default_rng([split_seed, i, _HEAD_STREAM]).random() for i in range(start, start + count)
    ]
    return np.asarray(draws) < spec.head_fraction


def sample_rooms(spec: RoomSpec, split_seed: int, start: int, count: int) -> Rooms:
    """Rooms ``start .. start+count-1`` of the split seeded by ``split_seed``."""
    parts = [sample_room(spec, split_seed, i) for i in range(start, start + count)]
    dim, rt60, center, rot, src = (np.array([p[j] for p in parts]) for j in range(5))
    mics = mic_positions(center, rot, np.asarray(spec.mic_offsets, dtype=np.float64))
    head = head_rooms(spec, split_seed, start, count)
    if head is not None and head.any():
        ears = mic_positions(center, rot, np.asarray(spec.ear_offsets, dtype=np.float64))
        mics = np.where(head[:, None, None], ears, mics)
    noise = None
    if spec.noise_sources:
        noise = np.stack(
            [noise_positions(spec, split_seed, start + b, dim[b], center[b]) for b in range(count)]
        )
    return Rooms(dim, rt60, center, rot, mics, src, noise_pos=noise, head=head)
