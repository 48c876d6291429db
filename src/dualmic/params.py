"""params.yaml schema: one section per stage, validated before any work is done.

:func:`load_params` is the one way every stage reads params. Anything wrong (an unknown key,
a wrong type, a reversed range, a room too small for its wall distance) becomes a
:class:`~dualmic.errors.DualmicError` whose single line names the key and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from dualmic.errors import DualmicError

# Scalars are strict (no "3" -> 3 coercion); YAML lists still fill tuples.
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PosFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
PosInt = Annotated[int, Strict(), Field(gt=0)]
Seed = Annotated[int, Strict(), Field(ge=0, lt=2**63)]
Vec3 = tuple[Float, Float, Float]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(value: tuple[float, float], what: str) -> tuple[float, float]:
    lo, hi = value
    if lo > hi:
        raise ValueError(f"min {lo} > max {hi}; give [min, max] with min <= max ({what})")
    return value


class SplitParams(_Section):
    n_rooms: PosInt
    seed: Seed
    method: Literal["fra", "ism"] | None = None  # per-split override of simulate.method


class FraParams(_Section):
    n_images: PosInt = 8192
    oversample: Annotated[int, Strict(), Field(ge=1, le=64)] = 8
    highpass_hz: NonNegFloat = 50.0
    reflection_jitter: NonNegFloat = 2.0


class SimulateParams(_Section):
    sample_rate: Annotated[int, Strict(), Field(ge=4000, le=192000)]
    mic_offsets: tuple[Vec3, ...]
    room_dim_min: tuple[PosFloat, PosFloat, PosFloat]
    room_dim_max: tuple[PosFloat, PosFloat, PosFloat]
    rt60_range: tuple[PosFloat, PosFloat]
    src_distance_range: tuple[PosFloat, PosFloat]
    min_wall_distance: NonNegFloat
    rotate_array: StrictBool
    n_sources: Annotated[int, Strict(), Field(ge=1, le=8)]
    method: Literal["fra", "ism"]
    device: Literal["auto", "cpu", "cuda"]
    speed_of_sound: PosFloat = 343.0
    rir_duration_s: PosFloat | None = None
    batch_size: PosInt = 32
    fra: FraParams = FraParams()
    splits: dict[str, SplitParams]

    @field_validator("rt60_range")
    @classmethod
    def _rt60(cls, v):
        return _ordered(v, "seconds")

    @field_validator("src_distance_range")
    @classmethod
    def _dist(cls, v):
        return _ordered(v, "metres")

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
    def n_taps(self) -> int:
        duration = self.rir_duration_s if self.rir_duration_s is not None else self.rt60_range[1]
        return int(math.ceil(duration * self.sample_rate))

    def method_for(self, split: str) -> str:
        return self.splits[split].method or self.method


class SourcesParams(_Section):
    kind: Literal["synthetic", "folder"]
    folder: StrictStr | None = None
    seed: Seed

    @model_validator(mode="after")
    def _folder(self):
        if self.kind == "folder" and not self.folder:
            raise ValueError("kind is folder but folder is null; give sources.folder: PATH")
        return self


class LabelsParams(_Section):
    angle: Literal["lateral", "azimuth"]
    class_width_deg: PosFloat
    n_classes: PosInt

    @model_validator(mode="after")
    def _cover(self):
        span = self.class_width_deg * self.n_classes
        if abs(span - 180.0) > 1e-6:
            raise ValueError(f"n_classes x class_width_deg = {span:g} deg; they must cover exactly 180 deg")
        return self


class FeaturesParams(_Section):
    duration_s: Annotated[float, Strict(), Field(ge=0.5, le=60.0)]
    n_fft: Annotated[int, Strict(), Field(ge=16, le=8192)]
    hop: PosInt
    channels: tuple[Literal["ipd", "logmag"], ...]
    snr_db: tuple[Float, Float] | None = None
    sir_db: tuple[Float, Float] = (-5.0, 5.0)
    seed: Seed
    batch_size: PosInt = 32
    keep_mix: tuple[str, ...] = ("eval",)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v):
        if "ipd" not in v or len(set(v)) != len(v):
            raise ValueError(f"{list(v)}: must contain ipd once, optionally logmag: [ipd, logmag]")
        return v

    @field_validator("snr_db", "sir_db")
    @classmethod
    def _db_range(cls, v):
        return v if v is None else _ordered(v, "dB")

    @model_validator(mode="after")
    def _hop(self):
        if self.hop > self.n_fft:
            raise ValueError(f"hop {self.hop} > n_fft {self.n_fft}; frames would leave gaps")
        return self


class Params(_Section):
    simulate: SimulateParams
    sources: SourcesParams
    labels: LabelsParams
    features: FeaturesParams

    @model_validator(mode="after")
    def _splits_known(self):
        for name in self.features.keep_mix:
            if name not in self.simulate.splits:
                known = ", ".join(self.simulate.splits)
                raise ValueError(f"features.keep_mix names split {name!r}; known: {known}")
        return self


def _known_keys(loc: tuple) -> list[str]:
    """Field names valid at ``loc`` (for suggesting the closest one to a typo)."""
    model: type[BaseModel] = Params
    parts = list(loc[:-1])
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        ann = getattr(field, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif field is not None and parts and getattr(ann, "__origin__", None) is dict:
            parts.pop(0)  # a split name
            model = ann.__args__[1]
        else:
            return []
    return list(model.model_fields)


def _describe(err: dict) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p).encode("unicode_escape").decode() for p in loc)
    if err["type"] == "extra_forbidden":
        options = _known_keys(loc)
        close = difflib.get_close_matches(str(loc[-1]), options, n=1)
        hint = f"did you mean {'.'.join(map(str, loc[:-1] + (close[0],)))}?" if close else ""
        return f"unknown key {key}; {hint or 'allowed: ' + ', '.join(options)}".rstrip()
    if err["type"] == "missing":
        return f"missing key {key}"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key + ': ' if key else ''}{msg}{shown}"


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise :class:`DualmicError` with one line on the first problem."""
    if not isinstance(raw, dict):
        raise DualmicError(f"{source}: expected a mapping of stage sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        line = " ".join(_describe(err.errors()[0]).splitlines())
        raise DualmicError(f"{source}: {line}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml (the one entry point every stage uses)."""
    p = Path(path)
    if not p.is_file():
        raise DualmicError(f"params file {p} not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DualmicError(f"{p}:{where} is not valid YAML") from None
    return parse_params(raw, str(p))
