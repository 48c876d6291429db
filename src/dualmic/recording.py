"""A user's two-channel recording: which files a command line names, reading and checking them
(one-line errors), resampling to the model's rate, and the delay between the two channels.

Channel 0 is mic 0 (at -x), channel 1 is mic 1 (at +x). A file of more channels (a larger array)
is read through ``channels``: the two of its channels that are mic 0 and mic 1, in that order.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from scipy.signal import butter, sosfiltfilt

from dualmic.core.errors import DualmicError, one_line

MIN_DURATION_S = 0.5

HIGHPASS_HZ = 80.0  # predict's default high-pass: below the voice, where rumble and mains hum live

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def recording_paths(paths: list[str | Path]) -> list[Path]:
    """The recordings named on the command line: files as given, a folder as its audio files
    (``AUDIO_SUFFIXES``, any case, sorted by name, not recursive).

    Raises:
        DualmicError: (one line naming the path) if a path does not exist or a folder holds no
            audio file.
    """
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise DualmicError(f"recording {path} not found")
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise DualmicError(f"folder {path} holds no {', '.join(AUDIO_SUFFIXES)} file")
            out.extend(found)
        else:
            out.append(path)
    return out


def parse_channels(text: str | None) -> tuple[int, int] | None:
    """``--channels A,B`` → (A, B): two different channel numbers (0-based) of a recording, mic 0
    first; None stays None (the file's own two channels)."""
    if text is None:
        return None
    parts = [t.strip() for t in str(text).split(",")]
    if len(parts) != 2 or not all(t.isascii() and t.isdigit() for t in parts):
        raise DualmicError(
            f"--channels {text!r}: give two different channel numbers, mic 0's first, e.g. 0,1 "
            "(channels count from 0)"
        )
    a, b = int(parts[0]), int(parts[1])
    if a == b:
        raise DualmicError(f"--channels {text!r}: give two different channel numbers, e.g. 0,1")
    return a, b


def load_recording(path: str | Path, channels: tuple[int, int] | None = None) -> tuple[np.ndarray, int]:
    """A recording's samples (n, 2) float32 as the file holds them (mic 0, mic 1) and its rate,
    checked as :func:`read_recording` says."""
    p = Path(path)
    if not p.exists():
        raise DualmicError(f"recording {p} not found")
    if not p.is_file():
        raise DualmicError(f"recording {p} is not a file")
    try:
        data, rate = sf.read(p, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError, EOFError) as err:
        reason = getattr(err, "error_string", None) or type(err).__name__
        raise DualmicError(
            f"cannot read recording {p} ({one_line(reason)}); give an audio file soundfile "
            "can decode (wav, flac, ogg)"
        ) from None
    n_samples, n_channels = data.shape
    plural = "channel" if n_channels == 1 else "channels"
    if channels is not None:
        if max(channels) >= n_channels:
            raise DualmicError(
                f"recording {p} has {n_channels} {plural} (0 to {n_channels - 1}); --channels "
                f"{channels[0]},{channels[1]} names channel {max(channels)}"
            )
        data = data[:, list(channels)]
    elif n_channels != 2:
        raise DualmicError(
            f"recording {p} has {n_channels} {plural}; a two-channel recording (mic 0, mic 1) is needed"
            + (", or pick two with --channels A,B" if n_channels > 2 else "")
        )
    duration = n_samples / rate
    if duration < MIN_DURATION_S:
        raise DualmicError(f"recording {p} lasts {duration:.3f} s; at least {MIN_DURATION_S} s is needed")
    if not np.all(np.isfinite(data)):
        raise DualmicError(f"recording {p} holds NaN or inf samples")
    if not np.any(data):
        raise DualmicError(f"recording {p} is silent (all samples are zero); nothing to localise")
    names = [f"channel {c}" for c in (channels or (0, 1))]
    for mic in (0, 1):
        if np.ptp(data[:, mic]) == 0:
            raise DualmicError(
                f"recording {p}: {names[mic]} (mic {mic}) is silent (all its samples are "
                f"{data[0, mic]:g}); localising needs both mics' signals"
            )
    if copied_channels(data[:, 0], data[:, 1]):
        raise DualmicError(
            f"recording {p}: {names[0]} and {names[1]} hold the same signal (a mono recording "
            "copied to two channels?); localising needs the two mics' own signals"
        )
    return data, int(rate)


# the least difference from a channel's highest (lowest) value that counts as that value
HELD_TOLERANCE = 1e-6


def clipped_share(data: np.ndarray) -> float:
    """The largest share, over the channels of samples (n, C), of samples held at their
    channel's highest or lowest value for two samples or more in a row: the flat tops of a
    recording clipped at its converter's or its file's full scale. A waveform that is not
    clipped touches its highest value at one sample (or two, for a tone far below the rate)."""
    worst = 0.0
    for ch in np.asarray(data, dtype=np.float64).T:
        held = np.zeros(len(ch), dtype=bool)
        for edge in (ch.max(), ch.min()):
            if edge != 0.0:
                at = np.abs(ch - edge) <= HELD_TOLERANCE * abs(edge)
                twice = at[1:] & at[:-1]
                held[1:] |= twice
                held[:-1] |= twice
        worst = max(worst, float(held.mean()))
    return worst


# share of a channel's samples held at its highest or lowest value from which predict warns
CLIPPED_WARN = 0.01


def clipping_warning(samples: np.ndarray) -> str | None:
    """A one-line warning when a recording's samples (n, 2), as its file holds them, are clipped:
    at least ``CLIPPED_WARN`` of a channel's samples held at its highest or lowest value
    (:func:`clipped_share`). Clipping bends the phase between the mics: the
    eval mixtures clipped on 1 % of their samples lost 0.8 degrees, on 11 % 1.9 degrees (README:
    predict). ``None`` when it is not clipped."""
    share = clipped_share(samples)
    if share < CLIPPED_WARN:
        return None
    return (
        f"{100 * share:.1f} % of its samples are clipped (held at the highest or lowest value); "
        "clipping bends the phase between the mics, so the angles may be a degree or more off: "
        "record at a lower gain"
    )


# 1 - correlation**2 below it: one channel is the other times a gain (a residual 60 dB down)
COPY_RESIDUAL = 1e-6


def copied_channels(a: np.ndarray, b: np.ndarray) -> bool:
    """True when one channel is the other times a constant (a mono signal written to both
    channels, perhaps at another gain or polarity): no delay between the mics to read. Two
    mics apart never give this; their signals differ by the delay and the room. Each channel's
    mean (a recorder's DC offset) is left out."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    aa, bb, ab = float(a @ a), float(b @ b), float(a @ b)
    return aa > 0 and bb > 0 and 1.0 - ab * ab / (aa * bb) < COPY_RESIDUAL


def check_recording(path: str | Path, channels: tuple[int, int] | None = None) -> None:
    """Raise the DualmicError :func:`read_recording` would, without resampling or keeping the
    samples: ``dualmic predict`` checks every recording before it answers for any."""
    load_recording(path, channels)


def read_recording(
    path: str | Path, sample_rate: int, channels: tuple[int, int] | None = None, stretch: float = 1.0
) -> np.ndarray:
    """Read a two-channel recording at ``sample_rate``: (2, n_samples) float32, channel 0 = mic 0.
    ``channels`` (A, B): read channel A of the file as mic 0 and channel B as mic 1 (a file of
    any number of channels); None: the file must have two. ``stretch``: the time axis is
    stretched by this factor (the file read as if sampled ``stretch`` times slower), see
    :func:`stretch_audio`.

    Raises:
        DualmicError: (one line naming the file) if it is missing or not decodable audio, has
            other than two channels (or fewer than ``channels`` name), lasts less than 0.5 s,
            holds NaN/inf, is all zeros, has a silent channel or one channel a copy of the
            other (:func:`copied_channels`).
    """
    data, rate = load_recording(path, channels)
    return stretch_audio(data.T, rate, sample_rate, stretch)


def stretch_audio(audio: np.ndarray, rate: int, sample_rate: int, stretch: float = 1.0) -> np.ndarray:
    """Audio (2, n) sampled at ``rate``, resampled to ``sample_rate`` with its time axis
    stretched by ``stretch`` (as if it had been sampled at ``rate / stretch``): float32.

    Stretching time by k = d / d' turns a recording of mics d' apart into one of mics d apart:
    the same scene scaled by k in every length (room, distances, mic spacing) delays every sound
    k times as much, so angles are unchanged; only the talkers' pitch and the room's RT60 move
    (by 1/k and k). The ratio is read as a fraction of denominator at most 1000 (0.1 % at
    worst, far less for usual spacings)."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    ratio = Fraction(float(stretch)).limit_denominator(1000)
    orig, new = int(rate) * ratio.denominator, int(sample_rate) * ratio.numerator
    if orig != new:
        x = AF.resample(x, orig, new)
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


def channel_delay_s(
    audio: np.ndarray, sample_rate: int, max_lag_s: float = 0.002, upsample: int = 8, frame: int = 16384
) -> float:
    """Delay of channel 1 behind channel 0 (seconds) at the peak of the recording's GCC-PHAT:
    the cross-spectra of Hann-windowed ``frame``-sample frames (half overlapping) summed over
    the whole recording, whitened, and read ``upsample`` x finer than a sample at lags up to
    ``max_lag_s``: the inter-mic delay of its dominant sound, in memory and time bounded per
    frame whatever the recording's length."""
    x = np.asarray(audio, dtype=np.float64)
    size = min(int(frame), x.shape[-1])
    starts = np.arange(0, x.shape[-1] - size + 1, max(1, size // 2))
    window = np.hanning(size)
    cross = np.zeros(size + 1, dtype=np.complex128)
    for lo in range(0, len(starts), 256):  # 256 frames at a time
        idx = starts[lo : lo + 256, None] + np.arange(size)
        spec = np.fft.rfft(x[:, idx] * window, 2 * size, axis=-1)
        cross += (spec[1] * np.conj(spec[0])).sum(axis=0)
    cc = np.fft.irfft(cross / (np.abs(cross) + 1e-12), 2 * size * upsample)
    m = min(int(round(max_lag_s * sample_rate * upsample)), size * upsample - 1)
    lags = np.concatenate([cc[-m:], cc[: m + 1]])
    return float(np.argmax(lags) - m) / (sample_rate * upsample)


def highpass_filter(cutoff_hz: float, sample_rate: int) -> np.ndarray | None:
    """Second-order sections of a 4th-order Butterworth high-pass at ``cutoff_hz`` for audio at
    ``sample_rate``, for :func:`highpass`; None for a cut-off of 0 (off).

    Raises:
        DualmicError: (one line) for a cut-off below 0 or at or above half ``sample_rate``.
    """
    if cutoff_hz == 0:
        return None
    if not 0 < cutoff_hz < sample_rate / 2:
        raise DualmicError(
            f"--highpass {cutoff_hz:g}: give a cut-off in Hz from 0 (off) to below {sample_rate / 2:g} "
            f"(half the model's {sample_rate} Hz)"
        )
    return butter(4, cutoff_hz, "highpass", fs=sample_rate, output="sos")


def highpass(audio: np.ndarray, sos: np.ndarray | None) -> np.ndarray:
    """Audio (..., n) through the high-pass ``sos`` (:func:`highpass_filter`) forwards and backwards:
    zero phase, so the delay between the channels is untouched (8th order in all); None returns
    the audio as it is. Rumble and hum 20 dB above the talkers cost the model its count otherwise
    (README: "Rumble and hum")."""
    if sos is None:
        return audio
    return sosfiltfilt(sos, audio, axis=-1).astype(audio.dtype)
