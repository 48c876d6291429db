"""params.yaml: loading and validation, before any work is done.

:func:`load_params` is the one way every stage reads params. Anything wrong (an unknown key,
a wrong type, a reversed range, a room too small for its wall distance) becomes a
:class:`~dualmic.errors.DualmicError` whose single line names the key and what is allowed.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from dualmic.core.errors import DualmicError
from dualmic.core.schema import (
    EvaluateParams,
    ExportParams,
    FeaturesParams,
    LabelsParams,
    Section,
    SourcesParams,
)
from dualmic.core.schema_conditions import (
    AugmentParams,
    ConditionsParams,
    OnlineParams,
    SpeechParams,
    voice_language,
)
from dualmic.core.schema_learn import LOGMAG_READERS, ModelParams, TrainParams
from dualmic.core.schema_simulate import FraParams, SimulateParams, SplitParams

__all__ = [
    "AugmentParams",
    "ConditionsParams",
    "EvaluateParams",
    "ExportParams",
    "FeaturesParams",
    "FraParams",
    "LabelsParams",
    "ModelParams",
    "OnlineParams",
    "Params",
    "SimulateParams",
    "SourcesParams",
    "SpeechParams",
    "SplitParams",
    "TrainParams",
    "load_params",
    "parse_params",
]


_MIN_PATCH_INPUT = 64  # frames (and bins) that three kernel-4 / stride-4 convolutions need


class Params(Section):
    simulate: SimulateParams
    sources: SourcesParams
    speech: SpeechParams = SpeechParams()
    labels: LabelsParams
    features: FeaturesParams
    augment: AugmentParams = AugmentParams()
    online: OnlineParams = OnlineParams()
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    export: ExportParams = ExportParams()
    conditions: ConditionsParams = ConditionsParams()

    def frames(self, seconds: float) -> int:
        """STFT hops in ``seconds`` (at least 1)."""
        return max(1, round(seconds * self.simulate.sample_rate / self.features.hop))

    @property
    def window_frames(self) -> int:
        """STFT frames of one model window."""
        return 1 + int(round(self.model.window_seconds * self.simulate.sample_rate)) // self.features.hop

    @property
    def hop_frames(self) -> int:
        """STFT frames between pooled model windows (evaluate.hop_s)."""
        return self.frames(self.evaluate.hop_s)

    @property
    def n_samples(self) -> int:
        """Samples of one mixture (features.duration_s)."""
        return int(round(self.features.duration_s * self.simulate.sample_rate))

    @model_validator(mode="after")
    def _model_fits_features(self):
        window_s = self.model.window_seconds
        frames = self.window_frames
        # the 4x4 grid's three patch convolutions all stride in time; bands and frames only two
        min_frames = _MIN_PATCH_INPUT if self.model.token_grid == "patches" else _MIN_PATCH_INPUT // 4
        if frames < min_frames:
            need = (min_frames - 1) * self.features.hop / self.simulate.sample_rate
            raise ValueError(
                f"model.window_s {window_s:g} s gives {frames} STFT frames; the patch "
                f"convolutions of model.frontend {self.model.token_grid} need >= {min_frames} "
                f"(window_s >= {need:g} s)"
            )
        if self.features.n_fft // 2 < _MIN_PATCH_INPUT:
            raise ValueError(
                f"features.n_fft {self.features.n_fft} gives < {_MIN_PATCH_INPUT} bins; use >= 128"
            )
        return self

    @model_validator(mode="after")
    def _ild_token_reads_logmag(self):
        for key in LOGMAG_READERS:
            if getattr(self.model, key) and "logmag" not in self.features.channels:
                raise ValueError(
                    f"model.{key} reads the log-magnitude channels, but features.channels is "
                    f"{list(self.features.channels)}; add logmag or set model.{key}: false"
                )
        if self.model.ild_segments > 1 and not self.model.ild_token:
            raise ValueError(
                f"model.ild_segments {self.model.ild_segments} splits the level-difference token, "
                "but model.ild_token is false; set model.ild_token: true or model.ild_segments: 1"
            )
        return self

    @model_validator(mode="after")
    def _active_sources(self):
        dist, n_src = self.features.active_sources, self.simulate.n_sources
        if dist is None:
            return self
        if len(dist) != n_src + 1:
            raise ValueError(
                f"features.active_sources has {len(dist)} probabilities; give {n_src + 1}, of 0 .. "
                f"{n_src} active talkers (simulate.n_sources {n_src})"
            )
        if dist[0] > 0 and not self.labels.counting:
            raise ValueError(
                f"features.active_sources gives rooms without a talker probability {dist[0]:g}; "
                "their labels need labels.counting: true"
            )
        return self

    @model_validator(mode="after")
    def _band_limit_below_nyquist(self):
        nyquist = self.simulate.sample_rate / 2
        if self.augment.band_limit_hz[1] >= nyquist:
            raise ValueError(
                f"augment.band_limit_hz max {self.augment.band_limit_hz[1]:g} Hz is not below the "
                f"Nyquist frequency {nyquist:g} Hz of simulate.sample_rate; give cut-offs below it"
            )
        return self

    @model_validator(mode="after")
    def _splits_known(self):
        for name in self.augment.splits:
            if name not in self.simulate.splits:
                known = ", ".join(self.simulate.splits)
                raise ValueError(f"augment.splits names split {name!r}; known: {known}")
        for name in self.features.keep_mix:
            if name not in self.simulate.splits:
                known = ", ".join(self.simulate.splits)
                raise ValueError(f"features.keep_mix names split {name!r}; known: {known}")
        return self

    @model_validator(mode="after")
    def _condition_voices_unheard(self):
        """The conditions test speaks languages no espeak-ng training talker speaks."""
        if "espeak" not in self.online.talkers:
            return self
        tested = {voice_language(v) for v in self.conditions.voices}
        shared = [v for v in self.online.espeak_voices if voice_language(v) in tested]
        if shared:
            raise ValueError(
                f"online.espeak_voices {shared} speak languages of conditions.voices "
                f"({', '.join(sorted(tested))}); the conditions test must hear voices of languages "
                "the model never trained on: pick voices of other languages"
            )
        return self

    @model_validator(mode="after")
    def _condition_seeds_apart(self):
        """The conditions test's rooms come from seeds no split uses (see ConditionsParams.room_seed)."""
        splits = {split.seed: name for name, split in self.simulate.splits.items()}
        seed = self.conditions.seed
        if seed in splits:
            raise ValueError(
                f"conditions.seed {seed} equals simulate.splits.{splits[seed]}.seed; the conditions "
                "test must score rooms no split uses: pick another conditions.seed"
            )
        for name in self.conditions.selected:
            room_seed = self.conditions.room_seed(name)
            if room_seed in splits:
                raise ValueError(
                    f"conditions.seed {seed} gives condition {name} the room seed {room_seed}, which is "
                    f"simulate.splits.{splits[room_seed]}.seed: pick another conditions.seed"
                )
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
