"""Two-source mixtures and the model's input features.

For each room, every dry source is convolved with its RIRs (steady state: the source starts
``n_taps`` samples before the excerpt, so no excerpt begins in a silent, unreverberated room),
the reverberant images are set to a random level difference, summed, optionally corrupted by
spherically diffuse noise, and turned into STFT features:

* ``ipd``: cos and sin of the inter-mic phase difference ∠X₁ − ∠X₀, without the DC bin
  (2 × n_fft/2 × frames), the published recipe's input;
* ``logmag``: log-magnitude of each mic, appended as 2 more channels;
* ``onset``: each mic's rise of log-magnitude over the largest of its previous ``ONSET_FRAMES``
  frames in the same bin, less ``onset_threshold_db`` (0 where it rises by less), 2 more
  channels. Bins where energy rises
  hold the direct sound before its reflections arrive (the precedence effect): where they are,
  the interaural level and spectral cues are the source's own, not the room's. A difference of
  logarithms, so a recording's level does not change it. In stationary noise a bin's magnitude
  also rises by chance (Rayleigh-distributed: about a quarter of white-noise bins rise over their
  3 previous frames, 3 % by more than 6 dB); the threshold keeps those out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF

from dualmic.core.onsets import onsets

_EPS = 1e-8


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int
    n_fft: int
    hop: int
    channels: tuple[str, ...]
    mic_distance_m: float
    speed_of_sound: float = 343.0
    onset_threshold_db: float = 0.0

    @property
    def n_channels(self) -> int:
        return 2 * len(self.channels)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop

    @classmethod
    def from_params(cls, p) -> FeatureConfig:
        """The features params.yaml describes (``p`` a :class:`~dualmic.core.params.Params`)."""
        return cls(
            sample_rate=p.simulate.sample_rate,
            n_fft=p.features.n_fft,
            hop=p.features.hop,
            channels=p.features.channels,
            mic_distance_m=p.simulate.mic_distance_m,
            speed_of_sound=p.simulate.speed_of_sound,
            onset_threshold_db=p.features.onset_threshold_db,
        )


def reverberant_images(rirs: torch.Tensor, dry: torch.Tensor) -> torch.Tensor:
    """Convolve each source with its RIRs, keeping the steady-state part.

    Args:
        rirs: (B, S, M, n_taps).
        dry: (B, S, n_samples + n_taps - 1) dry source signals.

    Returns:
        (B, S, M, n_samples) the image of every source at every mic.
    """
    return AF.fftconvolve(dry[:, :, None, :], rirs, mode="valid")


def diffuse_noise(rng: np.random.Generator, n_samples: int, cfg: FeatureConfig) -> np.ndarray:
    """Two-mic spherically diffuse noise: (2, n_samples), unit power per mic.

    The inter-mic coherence is sinc(2π f d / c), as for noise arriving from all directions.
    """
    n_fft = int(2 ** math.ceil(math.log2(n_samples)))
    spec = rng.standard_normal((2, n_fft // 2 + 1)) + 1j * rng.standard_normal((2, n_fft // 2 + 1))
    freq = np.fft.rfftfreq(n_fft, 1 / cfg.sample_rate)
    coh = np.sinc(2 * freq * cfg.mic_distance_m / cfg.speed_of_sound)  # np.sinc(x) = sin(πx)/(πx)
    mixed = np.stack([spec[0], coh * spec[0] + np.sqrt(1 - coh**2) * spec[1]])
    noise = np.fft.irfft(mixed, n=n_fft)[:, :n_samples]
    return noise / (noise.std(axis=1, keepdims=True) + _EPS)


def mix_sources(
    images: torch.Tensor,
    rngs: list[np.random.Generator],
    sir_db: tuple[float, float],
    snr_db: tuple[float, float] | None,
    cfg: FeatureConfig,
    active: np.ndarray | None = None,
) -> torch.Tensor:
    """Sum the source images at random levels, add diffuse noise, normalise: (B, M, n_samples).

    Each source image is scaled to unit power at the mics, source k > 0 then gets a level
    difference drawn uniformly from ``sir_db`` relative to source 0; with ``snr_db`` set, diffuse
    noise is added at an SNR drawn from that range. ``active`` (B, S) bool leaves the silent
    sources out; a room with no talker holds diffuse noise alone. Mixtures are scaled to unit RMS.
    """
    images = images / (images.pow(2).mean(dim=(2, 3), keepdim=True).sqrt() + _EPS)
    n_rooms, n_src, _, n_samples = images.shape
    gains_db = np.zeros((n_rooms, n_src))
    noise = torch.zeros(n_rooms, 2, n_samples)
    for b, rng in enumerate(rngs):
        gains_db[b, 1:] = rng.uniform(*sir_db, size=n_src - 1)
        if snr_db is not None:
            snr = rng.uniform(*snr_db)
            noise[b] = torch.from_numpy(diffuse_noise(rng, n_samples, cfg) * 10 ** (-snr / 20))
    gains = 10 ** (gains_db / 20)
    if active is not None:
        gains = gains * np.asarray(active, dtype=bool)
    mixture = (images * torch.from_numpy(gains).to(images)[:, :, None, None]).sum(1)
    if snr_db is not None:
        speech_rms = mixture.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
        mixture = mixture + noise.to(mixture) * speech_rms
    if active is not None:
        for b in np.flatnonzero(~np.asarray(active, dtype=bool).any(axis=1)):
            mixture[b] = torch.from_numpy(diffuse_noise(rngs[b], n_samples, cfg)).to(mixture)
    return mixture / (mixture.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + _EPS)


def stft(audio: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Complex STFT with a Hann window of n_fft, DC bin dropped: (..., n_fft/2, frames)."""
    window = torch.hann_window(cfg.n_fft, device=audio.device, dtype=audio.dtype)
    lead = audio.shape[:-1]
    spec = torch.stft(
        audio.reshape(-1, audio.shape[-1]), cfg.n_fft, cfg.hop, window=window, return_complex=True
    )
    return spec[:, 1:].reshape(*lead, cfg.n_freq, spec.shape[-1])


def features_from_audio(audio: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Model input from two-mic audio (B, 2, n_samples) → (B, C, n_fft/2, frames) float32."""
    spec = stft(audio, cfg)
    ipd = torch.angle(spec[:, 1] * spec[:, 0].conj())
    chans = [torch.cos(ipd), torch.sin(ipd)]
    if "logmag" in cfg.channels or "onset" in cfg.channels:
        logmag = torch.log(spec.abs() + 1e-5)
    if "logmag" in cfg.channels:
        chans += [logmag[:, 0], logmag[:, 1]]
    if "onset" in cfg.channels:
        rise = onsets(logmag, threshold_db=cfg.onset_threshold_db)
        chans += [rise[:, 0], rise[:, 1]]
    return torch.stack(chans, dim=1)
