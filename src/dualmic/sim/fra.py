"""FRA-RIR: fast random approximation of the image-source method (Luo & Yu, Interspeech 2023).

The image-source method (ISM) enumerates every mirror image of a source in a shoebox room.
FRA-RIR keeps the direct path exact and replaces the enumeration by a random set of image
sources whose statistics match the ISM's:

* **distances**: mirror images fill space with density 1/V (one per image room), so the number
  of images closer than d grows as d³. Image distances from the array centre are drawn from the
  pdf ∝ d² between the direct distance and the distance sound travels in the RIR's length.
  Each of the N drawn images stands for K = (4π/3)(d_max³ − d_min³) / (V N) real ones, so its
  amplitude carries √K and the summed energy matches the ISM's.
* **directions**: uniform on the sphere around the array centre; every image is then a point,
  and its distance to each mic gives delays with the right inter-mic differences.
* **reflection counts**: a path of length d hits the walls d / l times on average, with
  l = 4V/S the mean free path; each image gets d / l plus a uniform jitter of
  ±``reflection_jitter`` (paths of equal length reflect a different number of times).
* **absorption**: the Eyring amplitude reflection coefficient β with
  ln β = −3 ln(10) · l / (c · RT60), so that energy β^(2d/l) falls by 60 dB after RT60 seconds.

The arrivals (path lengths and amplitudes to each mic) become band-limited, high-passed RIRs in
:mod:`dualmic.sim.impulses`, batched over rooms in torch on the CPU or a CUDA device. The random
draws are made on the CPU from each room's own seed, so CPU and CUDA simulate the same image
sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dualmic.sim.impulses import oversampled_rirs, two_rate_rirs
from dualmic.sim.rooms import Rooms

_DRAWS_PER_IMAGE = 5  # distance, direction (3 normals), reflection jitter
_STREAM = 0xF4A  # keeps image draws apart from the room-geometry stream of the same seed
NOISE_STREAM = 0xF4B  # the image draws of the point-noise positions (simulate.noise_sources)


@dataclass(frozen=True)
class FraConfig:
    """FRA-RIR settings (mirror of ``simulate`` and ``simulate.fra`` params)."""

    sample_rate: int
    n_taps: int
    n_images: int = 8192
    oversample: int = 8
    highpass_hz: float = 50.0
    reflection_jitter: float = 2.0
    speed_of_sound: float = 343.0
    early_taps: int | None = None  # arrivals before this sample go through the oversampled buffer


def image_draws(
    split_seed: int, start: int, count: int, n_sources: int, n_images: int, stream: int = _STREAM
) -> torch.Tensor:
    """Uniform and normal variates for rooms ``start..start+count-1``: (B, S, N, 5) float32.

    Each room has its own stream, so the draws do not depend on batch size or device.
    """
    out = np.empty((count, n_sources, n_images, _DRAWS_PER_IMAGE), dtype=np.float32)
    for b in range(count):
        rng = np.random.default_rng([split_seed, start + b, stream])
        out[b, ..., 0] = rng.random((n_sources, n_images), dtype=np.float32)
        out[b, ..., 1:4] = rng.standard_normal((n_sources, n_images, 3), dtype=np.float32)
        out[b, ..., 4] = rng.random((n_sources, n_images), dtype=np.float32)
    return torch.from_numpy(out)


def _nearest_image_distance(src: torch.Tensor, center: torch.Tensor, dim: torch.Tensor) -> torch.Tensor:
    """Distance from the array centre to the closest first-order image: (B, S).

    No mirror image is closer than this, so random images are drawn beyond it.
    """
    low = torch.cat([-src, src], dim=-1)  # mirror across the walls at 0: (B, S, 6) coordinates
    low[..., 3:] = 2 * dim[:, None, :] - src  # and across the walls at dim
    rel = low - torch.cat([center, center], dim=-1)  # per-axis offset of each mirrored coordinate
    same = (src - center).repeat(1, 1, 2)  # offsets of the other two axes are unchanged
    d2 = same.pow(2).sum(-1, keepdim=True) - same.pow(2) + rel.pow(2)
    return d2.amin(-1).sqrt()


def _cap_distance(k: torch.Tensor, d_min: torch.Tensor, d_max: torch.Tensor, n: int) -> torch.Tensor:
    """The distance d_c (B, S) where the expected number of draws reaches ``n`` (d_max if it
    never does), by bisection in float64 on the CPU: (B, S) is small, so torch's per-call
    cost would dominate."""
    k, d_start, d_end = (x.detach().cpu().double().numpy() for x in (k, d_min, d_max))

    def count(dc):  # expected draws below the cap at dc plus the uniform part beyond it
        return k / 3 * (dc**3 - d_start**3) + k * dc**2 * (d_end - dc)

    lo, hi = d_start, d_end
    for _ in range(40):  # count() is increasing in dc (its derivative is 2k·dc·(d_max − dc))
        mid = (lo + hi) / 2
        below = count(mid) < n
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    d_c = np.where(count(d_end) <= n, d_end, hi)
    return torch.as_tensor(d_c, dtype=d_min.dtype, device=d_min.device)


def _draw_distances(u: torch.Tensor, d_min: torch.Tensor, d_max: torch.Tensor, volume: torch.Tensor):
    """Image distances and how many real images each one stands for.

    Real images have density τ(d) = 4πd²/V per metre of distance. Where that is below the budget
    the N draws follow it one to one (K = 1: early reflections keep their true sparsity and
    level); beyond the distance d_c where τ reaches the cap ρ = τ(d_c), draws are spread
    uniformly and each stands for K = τ(d) / ρ images. d_c is chosen so the expected number of
    draws is N.

    Args:
        u: (B, S, N) uniform variates.
        d_min, d_max: (B, S) distance range in metres.
        volume: (B, 1) room volume in m³.

    Returns:
        dist (B, S, N) metres, represents (B, S, N) the K of each draw.
    """
    n = u.shape[-1]
    k = 4 * math.pi / volume

    d_c = _cap_distance(k, d_min, d_max, n)
    rho = k * d_c**2  # draws per metre beyond d_c
    mass_a = k / 3 * (d_c**3 - d_min**3)
    total = mass_a + rho * (d_max - d_c)
    t = u * total[..., None]
    in_a = t < mass_a[..., None]
    d_a = (d_min[..., None] ** 3 + 3 * t / k[..., None]).clamp_min(0) ** (1 / 3)
    d_b = d_c[..., None] + (t - mass_a[..., None]) / rho[..., None].clamp_min(1e-12)
    dist = torch.where(in_a, d_a, d_b).clamp(d_min[..., None], d_max[..., None])
    # K = τ / (draw density): τ / (min(τ, ρ) · n / total) = max(τ / ρ, 1) · total / n
    represents = (dist.square() * (k / rho.clamp_min(1e-12))[..., None]).clamp_min(1) * (total / n)[..., None]
    return dist, represents


@dataclass
class ImageField:
    """The random image sources of a batch of rooms (see the module docstring).

    Attributes:
        center: (B, 1, 3) array centres, room frame.
        src: (B, S, 3) sources, room frame.
        mics: (B, M, 3) microphones, room frame.
        unit: (B, S, N, 3) unit vectors from the array centre to each image, room frame.
        dist: (B, S, N) metres from the array centre to each image.
        gain: (B, S, N) reflection loss and the weight of the real images each draw stands for.
    """

    center: torch.Tensor
    src: torch.Tensor
    mics: torch.Tensor
    unit: torch.Tensor
    dist: torch.Tensor
    gain: torch.Tensor


def image_field(rooms: Rooms, draws: torch.Tensor, cfg: FraConfig, device) -> ImageField:
    """Place the random image sources of ``rooms`` from their ``draws`` (B, S, N, 5)."""
    f32 = dict(dtype=torch.float32, device=device)
    c, fs = cfg.speed_of_sound, cfg.sample_rate
    dim = torch.as_tensor(rooms.room_dim, **f32)  # (B, 3)
    rt60 = torch.as_tensor(rooms.rt60, **f32)  # (B,)
    center = torch.as_tensor(rooms.array_center, **f32)[:, None, :]  # (B, 1, 3)
    mics = torch.as_tensor(rooms.mic_pos, **f32)  # (B, M, 3)
    src = torch.as_tensor(rooms.src_pos, **f32)  # (B, S, 3)
    draws = draws.to(device)

    volume = dim.prod(-1)
    surface = 2 * (dim[:, 0] * dim[:, 1] + dim[:, 1] * dim[:, 2] + dim[:, 0] * dim[:, 2])
    mfp = 4 * volume / surface  # mean free path (B,)
    ln_beta = -3 * math.log(10) * mfp / (c * rt60)  # Eyring amplitude coefficient per reflection

    # image distances from the array centre, from the nearest first-order image to the farthest
    # distance sound travels within the RIR
    d_min = _nearest_image_distance(src, center, dim)  # (B, S)
    radius = (mics - center).norm(dim=-1).amax(-1)  # (B,)
    d_max = (c * cfg.n_taps / fs + radius)[:, None].expand_as(d_min)
    dist, represents = _draw_distances(draws[..., 0], d_min, d_max, volume[:, None])
    unit = torch.nn.functional.normalize(draws[..., 1:4], dim=-1)

    jitter = cfg.reflection_jitter * (2 * draws[..., 4] - 1)
    n_refl = dist / mfp[:, None, None] + jitter
    lb = ln_beta[:, None, None]
    # E[β^(2·jitter)] over the uniform jitter: divide it out so the jitter leaves energy unbiased
    x = 2 * cfg.reflection_jitter * ln_beta
    jitter_energy = torch.where(x.abs() > 1e-6, torch.sinh(x) / x, torch.ones_like(x))
    gain = torch.exp(lb * n_refl) * (represents / jitter_energy[:, None, None]).sqrt()
    return ImageField(center=center, src=src, mics=mics, unit=unit, dist=dist, gain=gain)


def image_mic_distances(field: ImageField) -> torch.Tensor:
    """Distance from every image to every mic (B, S, M, N) metres.

    An image lies at ``center + d·u`` and a mic at ``center + o``, so its distance is
    √(d² − 2d(u·o) + |o|²): three products per mic instead of (B, S, M, N, 3) coordinate
    differences. d ≥ the nearest image distance > |o|, so the root stays well away
    from zero.
    """
    offsets = field.mics - field.center  # (B, M, 3)
    o = offsets[:, None, :, None, :]  # (B, 1, M, 1, 3)
    u = field.unit[:, :, None]  # (B, S, 1, N, 3)
    u_dot_o = u[..., 0] * o[..., 0] + u[..., 1] * o[..., 1] + u[..., 2] * o[..., 2]  # (B, S, M, N)
    d = field.dist[:, :, None, :]
    o2 = offsets.pow(2).sum(-1)[:, None, :, None]  # (B, 1, M, 1)
    return (d * (d - 2 * u_dot_o) + o2).sqrt()


def fra_rirs(
    rooms: Rooms, draws: torch.Tensor, cfg: FraConfig, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Simulate the RIRs of a batch of rooms.

    Args:
        rooms: B rooms with S sources and M mics each.
        draws: (B, S, N, 5) variates from :func:`image_draws`.
        cfg: simulation settings.
        device: where to compute.

    Returns:
        rir: (B, S, M, n_taps) float32 on ``device``; direct path of each mic at delay d/c with
        gain 1/d (d in metres).
    """
    field = image_field(rooms, draws, cfg, device)
    src, mics, gain = field.src, field.mics, field.gain

    # distances to each mic: images (B, S, M, N) and direct path (B, S, M, 1)
    r_img = image_mic_distances(field)
    r_dir = (src[:, :, None] - mics[:, None]).norm(dim=-1)[..., None]
    r = torch.cat([r_dir, r_img], dim=-1)
    amp = torch.cat([1 / r_dir, gain[:, :, None] / r_img], dim=-1)

    if cfg.early_taps is not None:
        return two_rate_rirs(r, amp, cfg, device)
    return oversampled_rirs(r, amp, cfg, device)
