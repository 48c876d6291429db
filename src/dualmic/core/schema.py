"""The sections of params.yaml, one per stage, as strict pydantic models (the simulate section is
in :mod:`dualmic.core.schema_simulate`, the model and train sections in
:mod:`dualmic.core.schema_learn`, those of the conditions of real recordings in
:mod:`dualmic.core.schema_conditions`).

Each field's constraints are what a user is told when a value is wrong (see
:mod:`dualmic.core.params`, which loads and validates the whole file).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

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


CHANNEL_KINDS = ("ipd", "logmag", "onset")  # features.channels, in this order in the model's input


def channels_problem(channels) -> str | None:
    """What is wrong with a list of feature channel kinds (params or a model file), or None."""
    if "ipd" in channels and list(channels) == [c for c in CHANNEL_KINDS if c in channels]:
        return None
    return (
        f"must start with ipd, then optionally logmag and onset, each once, in the order "
        f"{', '.join(CHANNEL_KINDS)}: [ipd], [ipd, logmag], [ipd, onset] or [ipd, logmag, onset]"
    )


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def ordered(value: tuple[float, float], what: str) -> tuple[float, float]:
    lo, hi = value
    if lo > hi:
        raise ValueError(f"min {lo} > max {hi}; give [min, max] with min <= max ({what})")
    return value


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
    onset_threshold_db: Annotated[float, Strict(), Field(ge=0, le=60, allow_inf_nan=False)] = 0.0
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
        problem = channels_problem(v)
        if problem:
            raise ValueError(f"{list(v)}: {problem}")
        return v

    @field_validator("snr_db", "sir_db")
    @classmethod
    def _db_range(cls, v):
        return v if v is None else ordered(v, "dB")

    def idle_keys(self) -> tuple[str, ...]:
        """Keys that act on nothing with these channels: model files and SOFA comments leave them
        out, so the runs that do not use them keep their bytes."""
        return () if "onset" in self.channels else ("onset_threshold_db",)

    @model_validator(mode="after")
    def _hop(self):
        if self.hop > self.n_fft:
            raise ValueError(f"hop {self.hop} > n_fft {self.n_fft}; frames would leave gaps")
        if self.onset_threshold_db and "onset_threshold_db" in self.idle_keys():
            raise ValueError(
                f"onset_threshold_db {self.onset_threshold_db:g} acts on onset channels; add onset to "
                f"channels ({list(self.channels)}) or set it to 0"
            )
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
