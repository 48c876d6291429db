"""What real recordings add to a clean two-mic mixture: noise fields and imperfect microphones.

Shared by the training augmentation (:mod:`dualmic.data.augment`) and the conditions test, so
both perturb in the same way. Everything takes its randomness from a ``numpy`` Generator that
the caller seeds from params.yaml. Audio is (2, n_samples) float64 numpy unless said otherwise.

* :func:`diffuse_pair`: any two independent signals turned into a spherically diffuse field
  (inter-mic coherence sinc(2 pi f d / c));
* :func:`colored_noise`: white, pink or brown noise;
* :func:`mic_mismatch`: per-mic gain, first-order spectral tilt and first-order all-pass phase;
* :func:`add_at_snr`: a noise added at a given SNR relative to the mixture's power;
* :func:`low_pass_gain`: the gain of a low-pass, for talkers recorded in a narrow band.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12
COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent
LOW_PASS_WIDTH_HZ = 300.0  # low_pass_gain: width of the fall from 1 to 0 below the cut-off


def _rfft_size(n: int) -> int:
    return 1 << max(1, (n - 1).bit_length())


def colored_noise(
    rng: np.random.Generator, n_channels: int, n_samples: int, color: str = "pink"
) -> np.ndarray:
    """Independent unit-power noise channels (n_channels, n_samples) with a 1/f^a power spectrum."""
    exponent = COLORS[color]
    n_fft = _rfft_size(n_samples)
    spec = rng.standard_normal((n_channels, n_fft // 2 + 1)) + 1j * rng.standard_normal(
        (n_channels, n_fft // 2 + 1)
    )
    freq = np.arange(n_fft // 2 + 1, dtype=np.float64)
    freq[0] = freq[1]
    spec *= freq ** (-exponent / 2)
    noise = np.fft.irfft(spec, n=n_fft)[:, :n_samples]
    return noise / (noise.std(axis=1, keepdims=True) + _EPS)


def diffuse_pair(
    x0: np.ndarray, x1: np.ndarray, mic_distance_m: float, sample_rate: int, speed_of_sound: float = 343.0
) -> np.ndarray:
    """Two independent signals of equal length → a (2, n) spherically diffuse two-mic field.

    Mixes the spectra so that the inter-mic coherence is sinc(2 pi f d / c), the coherence of
    sound arriving equally from all directions; the power per mic is kept.
    """
    n = x0.shape[-1]
    n_fft = _rfft_size(n)
    a = np.fft.rfft(x0, n=n_fft)
    b = np.fft.rfft(x1, n=n_fft)
    freq = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    coh = np.sinc(2 * freq * mic_distance_m / speed_of_sound)  # np.sinc(x) = sin(pi x) / (pi x)
    mixed = np.stack([a, coh * a + np.sqrt(np.clip(1 - coh**2, 0, None)) * b])
    return np.fft.irfft(mixed, n=n_fft)[:, :n]


def mic_mismatch(audio: np.ndarray, gain_db: np.ndarray, tilt: np.ndarray, allpass: np.ndarray) -> np.ndarray:
    """Imperfect microphones: channel m gets gain ``gain_db[m]`` dB, a first-order spectral tilt
    ``tilt[m]`` (y = x + t (x - x[n-1]) / 2: treble up for t > 0, down for t < 0) and a first-order
    all-pass ``(c + z^-1) / (1 + c z^-1)`` with ``c = allpass[m]`` (a frequency-dependent phase
    error, |c| < 1; 0 = none). ``audio`` (2, n) → (2, n)."""
    audio = np.asarray(audio, dtype=np.float64)
    n = audio.shape[-1]
    n_fft = _rfft_size(2 * n)  # zero-padded: the filters' tails do not wrap onto the start
    spec = np.fft.rfft(audio, n=n_fft)
    z1 = np.exp(-2j * np.pi * np.fft.rfftfreq(n_fft))  # z^-1 on the unit circle
    out = np.empty_like(spec)
    for m in range(audio.shape[0]):
        c = float(allpass[m])
        response = (1 + float(tilt[m]) * (1 - z1) / 2) * (c + z1) / (1 + c * z1)
        out[m] = spec[m] * response * 10 ** (float(gain_db[m]) / 20)
    # the all-pass with c = 0 is a pure one-sample delay: undo it so no mismatch = no change
    return np.fft.irfft(out, n=n_fft)[:, 1 : n + 1]


def add_at_snr(mixture: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``mixture + noise`` scaled so that mixture power / noise power = ``snr_db`` (both (2, n));
    a silent mixture (no talker) gets the noise at unit power."""
    p_sig = np.mean(mixture**2)
    p_noise = np.mean(noise**2) + _EPS
    if p_sig == 0:
        return mixture + noise / np.sqrt(p_noise)
    return mixture + noise * np.sqrt(p_sig / p_noise * 10 ** (-snr_db / 10))


def low_pass_gain(freqs_hz: np.ndarray, cutoff_hz: float, width_hz: float = LOW_PASS_WIDTH_HZ) -> np.ndarray:
    """Gain of a zero-phase low-pass at ``freqs_hz``: 1 up to ``cutoff_hz - width_hz``, a
    raised-cosine fall to 0 at ``cutoff_hz``, 0 above (the band a narrowband recording lacks)."""
    x = np.clip((np.asarray(freqs_hz, dtype=np.float64) - (cutoff_hz - width_hz)) / width_hz, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))
