"""The sections of params.yaml, one per stage, as strict pydantic models (the model and train
sections are in :mod:`dualmic.core.schema_learn`, those of the conditions of real recordings in
:mod:`dualmic.core.schema_conditions`).

Each field's constraints are what a user is told when a value is wrong (see
:mod:`dualmic.core.params`, which loads and validates the whole file).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)

# Scalars are strict (no "3" -> 3 coercion); YAML lists still fill tuples.
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PosFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
PosInt = Annotated[int, Strict(), Field(gt=0)]
Seed = Annotated[int, Strict(), Field(ge=0, lt=2**63)]
Vec3 = tuple[Float, Float, Float]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def ordered(value: tuple[float, float], what: str) -> tuple[float, float]:
    lo, hi = value
    if lo > hi:
        raise ValueError(f"min {lo} > max {hi}; give [min, max] with min <= max ({what})")
    return value


class SplitParams(Section):
    n_rooms: PosInt
    seed: Seed
    method: Literal["fra", "ism"] | None = None  # per-split override of simulate.method
    rt60_range: tuple[PosFloat, PosFloat] | None = None  # per-split override of simulate.rt60_range

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

    def split(self, name: str) -> SplitParams:
        """The params of split ``name``; an unknown name is a one-line error naming the known ones."""
        if name not in self.splits:
            from dualmic.core.errors import DualmicError

            raise DualmicError(f"unknown split {name!r}; simulate.splits has {', '.join(self.splits)}")
        return self.splits[name]


class SourcesParams(Section):
    kind: Literal["synthetic", "folder"]
    folder: StrictStr | None = None
    seed: Seed

    @model_validator(mode="after")
    def _folder(self):
        if self.kind == "folder" and not self.folder:
            raise ValueError("kind is folder but folder is null; give sources.folder: PATH")
        return self


class LabelsParams(Section):
    angle: Literal["lateral", "azimuth", "azimuth360"]
    class_width_deg: PosFloat
    n_classes: PosInt
    counting: StrictBool = False  # an extra "no source" class per slot: the model counts talkers
    sigma_deg: Annotated[float, Strict(), Field(ge=0, le=45)] = 0.0  # Gaussian target width; 0 = one-hot
    decode: Literal["argmax", "peak"] = "argmax"  # class centre | peak of a parabola through 3 classes
    # training mixtures: two talkers closer than this are labelled one source; 0 = off
    min_separation_deg: Annotated[float, Strict(), Field(ge=0, le=45)] = 0.0

    @model_validator(mode="after")
    def _cover(self):
        span, need = self.class_width_deg * self.n_classes, 360.0 if self.angle == "azimuth360" else 180.0
        if abs(span - need) > 1e-6:
            raise ValueError(
                f"n_classes x class_width_deg = {span:g} deg; they must cover exactly {need:g} deg "
                f"(labels.angle {self.angle})"
            )
        return self


class FeaturesParams(Section):
    duration_s: Annotated[float, Strict(), Field(ge=0.5, le=60.0)]
    n_fft: Annotated[int, Strict(), Field(ge=16, le=8192)]
    hop: PosInt
    channels: tuple[Literal["ipd", "logmag", "onset"], ...]
    snr_db: tuple[Float, Float] | None = None
    sir_db: tuple[Float, Float] = (-5.0, 5.0)
    seed: Seed
    batch_size: PosInt = 32
    keep_mix: tuple[str, ...] = ("eval",)
    active_sources: tuple[Annotated[float, Field(ge=0, le=1)], ...] | None = None  # P(0, 1, .. talkers)

    @field_validator("active_sources")
    @classmethod
    def _distribution(cls, v):
        if v is not None and (len(v) < 2 or abs(sum(v) - 1.0) > 1e-6):
            raise ValueError(
                f"{list(v)}: give the probability of 0, 1, .. simulate.n_sources active talkers, summing to 1"
            )
        return v

    @field_validator("channels")
    @classmethod
    def _channels(cls, v):
        order = ("ipd", "logmag", "onset")
        if "ipd" not in v or len(set(v)) != len(v) or list(v) != [c for c in order if c in v]:
            raise ValueError(
                f"{list(v)}: must start with ipd, then optionally logmag and onset, each once, in that "
                "order: [ipd], [ipd, logmag], [ipd, onset] or [ipd, logmag, onset]"
            )
        return v

    @field_validator("snr_db", "sir_db")
    @classmethod
    def _db_range(cls, v):
        return v if v is None else ordered(v, "dB")

    @model_validator(mode="after")
    def _hop(self):
        if self.hop > self.n_fft:
            raise ValueError(f"hop {self.hop} > n_fft {self.n_fft}; frames would leave gaps")
        return self


class EvaluateParams(Section):
    hop_s: PosFloat = 0.5
    rt60_bins: tuple[PosFloat, ...] = (0.1, 0.3, 0.5, 0.7)
    separation_bins_deg: tuple[NonNegFloat, ...] = (0.0, 10.0, 20.0, 40.0, 80.0, 180.0)
    srp_phat: StrictBool = True
    mirror: StrictBool = False
    turns: StrictBool = True
    presence: Annotated[float, Strict(), Field(gt=0, lt=1)] = 0.5  # a slot counts a talker above it

    @field_validator("rt60_bins", "separation_bins_deg")
    @classmethod
    def _increasing(cls, v):
        if len(v) < 2 or any(b >= a for a, b in zip(v[1:], v[:-1], strict=False)):
            raise ValueError(f"{list(v)}: give at least two increasing bin edges")
        return v


class ExportParams(Section):
    n_room_files: Annotated[int, Strict(), Field(ge=0)] = 4
    date_created: StrictStr | None = None

    @field_validator("date_created")
    @classmethod
    def _date(cls, v):
        if v is not None:
            try:
                datetime.strptime(v, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise ValueError(f"{v!r} is not a 'YYYY-MM-DD hh:mm:ss' UTC time") from None
        return v
