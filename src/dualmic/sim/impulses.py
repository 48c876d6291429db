"""From arrivals to RIRs: fractional-delay accumulation and one zero-phase band filter.

A simulator gives, per RIR, the path length and amplitude of every arrival (the direct path and
the image sources). They are placed in time at one of two precisions:

* **oversampled** (``simulate.fra.early_ms`` null, every arrival): linear fractional-delay
  weights at ``oversample`` × the sample rate over the whole RIR, resampled by keeping the FFT
  bins below the target Nyquist;
* **two-rate** (``early_ms`` set): the arrivals before the latest possible direct path plus
  ``early_ms`` that way in a short buffer, the later ones at the sample rate with linear weights.
  Their delays are random, so the mean low-pass of those weights (power 1 − (1 − cos ω) / 3) is
  equalised.

One zero-phase FFT filter then band-limits and high-passes the sum (the magnitude a
forward-backward 2nd-order Butterworth applies).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from scipy.fft import next_fast_len

if TYPE_CHECKING:
    from dualmic.sim.fra import FraConfig


def pad_taps(sample_rate: int) -> int:
    """Zero padding (100 ms) that absorbs the filter's circular wrap-around."""
    return int(0.1 * sample_rate)


def band_response(
    n_out: int, sample_rate: int, highpass_hz: float, device, taper: bool = True
) -> torch.Tensor:
    """Real, zero-phase gain per rfft bin of an ``n_out``-sample signal: anti-alias taper near
    Nyquist (unless ``taper`` is False) times a squared 2nd-order Butterworth high-pass
    magnitude (none with ``highpass_hz`` 0)."""
    freq = torch.fft.rfftfreq(n_out, 1 / sample_rate, dtype=torch.float64)
    nyq = sample_rate / 2
    edge = 0.85 * nyq
    gain = torch.ones_like(freq)
    if taper:
        gain = torch.where(freq <= edge, gain, 0.5 * (1 + torch.cos(torch.pi * (freq - edge) / (nyq - edge))))
    if highpass_hz > 0:
        ratio4 = (freq / highpass_hz) ** 4
        gain = gain * ratio4 / (1 + ratio4)
    return gain.to(device=device, dtype=torch.float32)


def oversampled_rirs(r: torch.Tensor, amp: torch.Tensor, cfg: FraConfig, device) -> torch.Tensor:
    """RIRs (..., n_taps) from path lengths ``r`` (metres) and amplitudes ``amp`` (..., K), every
    arrival accumulated at the oversampled rate (``simulate.fra.early_ms`` null)."""
    c, fs, os_ = cfg.speed_of_sound, cfg.sample_rate, cfg.oversample
    # accumulate at the oversampled rate with linear fractional-delay weights; the buffer is
    # zero-padded so the circular FFT filter below cannot wrap the tail onto the direct path
    n_out = cfg.n_taps + pad_taps(fs)
    n_hi = n_out * os_
    pos = r * (fs * os_ / c)
    idx = pos.floor()
    frac = pos - idx
    keep = idx < cfg.n_taps * os_ - 1
    idx = torch.where(keep, idx, torch.zeros_like(idx)).long()
    amp = torch.where(keep, amp, torch.zeros_like(amp))
    buf = torch.zeros(*r.shape[:-1], n_hi, dtype=torch.float32, device=device)
    buf.scatter_add_(-1, idx, amp * (1 - frac))
    buf.scatter_add_(-1, idx + 1, amp * frac)

    # band-limit, resample and high-pass in one zero-phase filter: keep the spectrum below the
    # target Nyquist (raised-cosine taper over its last 5 %) times |H_hp|² of a 2nd-order
    # Butterworth (the response filtfilt applies). Keeping the first bins of the oversampled
    # spectrum and inverting at the target length resamples; impulse heights are preserved.
    spec = torch.fft.rfft(buf, n=n_hi)[..., : n_out // 2 + 1]
    spec = spec * band_response(n_out, fs, cfg.highpass_hz, device)
    return torch.fft.irfft(spec, n=n_out)[..., : cfg.n_taps].contiguous()


EARLY_PAD = 256  # samples of zeros after the early window: room for its band-limited impulses


def linear_weights_gain(n: int, n_bins: int, device) -> torch.Tensor:
    """1 / sqrt(mean power response) of linear fractional-delay weights at a random offset, per
    rfft bin of an ``n``-sample signal: undoes their mean low-pass on randomly timed impulses."""
    omega = 2 * math.pi * torch.arange(n_bins, dtype=torch.float64, device=device) / n
    return (1 - (1 - torch.cos(omega)) / 3).rsqrt().to(torch.float32)


def two_rate_rirs(r: torch.Tensor, amp: torch.Tensor, cfg: FraConfig, device) -> torch.Tensor:
    """RIRs (..., n_taps) from path lengths ``r`` (metres) and amplitudes ``amp`` (..., K): the
    arrivals before ``cfg.early_taps`` (the direct path among them) oversampled, later ones at
    the sample rate."""
    c, fs, os_ = cfg.speed_of_sound, cfg.sample_rate, cfg.oversample
    n_out = cfg.n_taps + pad_taps(fs)
    n_bins = n_out // 2 + 1
    pos = r * (fs / c)  # samples at the sample rate
    n_early = min(cfg.early_taps, cfg.n_taps)
    late = pos >= n_early

    # one scatter for both rates: the direct path and early reflections at the oversampled rate
    # in the first n_hi samples of the buffer, later reflections (and direct paths past the
    # early window) at the sample rate from n_hi + 2 on; each part ends in two spare samples
    n_hi = n_early * os_ + 1
    q = torch.where(late, pos, pos * os_)
    idx = q.floor()
    frac = q - idx
    idx = torch.where(late, idx.clamp_max(cfg.n_taps) + (n_hi + 2), idx).long()
    buf = torch.zeros(*pos.shape[:-1], n_hi + 2 + cfg.n_taps + 2, dtype=torch.float32, device=device)
    buf.scatter_add_(-1, idx, amp - amp * frac)
    buf.scatter_add_(-1, idx + 1, amp * frac)

    # early part: resampled by FFT over a short window
    n_e = next_fast_len(n_early + EARLY_PAD, real=True)  # 2^a 3^b 5^c samples: fast FFTs
    low = torch.fft.rfft(buf[..., :n_hi], n=n_e * os_)[..., : n_e // 2 + 1]
    low = low * band_response(n_e, fs, 0.0, device)
    early_td = torch.fft.irfft(low, n=n_e)

    # late part at the sample rate, its linear weights' mean low-pass equalised
    late_buf = buf[..., n_hi + 2 : n_hi + 2 + cfg.n_taps]
    spec = torch.fft.rfft(late_buf, n=n_out) * (
        linear_weights_gain(n_out, n_bins, device) * band_response(n_out, fs, 0.0, device)
    )
    spec = spec + torch.fft.rfft(early_td, n=n_out)
    spec = spec * band_response(n_out, fs, cfg.highpass_hz, device, taper=False)
    return torch.fft.irfft(spec, n=n_out)[..., : cfg.n_taps].contiguous()
