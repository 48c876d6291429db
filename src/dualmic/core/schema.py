"""The sections of params.yaml, one per stage, as strict pydantic models.

Each field's constraints are what a user is told when a value is wrong (see
:mod:`dualmic.core.params`, which loads and validates the whole file).
"""

from __future__ import annotations

import difflib
import math
import re
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


# model sizes by name; model.dim / model.depth / model.window_s override them
PRESETS: dict[str, dict] = {
    "seed": {"dim": 512, "depth": 8, "window_s": 3.0},  # the published size and input length
    "small": {"dim": 96, "depth": 2, "window_s": 1.0},  # trains on a 2-core CPU in minutes
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(value: tuple[float, float], what: str) -> tuple[float, float]:
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
        return v if v is None else _ordered(v, "rt60_range")


class FraParams(Section):
    n_images: PosInt = 8192
    oversample: Annotated[int, Strict(), Field(ge=1, le=64)] = 8
    highpass_hz: NonNegFloat = 50.0
    reflection_jitter: NonNegFloat = 2.0


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


class SpeechParams(Section):
    """The speech bank: talker clips of recorded words from Debian packages (see data.speech)."""

    packages: tuple[Literal["ktuberling", "klettres"], ...] = ("ktuberling", "klettres")
    n_clips: PosInt = 600
    clip_s: Annotated[float, Strict(), Field(ge=0.5, le=120.0)] = 8.0
    pause_s: tuple[NonNegFloat, NonNegFloat] = (0.05, 0.3)
    level_db: Annotated[float, Strict(), Field(ge=0, le=20)] = 3.0
    min_file_rate: Annotated[int, Strict(), Field(ge=4000, le=192000)] = 16000
    min_voice_words: PosInt = 8
    seed: Seed = 3

    @field_validator("packages")
    @classmethod
    def _packages(cls, v):
        if not v or len(set(v)) != len(v):
            raise ValueError(f"{list(v)}: name each of ktuberling, klettres at most once, at least one")
        return v

    @field_validator("pause_s")
    @classmethod
    def _pause(cls, v):
        _ordered(v, "seconds")
        if v[1] > 5.0:
            raise ValueError(f"max pause {v[1]} s > 5 s; give seconds, e.g. [0.05, 0.3]")
        return v


class LabelsParams(Section):
    angle: Literal["lateral", "azimuth"]
    class_width_deg: PosFloat
    n_classes: PosInt

    @model_validator(mode="after")
    def _cover(self):
        span = self.class_width_deg * self.n_classes
        if abs(span - 180.0) > 1e-6:
            raise ValueError(f"n_classes x class_width_deg = {span:g} deg; they must cover exactly 180 deg")
        return self


class FeaturesParams(Section):
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


Probability = Annotated[float, Strict(), Field(ge=0, le=1)]


class MicMismatchParams(Section):
    probability: Probability = 0.0  # of a mixture with imperfect microphones
    gain_db: NonNegFloat = 3.0  # per-mic gain drawn from +-gain_db
    tilt: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.3  # per-mic first-order spectral tilt, +-
    allpass: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.05  # per-mic all-pass coefficient, +-


class AugmentParams(Section):
    """Mixtures in the conditions of real recordings, for the splits listed (see data.augment)."""

    splits: tuple[str, ...] = ()
    seed: Seed = 11
    single_talker: Probability = 0.0
    point_noise: Probability = 0.0  # of a noise point source in a single-talker mixture
    point_noise_snr_db: tuple[Float, Float] = (0.0, 20.0)
    diffuse: Probability = 0.0
    diffuse_snr_db: tuple[Float, Float] = (0.0, 30.0)
    sensor: Probability = 0.0
    sensor_snr_db: tuple[Float, Float] = (30.0, 60.0)
    babble_talkers: Annotated[int, Strict(), Field(ge=2, le=16)] = 4
    mic: MicMismatchParams = MicMismatchParams()

    @field_validator("point_noise_snr_db", "diffuse_snr_db", "sensor_snr_db")
    @classmethod
    def _db(cls, v):
        return _ordered(v, "dB")


class ModelParams(Section):
    preset: Literal["small", "seed"]
    dim: PosInt | None = None
    depth: PosInt | None = None
    heads: PosInt = 8
    dim_head: PosInt = 64
    ff_mult: PosInt = 4
    conv_expansion_factor: PosInt = 2
    conv_kernel_size: PosInt = 31
    dropout: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.1
    window_s: Annotated[float, Strict(), Field(gt=0, le=60)] | None = None

    @property
    def window_seconds(self) -> float:
        return self.window_s or PRESETS[self.preset]["window_s"]

    @property
    def width(self) -> int:
        return self.dim or PRESETS[self.preset]["dim"]

    @property
    def n_layers(self) -> int:
        return self.depth or PRESETS[self.preset]["depth"]

    @field_validator("conv_kernel_size")
    @classmethod
    def _odd(cls, v):
        if v % 2 == 0:
            raise ValueError(f"{v} must be odd (same-length depthwise convolution)")
        return v


class TrainParams(Section):
    epochs: PosInt
    batch_size: PosInt
    lr: PosFloat
    weight_decay: NonNegFloat
    schedule: Literal["cosine", "step"]
    step_epochs: PosInt = 10
    warmup_epochs: Annotated[int, Strict(), Field(ge=0)] = 1
    val_fraction: Annotated[float, Strict(), Field(gt=0, lt=1)]
    seed: Seed
    device: Literal["auto", "cpu", "cuda"]


class EvaluateParams(Section):
    hop_s: PosFloat = 0.5
    rt60_bins: tuple[PosFloat, ...] = (0.1, 0.3, 0.5, 0.7)
    separation_bins_deg: tuple[NonNegFloat, ...] = (0.0, 10.0, 20.0, 40.0, 80.0, 180.0)
    srp_phat: StrictBool = True

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


# The conditions test's conditions (defined in dualmic.scoring.conditions), in the order that
# numbers their room seeds: a condition's rooms never change when others are added or left out.
CONDITION_NAMES = (
    "clean",
    "diffuse_snr20",
    "diffuse_snr10",
    "diffuse_snr5",
    "diffuse_snr0",
    "babble_snr10",
    "point_noise_snr5",
    "rt60_0.7-1.0",
    "rt60_1.0-1.5",
    "mic_mismatch",
    "elevated",
    "close_talkers",
    "single_talker",
)
# languages the conditions test has words for; an espeak-ng voice is LANG[-REGION][+VARIANT]
TALKER_LANGUAGES = ("en", "de", "fr", "es", "it")
_VOICE = re.compile(r"(?P<lang>[a-z]{2,3})(-[a-z0-9]+)*(\+[A-Za-z0-9]+)?")


class ConditionsParams(Section):
    """The conditions test: held-out rooms and espeak-ng talkers per acoustic condition."""

    n_rooms: PosInt = 40
    seed: Seed = 5150
    names: tuple[StrictStr, ...] | None = None  # None = all of CONDITION_NAMES
    voices: tuple[StrictStr, ...] = (
        "en-us",
        "en-gb+m3",
        "de+f2",
        "fr-fr+m2",
        "es+f3",
        "it+m3",
        "en-us+f4",
        "de+m4",
        "es-419+m1",
        "it+f2",
    )
    n_talkers: PosInt = 40
    babble_talkers: Annotated[int, Strict(), Field(ge=1, le=16)] = 6

    @field_validator("names")
    @classmethod
    def _names(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError(f"no conditions; give some of {', '.join(CONDITION_NAMES)}")
        for name in v:
            if name not in CONDITION_NAMES:
                close = difflib.get_close_matches(name, CONDITION_NAMES, n=1)
                hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(CONDITION_NAMES)}"
                raise ValueError(f"unknown condition {name!r}; {hint}")
        if len(set(v)) != len(v):
            raise ValueError("a condition is named twice")
        return v

    @field_validator("voices")
    @classmethod
    def _voices(cls, v):
        if not v:
            raise ValueError("no voices; give espeak-ng voices such as [en-us, de+f2]")
        for voice in v:
            m = _VOICE.fullmatch(voice)
            if not m or m["lang"] not in TALKER_LANGUAGES:
                raise ValueError(
                    f"voice {voice!r}: give an espeak-ng voice LANG[-REGION][+VARIANT] of a language "
                    f"with words here ({', '.join(TALKER_LANGUAGES)}), e.g. en-us or de+f2"
                )
        return v

    @model_validator(mode="after")
    def _enough_talkers(self):
        need = 2 + 2 * self.babble_talkers
        if self.n_talkers < need:
            raise ValueError(
                f"n_talkers {self.n_talkers} < {need}: two talkers plus two babble signals of "
                f"babble_talkers {self.babble_talkers} each, all different"
            )
        return self

    @property
    def selected(self) -> tuple[str, ...]:
        """The conditions to run: ``names``, or all of them."""
        return self.names if self.names is not None else CONDITION_NAMES

    def room_seed(self, name: str) -> int:
        """Seed of condition ``name``'s rooms: from SeedSequence([seed, its index in CONDITION_NAMES])."""
        index = CONDITION_NAMES.index(name)
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
