"""The params sections of the model (sizes by preset) and of its training run."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, StrictBool, field_validator

from dualmic.core.schema import NonNegFloat, PosFloat, PosInt, Section, Seed

# model sizes by name; model.dim / model.depth / model.window_s / model.frontend override them
PRESETS: dict[str, dict] = {
    # the published size, input length and 4x4 patch grid
    "seed": {"dim": 512, "depth": 8, "window_s": 3.0, "frontend": "patches"},
    # trains on a 2-core CPU in minutes
    "small": {"dim": 96, "depth": 2, "window_s": 1.0, "frontend": "patches"},
}


LOGMAG_READERS = ("ild_token", "floor_channels")  # model options that read the log-magnitude channels


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
    level_norm: StrictBool = True  # log-magnitude inputs rescaled to a unit-RMS window
    # token grid of the last patch convolution (dualmic.learn.model.FRONTENDS)
    frontend: Literal["patches", "bands", "frames"] | None = None
    # full-resolution 3x3 convolutions before the patch convolutions: 2 (the published 4 -> 4 -> 8
    # channels) | 1 (one, straight to 8 channels: a cheaper training step)
    stem_layers: Annotated[int, Strict(), Field(ge=1, le=2)] = 2
    # one more token: the window's interaural level difference per frequency bin (needs logmag)
    ild_token: StrictBool = False
    # with ild_token: one more such token per equal time span of the window when > 1
    ild_segments: Annotated[int, Strict(), Field(ge=1, le=32)] = 1
    # two more input channels: each mic's log-magnitude rise above its per-bin floor (needs logmag)
    floor_channels: StrictBool = False

    @property
    def token_grid(self) -> str:
        return self.frontend or PRESETS[self.preset]["frontend"]

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
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    mixing: Literal["cached", "online"] = "cached"
    ema_decay: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.0
    # fraction of the epochs trained before the first validation (0 = every epoch); the last
    # epoch is always validated, so the model is picked among the later epochs
    validate_from: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.0
