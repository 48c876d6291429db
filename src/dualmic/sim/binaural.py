"""Binaural FRA-RIR: the two receivers are the ears of a measured head (``simulate.array.kind:
hrtf``).

The rooms and the random image sources are FRA-RIR's (:mod:`dualmic.sim.fra`); what changes is
how each arrival reaches the two ears. Every arrival is timed from the head centre (path length
/ c) and filtered by the HRIR pair of its direction in the head's frame, so the interaural time
and level differences and the pinna's spectral cues come from the measurement:

* **direct path**: the HRIR pair of the nearest measured direction on its cone of confusion
  (:func:`dualmic.sim.hrtf.measured_for`), delayed by a fractional delay (a phase ramp in the
  frequency domain) and scaled by 1/d.
* **reflections**: each image goes to the nearest of ``reflection_directions`` measured
  directions spread over the sphere. The images of each such group are accumulated into one
  impulse train at the sample rate (linear fractional-delay weights, whose mean low-pass is
  equalised), and each train is filtered once, in the frequency domain, by its group's HRIR
  pair. The cost therefore grows with the number of groups, not with the number of images.

The sum is band-limited and high-passed by the same zero-phase filter as the free-field
simulator, batched over rooms in torch on the CPU or a CUDA device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dualmic.sim.fra import FraConfig, image_field
from dualmic.sim.hrtf import Hrtf, measured_for
from dualmic.sim.impulses import band_response, linear_weights_gain, pad_taps
from dualmic.sim.rooms import Rooms

TRAIN_OVERSAMPLE = 1  # rate of the reflection trains, x sample_rate


def _to_head(v: torch.Tensor, rot_deg: np.ndarray) -> torch.Tensor:
    """Room-frame vectors (B, ..., 3) → the head (array) frame: undo the rotation about z."""
    rot = torch.as_tensor(np.radians(rot_deg), dtype=v.dtype, device=v.device)
    shape = (len(rot),) + (1,) * (v.dim() - 2)
    cos, sin = torch.cos(rot).view(shape), torch.sin(rot).view(shape)
    x = cos * v[..., 0] + sin * v[..., 1]
    y = -sin * v[..., 0] + cos * v[..., 1]
    return torch.stack([x, y, v[..., 2]], dim=-1)


def hrtf_spectra(hrtf: Hrtf, which, n_out: int, device) -> torch.Tensor:
    """rfft of the HRIR pairs of measured directions ``which`` (any shape of indices), zero-padded
    to ``n_out`` samples: (*which.shape, 2, n_out // 2 + 1) complex64."""
    ir = torch.as_tensor(hrtf.ir, dtype=torch.float32, device=device)
    return torch.fft.rfft(ir[torch.as_tensor(which, device=device)], n=n_out)


def _delay_ramp(delay: torch.Tensor, n_out: int) -> torch.Tensor:
    """exp(−2πj f τ) for delays τ (...,) in samples: (..., n_out // 2 + 1) complex64."""
    f = torch.arange(n_out // 2 + 1, dtype=torch.float64, device=delay.device) / n_out
    phase = -2 * math.pi * delay.to(torch.float64)[..., None] * f
    return torch.polar(torch.ones_like(phase), phase).to(torch.complex64)


def direct_spectra(hrtf: Hrtf, direction: torch.Tensor, cfg: FraConfig, n_out: int) -> torch.Tensor:
    """Spectra (..., 2, F) of direct paths from head-frame vectors ``direction`` (..., 3): the
    measured HRIR pair that renders that direction, delayed by |direction| / c from the head
    centre, gain 1/d."""
    dist = direction.norm(dim=-1)
    idx = measured_for(direction.double(), torch.as_tensor(hrtf.directions, device=direction.device))
    delay = (dist * (cfg.sample_rate / cfg.speed_of_sound) - hrtf.origin).clamp_min(0)
    ramp = _delay_ramp(delay, n_out) / dist[..., None].to(torch.complex64)
    return hrtf_spectra(hrtf, idx, n_out, direction.device) * ramp[..., None, :]


def binaural_rirs(
    rooms: Rooms,
    draws: torch.Tensor,
    cfg: FraConfig,
    hrtf: Hrtf,
    reflection_directions: int = 32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Binaural RIRs of a batch of rooms: (B, S, 2, n_taps) float32 on ``device``; ear 0 = mic 0
    (the left ear), ear 1 = mic 1 (the right ear). ``draws`` are FRA-RIR's (B, S, N, 5)."""
    if hrtf.sample_rate != cfg.sample_rate:
        raise ValueError(f"HRIRs at {hrtf.sample_rate} Hz for a {cfg.sample_rate} Hz simulation")
    fs, c = cfg.sample_rate, cfg.speed_of_sound
    n_out = cfg.n_taps + pad_taps(fs)
    n_bins = n_out // 2 + 1
    field = image_field(rooms, draws, cfg, device)
    spec = direct_spectra(hrtf, _to_head(field.src - field.center, rooms.array_rot_deg), cfg, n_out)

    # reflections: one impulse train per group of directions, filtered by the group's HRIR pair
    groups = hrtf.spread(reflection_directions)
    group_dirs = torch.as_tensor(hrtf.directions[groups], dtype=torch.float32, device=device)
    g = (_to_head(field.unit, rooms.array_rot_deg) @ group_dirs.T).argmax(-1)  # (B, S, N)
    n_lo = n_out * TRAIN_OVERSAMPLE
    pos = (field.dist * (fs / c) - hrtf.origin).clamp_min(0) * TRAIN_OVERSAMPLE
    idx = pos.floor()
    frac = pos - idx
    keep = idx < cfg.n_taps * TRAIN_OVERSAMPLE - 1
    amp = torch.where(keep, field.gain / field.dist, torch.zeros_like(pos))
    flat = (g * n_lo + torch.where(keep, idx, torch.zeros_like(idx)).long()).flatten(2)
    B, S, G = *pos.shape[:2], len(groups)
    trains = torch.zeros(B, S, G * n_lo, dtype=torch.float32, device=device)
    trains.scatter_add_(-1, flat, (amp * (1 - frac)).flatten(2))
    trains.scatter_add_(-1, flat + 1, (amp * frac).flatten(2))
    train_spec = torch.fft.rfft(trains.view(B, S, G, n_lo), n=n_lo)[..., :n_bins]
    train_spec = train_spec * linear_weights_gain(n_lo, n_bins, device)
    group_spectra = hrtf_spectra(hrtf, groups, n_out, device)  # (G, 2, F)
    for k in range(G):  # G small products: no (B, S, G, 2, F) temporary
        spec = spec + train_spec[:, :, k, None, :] * group_spectra[k]

    spec = spec * band_response(n_out, fs, cfg.highpass_hz, device)
    return torch.fft.irfft(spec, n=n_out)[..., : cfg.n_taps].contiguous()
