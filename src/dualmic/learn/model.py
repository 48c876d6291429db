"""The SSL model of the published recipe: STFT phase features → conv stack → patches →
Conformer → two CLS tokens → 36 angle classes per source slot.

The front-end (``frontend``) sets the token grid the last patch convolution leaves: the
published ``patches`` (4×4 stride 4, as the first two), ``bands`` (one token per frequency band
of the second grid, spanning every time column) or ``frames`` (4 frequency rows × every time
column of the second grid).

Input (B, C, F, T) with C = 2 (cos/sin IPD) or 4 (+ log-magnitudes), F = 256 bins; output
logits (B, 2, n_classes), slot 0 for the smaller of the two sorted angles. A counting model
(``none_class``) has one more output per slot, class ``n_classes``: "no source in this slot".

``ild_token`` adds one token that sees every frequency bin: the window's interaural level
difference per bin, averaged over its louder frames and over its onsets (:func:`ild_spectrum`).
A head's pinnae tell front from back by a few dB of it at 4-8 kHz, which the patch convolutions
pool 16 bins at a time. ``ild_segments`` > 1 adds one such token per equal time span of the
window as well, so two talkers loud at different moments are not averaged into one spectrum.

``floor_channels`` adds two input channels made inside the model from the log-magnitudes: each
mic's rise above its own floor per bin over the window (:func:`above_floor`). A steady noise
source keeps its bins near the floor whatever its direction; a talker's words rise above it, so
the convolutions can tell which bins' phase differences belong to a talker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from conformer import Conformer
from torch import nn

from dualmic.core.onsets import onsets
from dualmic.core.schema_learn import LOGMAG_READERS


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the model; saved beside the weights in plain types."""

    in_channels: int = 2
    n_freq: int = 256
    n_frames: int = 301
    n_classes: int = 36
    n_slots: int = 2
    dim: int = 96
    depth: int = 2
    dim_head: int = 64
    heads: int = 8
    ff_mult: int = 4
    conv_expansion_factor: int = 2
    conv_kernel_size: int = 31
    dropout: float = 0.1
    none_class: bool = False
    # log-magnitude channels (2..) rescaled to a unit-RMS window, the level of every training
    # window: a recording's level does not change the model's input (False in older model files)
    level_norm: bool = False
    # the token grid of the last patch convolution (FRONTENDS); older model files are "patches"
    frontend: str = "patches"
    # full-resolution 3x3 convolutions before the patch convolutions: 2 (4 -> 4 -> 8 channels,
    # the published) or 1 (straight to 8)
    stem_layers: int = 2
    # one more token: the window's interaural level difference per bin (ild_spectrum); needs the
    # log-magnitude channels 2 and 3
    ild_token: bool = False
    # with ild_token: also one token per each of this many equal time spans of the window (1 = none)
    ild_segments: int = 1
    # two more channels made from the log-magnitudes: each mic's rise above its floor (above_floor)
    floor_channels: bool = False

    @property
    def n_outputs(self) -> int:
        """Outputs per slot: the angle classes, plus "no source" for a counting model."""
        return self.n_classes + int(self.none_class)

    def to_dict(self) -> dict:
        """The fields in plain types; ``stem_layers`` only when it is not the published 2,
        ``ild_token`` and ``floor_channels`` only when on and ``ild_segments`` only when not 1,
        so the files of other models keep the layout they had before these existed."""
        out = asdict(self)
        if out["stem_layers"] == 2:
            del out["stem_layers"]
        if not out["ild_token"]:
            del out["ild_token"]
        if out["ild_segments"] == 1:
            del out["ild_segments"]
        if not out["floor_channels"]:
            del out["floor_channels"]
        return out


def ild_spectrum(logmag: torch.Tensor, segments: int = 1) -> torch.Tensor:
    """Log-magnitudes (B, 2, F, T) of mic 0 and mic 1 → (B, segments, 2 F): per bin, mic 1 minus
    mic 0 (natural-log units) averaged over the frames louder than the bin's mean over the
    window, then weighted by each frame's rise over the loudest of its previous ONSET_FRAMES
    (:func:`dualmic.core.onsets.onsets`, as the onset channels: the direct sound before its
    reflections); each of ``segments`` equal spans of the frames averaged on its own, so talkers
    who are loud at different times give different rows."""
    left, right = logmag[:, 0].float(), logmag[:, 1].float()
    ild, loud = right - left, 0.5 * (left + right)
    w_loud = (loud > loud.mean(-1, keepdim=True)).float()
    w_onset = onsets(loud)
    rows = []
    spans = zip(*(torch.tensor_split(t, segments, dim=-1) for t in (w_loud, w_onset, ild)), strict=True)
    for loud_w, onset_w, diff in spans:
        by_loud = (loud_w * diff).sum(-1) / (loud_w.sum(-1) + 1e-6)
        by_onset = (onset_w * diff).sum(-1) / (onset_w.sum(-1) + 1e-6)
        rows.append(torch.cat([by_loud, by_onset], dim=-1))
    return torch.stack(rows, dim=1)


FLOOR_QUANTILE = 0.2  # the share of a window's frames at or below a bin's floor


def above_floor(logmag: torch.Tensor, quantile: float = FLOOR_QUANTILE) -> torch.Tensor:
    """Log-magnitudes (B, M, F, T) → each bin's rise above its floor over the window: the
    log-magnitude less the ``quantile`` of its T frames (the k-th smallest), 0 where below.
    Stationary noise (a fan, a steady noise source, diffuse noise) stays within a few dB of
    its floor in every frame; a talker's words rise well above it and pause. A difference
    of logarithms, so the recording's level does not change it."""
    k = max(1, round(quantile * logmag.shape[-1]))
    floor = logmag.float().kthvalue(k, dim=-1, keepdim=True).values
    return torch.relu(logmag.float() - floor).to(logmag.dtype)


class ConvBnGelu(nn.Sequential):
    """Convolution, batch norm, GELU (modules 0, 1, 2, as an ``nn.Sequential`` of them: the same
    weights and state-dict keys). The convolution runs on a channels-last copy of its input and
    the rest on the usual layout: with 4-10 channels over 256 bins x 101 frames, oneDNN's
    convolution and its backward pass are about 3.5x faster channels-last on the CPU, while batch
    norm and GELU over so few channels are faster channels-first; a training step takes about
    0.74x the time (benchmarks/train_precision.py --layout). The same function: only the order
    of float sums changes."""

    channels_last = True  # False only to measure the usual layout against it

    def __init__(self, c_in: int, c_out: int, kernel, stride, padding: int):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.BatchNorm2d(c_out), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, act = self
        if self.channels_last:
            x = conv(x.contiguous(memory_format=torch.channels_last)).contiguous()
        else:
            x = conv(x)
        return act(norm(x))


def covered(x: torch.Tensor, kernel: int | tuple[int, int] = 4) -> torch.Tensor:
    """``x`` (..., H, W) cut to the rows and columns an unpadded convolution of ``kernel`` and
    stride ``kernel`` reads: the same result, but bfloat16 convolutions under CPU autocast
    (oneDNN, torch 2.11) return garbage or NaN when the input has unread columns left over, e.g.
    width 6 for kernel 4 / stride 4."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    h, w = x.shape[-2:]
    return x[..., : h - (h - kh) % kh, : w - (w - kw) % kw]


FRONTENDS = ("patches", "bands", "frames")


def _second_grid(n_freq: int, n_frames: int) -> tuple[int, int]:
    """Grid after the first two kernel-4 / stride-4 patch convolutions."""
    f, t = n_freq, n_frames
    for _ in range(2):
        f, t = (f - 4) // 4 + 1, (t - 4) // 4 + 1
    return f, t


def last_kernel(n_freq: int, n_frames: int, frontend: str = "patches") -> tuple[int, int]:
    """Kernel (= stride) of the last patch convolution: 4×4 (``patches``); one frequency row ×
    every time column (``bands``); 4 rows × one column (``frames``)."""
    if frontend not in FRONTENDS:
        raise ValueError(f"frontend {frontend!r} is not one of {', '.join(FRONTENDS)}")
    grid_t = max(_second_grid(n_freq, n_frames)[1], 1)
    return {"patches": (4, 4), "bands": (1, grid_t), "frames": (4, 1)}[frontend]


def patch_grid(n_freq: int, n_frames: int, frontend: str = "patches") -> tuple[int, int]:
    """Token grid (frequency, time) after the three patch convolutions."""
    f, t = _second_grid(n_freq, n_frames)
    kf, kt = last_kernel(n_freq, n_frames, frontend)
    return (f - kf) // kf + 1, (t - kt) // kt + 1


def frames_read(n_freq: int, n_frames: int, frontend: str = "patches") -> int:
    """How many of a window's first frames the patch convolutions read (the 3×3 convolutions
    before them see 2 more); the published 4×4 grid leaves the last third of a 101-frame
    window unread."""
    t = patch_grid(n_freq, n_frames, frontend)[1] * last_kernel(n_freq, n_frames, frontend)[1]
    return t * 16


class SSLModel(nn.Module):
    """Conformer sound source localiser with one CLS token per source slot."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        grid_f, grid_t = patch_grid(cfg.n_freq, cfg.n_frames, cfg.frontend)
        self.last_kernel = last_kernel(cfg.n_freq, cfg.n_frames, cfg.frontend)
        # level-difference tokens: the whole window, then ild_segments spans of it when > 1
        self.ild_rows = ([1] + ([cfg.ild_segments] if cfg.ild_segments > 1 else [])) if cfg.ild_token else []
        if grid_f < 1 or grid_t < 1:
            raise ValueError(f"input {cfg.n_freq}x{cfg.n_frames} is too small for 64x patches")
        if cfg.stem_layers not in (1, 2):
            raise ValueError(f"stem_layers {cfg.stem_layers}: expected 1 or 2")
        for key in LOGMAG_READERS:
            if getattr(cfg, key) and cfg.in_channels < 4:
                raise ValueError(f"{key} needs the log-magnitude channels (features.channels logmag)")
        c_in = cfg.in_channels + 2 * int(cfg.floor_channels)
        stem = [(c_in, 4), (4, 8)] if cfg.stem_layers == 2 else [(c_in, 8)]
        self.inter_conv = nn.Sequential(*(ConvBnGelu(a, b, 3, 1, 1) for a, b in stem))
        self.patch_embed = nn.Sequential(
            ConvBnGelu(8, 32, 4, 4, 0),
            ConvBnGelu(32, 128, 4, 4, 0),
            ConvBnGelu(128, cfg.dim, self.last_kernel, self.last_kernel, 0),
        )
        n_tokens = grid_f * grid_t + cfg.n_slots + sum(self.ild_rows)
        if cfg.ild_token:
            self.ild_embed = nn.Sequential(nn.LayerNorm(2 * cfg.n_freq), nn.Linear(2 * cfg.n_freq, cfg.dim))
        self.cls = nn.Parameter(torch.zeros(1, cfg.n_slots, cfg.dim))
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, cfg.dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.backbone = Conformer(
            cfg.dim,
            depth=cfg.depth,
            dim_head=cfg.dim_head,
            heads=cfg.heads,
            ff_mult=cfg.ff_mult,
            conv_expansion_factor=cfg.conv_expansion_factor,
            conv_kernel_size=cfg.conv_kernel_size,
            attn_dropout=cfg.dropout,
            ff_dropout=cfg.dropout,
            conv_dropout=cfg.dropout,
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.n_outputs)

    def log_level(self, logmag: torch.Tensor) -> torch.Tensor:
        """log of a window's RMS (B, 1, 1, 1) from its STFT log-magnitudes (B, M, F, T).

        By Parseval, the mean power of the one-sided bins of a Hann-windowed frame (n_fft =
        2 F) is sum(w^2) = 3 n_fft / 8 times the frame's mean-square sample, so the log of
        sqrt(mean |X|^2 / (3 F / 4)) is the window's log-RMS: 0 for the unit-RMS windows the
        model trains on, whatever their spectrum.
        """
        power = torch.exp(2 * logmag.float()).mean(dim=(1, 2, 3), keepdim=True)
        return 0.5 * torch.log(power / (0.75 * self.cfg.n_freq)).to(logmag.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) features → (B, n_slots, n_outputs) logits."""
        if self.cfg.level_norm and x.shape[1] > 2:  # channels 2, 3: the log-magnitudes
            x = torch.cat([x[:, :2], x[:, 2:4] - self.log_level(x[:, 2:4]), x[:, 4:]], dim=1)
        z = self.inter_conv(torch.cat([x, above_floor(x[:, 2:4])], dim=1) if self.cfg.floor_channels else x)
        kernels = (4, 4, self.last_kernel)  # kernel = stride of each patch convolution
        for stage, kernel in zip(self.patch_embed, kernels, strict=True):
            z = stage(covered(z, kernel))  # (B, dim, F', T') after the last
        tokens = z.flatten(2).transpose(1, 2)  # (B, F'T', dim)
        if self.cfg.ild_token:
            spec = torch.cat([ild_spectrum(x[:, 2:4], n) for n in self.ild_rows], dim=1)
            tokens = torch.cat([self.ild_embed(spec).to(tokens.dtype), tokens], 1)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        out = self.norm(self.backbone(tokens))
        return self.head(out[:, : self.cfg.n_slots])
