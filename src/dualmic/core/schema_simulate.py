"""The simulate section of params.yaml (rooms, the two receivers, FRA-RIR and the splits) as
strict pydantic models; see :mod:`dualmic.core.schema` for the other sections."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, Strict, StrictBool, StrictStr, field_validator, model_validator

from dualmic.core.schema import NonNegFloat, PosFloat, PosInt, Section, Seed, Vec3, ordered


class SplitParams(Section):
    n_rooms: PosInt
    seed: Seed
    method: Literal["fra", "ism"] | None = None  # per-split override of simulate.method
    rt60_range: tuple[PosFloat, PosFloat] | None = None  # per-split override of simulate.rt60_range
    # probability per room that its receivers are the ears of simulate.array.sofa (kind free_field;
    # with kind hrtf every room's are)
    head_fraction: Annotated[float, Strict(), Field(ge=0.0, le=1.0)] = 0.0

    @field_validator("rt60_range")
    @classmethod
    def _rt60(cls, v):
        return v if v is None else ordered(v, "rt60_range")


class FraParams(Section):
    n_images: PosInt = 8192
    oversample: Annotated[int, Strict(), Field(ge=1, le=64)] = 8
    highpass_hz: NonNegFloat = 50.0
    reflection_jitter: NonNegFloat = 2.0
    early_ms: NonNegFloat | None = None  # oversampled window after the latest direct path; null = all


class ArrayParams(Section):
    kind: Literal["free_field", "hrtf"] = "free_field"  # two free-field mics | the ears of a measured head
    sofa: StrictStr | None = None  # SimpleFreeFieldHRIR file of the head (kind hrtf)
    reflection_directions: Annotated[int, Strict(), Field(ge=1, le=256)] = 32  # HRIR groups of reflections

    @model_validator(mode="after")
    def _sofa(self):
        if self.kind == "hrtf" and not self.sofa:
            raise ValueError(
                "kind is hrtf but sofa is null; give simulate.array.sofa: PATH (SimpleFreeFieldHRIR file)"
            )
        return self


class SimulateParams(Section):
    sample_rate: Annotated[int, Strict(), Field(ge=4000, le=192000)]
    mic_offsets: tuple[Vec3, ...]
    room_dim_min: tuple[PosFloat, PosFloat, PosFloat]
    room_dim_max: tuple[PosFloat, PosFloat, PosFloat]
    rt60_range: tuple[PosFloat, PosFloat]
    src_distance_range: tuple[PosFloat, PosFloat]
    min_wall_distance: NonNegFloat
    rotate_array: StrictBool
    n_sources: Annotated[int, Strict(), Field(ge=1, le=8)]
    noise_sources: Annotated[int, Strict(), Field(ge=0, le=8)] = 0  # extra positions per room for point noise
    method: Literal["fra", "ism"]
    device: Literal["auto", "cpu", "cuda"]
    speed_of_sound: PosFloat = 343.0
    rir_duration_s: PosFloat | None = None
    batch_size: PosInt = 32
    fra: FraParams = FraParams()
    array: ArrayParams = ArrayParams()
    splits: dict[str, SplitParams]

    @field_validator("rt60_range")
    @classmethod
    def _rt60(cls, v):
        return ordered(v, "seconds")

    @field_validator("src_distance_range")
    @classmethod
    def _dist(cls, v):
        return ordered(v, "metres")

    @field_validator("mic_offsets")
    @classmethod
    def _mics(cls, v):
        if len(v) != 2:
            raise ValueError(f"got {len(v)} microphones; dualmic models exactly 2")
        if math.dist(v[0], v[1]) <= 0:
            raise ValueError("the two microphones coincide; they must be apart")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v):
        if not v:
            raise ValueError("no splits; give at least train and eval")
        for name in v:
            if not name.isidentifier():
                raise ValueError(f"split name {name!r} must be a plain identifier")
        seeds: dict[int, str] = {}
        for name, split in v.items():
            if split.seed in seeds:
                raise ValueError(
                    f"{name}.seed {split.seed} equals {seeds[split.seed]}.seed; each split needs "
                    "its own seed so evaluation rooms are never training rooms"
                )
            seeds[split.seed] = name
        return v

    @model_validator(mode="after")
    def _geometry(self):
        for i, axis in enumerate("xyz"):
            if self.room_dim_min[i] > self.room_dim_max[i]:
                raise ValueError(
                    f"room_dim_min[{i}] = {self.room_dim_min[i]} > room_dim_max[{i}] = "
                    f"{self.room_dim_max[i]}; each min must be <= its max"
                )
            need = 2 * (self.min_wall_distance + self.array_radius_m)
            if self.room_dim_min[i] <= need:
                raise ValueError(
                    f"room_dim_min[{i}] ({axis}) = {self.room_dim_min[i]} m cannot hold the array: "
                    f"must exceed 2 x (min_wall_distance + array radius {self.array_radius_m:g} m "
                    f"from mic_offsets) = {need:g} m"
                )
        heads = [name for name, split in self.splits.items() if split.head_fraction > 0]
        if heads and self.array.kind == "free_field" and not self.array.sofa:
            raise ValueError(
                f"splits.{heads[0]}.head_fraction needs array.sofa: PATH (the head's "
                "SimpleFreeFieldHRIR file)"
            )
        if self.src_distance_range[0] <= self.array_radius_m:
            raise ValueError(
                f"src_distance_range min {self.src_distance_range[0]} m must exceed the array "
                f"radius {self.array_radius_m:g} m (mic_offsets)"
            )
        return self

    @property
    def array_radius_m(self) -> float:
        return max(math.hypot(*m) for m in self.mic_offsets)

    @property
    def mic_distance_m(self) -> float:
        """Distance between the first two microphones."""
        mics = np.asarray(self.mic_offsets, dtype=float)
        return float(np.linalg.norm(mics[1] - mics[0]))

    @property
    def n_taps(self) -> int:
        """RIR length of a split without its own rt60_range."""
        duration = self.rir_duration_s if self.rir_duration_s is not None else self.rt60_range[1]
        return int(math.ceil(duration * self.sample_rate))

    def rt60_for(self, split: str) -> tuple[float, float]:
        return self.split(split).rt60_range or self.rt60_range

    def n_taps_for(self, split: str) -> int:
        """RIR length of ``split``: rir_duration_s, else the split's largest RT60."""
        duration = self.rir_duration_s if self.rir_duration_s is not None else self.rt60_for(split)[1]
        return int(math.ceil(duration * self.sample_rate))

    def method_for(self, split: str) -> str:
        return self.split(split).method or self.method

    def head_fraction_for(self, split: str) -> float:
        """Probability that a room of ``split`` is heard through the head of ``array.sofa``
        instead of the free-field pair: the split's ``head_fraction`` for a free-field array,
        0 for kind hrtf (its rooms are all heads already)."""
        return self.split(split).head_fraction if self.array.kind == "free_field" else 0.0

    def split(self, name: str) -> SplitParams:
        """The params of split ``name``; an unknown name is a one-line error naming the known ones."""
        if name not in self.splits:
            from dualmic.core.errors import DualmicError

            raise DualmicError(f"unknown split {name!r}; simulate.splits has {', '.join(self.splits)}")
        return self.splits[name]
