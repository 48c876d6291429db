"""The params of the conditions of real recordings: the recorded-voice bank (``speech``), the
training mixtures that imitate real recordings (``augment``), their on-the-fly mixing
(``online``) and the conditions test
(``conditions``). The stage sections are in :mod:`dualmic.core.schema`."""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, Strict, StrictStr, field_validator, model_validator

from dualmic.core.schema import Float, NonNegFloat, PosFloat, PosInt, Section, Seed, ordered


def distinct_names(value: tuple[str, ...], choices: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty list naming each of ``choices`` at most once (the allowed names are checked by
    the field's Literal type)."""
    if not value or len(set(value)) != len(value):
        raise ValueError(f"{list(value)}: name each of {', '.join(choices)} at most once, at least one")
    return value


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
        return distinct_names(v, ("ktuberling", "klettres"))

    @field_validator("pause_s")
    @classmethod
    def _pause(cls, v):
        ordered(v, "seconds")
        if v[1] > 5.0:
            raise ValueError(f"max pause {v[1]} s > 5 s; give seconds, e.g. [0.05, 0.3]")
        return v


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
    point_noise: Probability = 0.0  # of a noise point source at a silent talker's position
    point_noise_snr_db: tuple[Float, Float] = (0.0, 20.0)
    noise_source: Probability = 0.0  # of a point noise at a room's noise position (online mixing)
    talker_overlap: Probability = 0.0  # per talker, of a second excerpt from its position (online)
    talker_gaps: Probability = 0.0  # per talker, of silences cut into its excerpt (online)
    band_limit: Probability = 0.0  # per talker, of its excerpt low-passed, as a narrowband recording (online)
    band_limit_hz: tuple[PosFloat, PosFloat] = (3400.0, 7500.0)  # cut-off drawn uniformly (online)
    diffuse: Probability = 0.0
    diffuse_snr_db: tuple[Float, Float] = (0.0, 30.0)
    sensor: Probability = 0.0
    sensor_snr_db: tuple[Float, Float] = (30.0, 60.0)
    babble_talkers: Annotated[int, Strict(), Field(ge=2, le=16)] = 4
    mic: MicMismatchParams = MicMismatchParams()

    @field_validator("point_noise_snr_db", "diffuse_snr_db", "sensor_snr_db")
    @classmethod
    def _db(cls, v):
        return ordered(v, "dB")

    @field_validator("band_limit_hz")
    @classmethod
    def _hz(cls, v):
        return ordered(v, "Hz")


# languages the conditions test has words for; an espeak-ng voice is LANG[-REGION][+VARIANT]
TALKER_LANGUAGES = ("en", "de", "fr", "es", "it")
_VOICE = re.compile(r"(?P<lang>[a-z]{2,3})(-[a-z0-9]+)*(\+[A-Za-z0-9]+)?")
# online.talkers espeak: voices of languages the conditions test does not speak, variants mixed
ESPEAK_TRAINING_VOICES = (
    "nl", "pt+f1", "pl+m2", "sv+f3", "da+m4", "cs+f4", "ro+m5", "hu+f5", "fi+m6", "ca+m7",
    "hr+f1", "sk+m1", "nb+f2", "sl+m3", "id+f3", "af+m2", "tr+f4", "pt-br+m4", "lv+f5", "et+m5",
)  # fmt: skip


def espeak_voices(voices, examples: tuple[str, str], languages: tuple[str, ...] | None = None):
    """Check a list of espeak-ng voice names LANG[-REGION][+VARIANT], of ``languages`` if given."""
    if not voices:
        raise ValueError(f"no voices; give espeak-ng voices such as [{', '.join(examples)}]")
    for voice in voices:
        m = _VOICE.fullmatch(voice)
        if not m or (languages is not None and m["lang"] not in languages):
            which = f" of a language with words here ({', '.join(languages)})" if languages else ""
            raise ValueError(
                f"voice {voice!r}: give an espeak-ng voice LANG[-REGION][+VARIANT]{which}, "
                f"e.g. {' or '.join(examples)}"
            )
    return voices


def voice_language(voice: str) -> str:
    """The language of an espeak-ng voice name: ``es-419+m1`` → ``es``."""
    return voice.split("+", 1)[0].split("-", 1)[0]


class OnlineParams(Section):
    """On-the-fly training mixtures (``train.mixing: online``, see data.online): the pool of dry
    talkers and noise they are cut from, and the seed of every per-epoch draw."""

    seed: Seed = 13
    talkers: tuple[Literal["synthetic", "speech", "espeak"], ...] = ("synthetic", "speech")
    synthetic_talkers: Annotated[int, Strict(), Field(ge=0, le=10000)] = 300
    espeak_talkers: Annotated[int, Strict(), Field(ge=0, le=10000)] = 200
    espeak_voices: tuple[StrictStr, ...] = ESPEAK_TRAINING_VOICES
    clip_s: Annotated[float, Strict(), Field(ge=1.0, le=60.0)] = 8.0
    noise_s: Annotated[float, Strict(), Field(ge=1.0, le=600.0)] = 30.0

    @field_validator("talkers")
    @classmethod
    def _talkers(cls, v):
        return distinct_names(v, ("synthetic", "speech", "espeak"))

    @field_validator("espeak_voices")
    @classmethod
    def _espeak_voices(cls, v):
        return espeak_voices(v, ("nl", "pt+f1"))


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
    "turn_taking",
    "narrowband",
    "binaural",
)


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
        return espeak_voices(v, ("en-us", "de+f2"), TALKER_LANGUAGES)

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
