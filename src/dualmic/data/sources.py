"""Dry source signals that are convolved with the simulated room impulse responses.

Why speech-like sources and not white noise: two-source localisation from two microphones
relies on time-frequency (TF) sparsity, the fact that in most STFT bins of a speech mixture one
source dominates, so the inter-microphone phase of that bin points at one source. White noise
fills every bin with both sources at once and removes that cue, so a model trained on it learns
a different (and harder) problem than the one met with real talkers. The built-in
:func:`synthetic_speech` therefore produces syllables with silent gaps and pauses, voiced parts
with a gliding pitch and moving formants (energy in harmonics, not spread over all bins) and
short fricative noise bursts. :class:`FolderSources` reads real recordings instead.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from dualmic.core.errors import DualmicError

_AUDIO_SUFFIXES = {".wav", ".flac"}
_CACHE_FILES = 64  # decoded + resampled files kept per FolderSources
_CANDIDATES = 8  # excerpt start offsets tried; the most energetic one is kept


def _envelope(n: int, attack: int, decay: int) -> np.ndarray:
    """Amplitude envelope of ``n`` samples: raised-cosine attack, flat top, raised-cosine decay."""
    attack = min(attack, n // 2)
    decay = min(decay, n - attack)
    env = np.ones(n)
    env[:attack] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(attack) + 0.5) / max(attack, 1))
    env[n - decay :] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(decay) + 0.5) / max(decay, 1))
    return env


def _formant_sos(freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cascade of two-pole resonators (unity gain at 0 Hz) as second-order sections."""
    keep = freqs < 0.45 * sample_rate
    r = np.exp(-np.pi * bandwidths[keep] / sample_rate)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freqs[keep] / sample_rate)
    a2 = r * r
    zeros = np.zeros_like(r)
    return np.stack([1.0 + a1 + a2, zeros, zeros, np.ones_like(r), a1, a2], axis=1)


def synthetic_speech(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """A speech-like signal: syllables with pitch, formants, fricatives and silent pauses.

    One call is one "talker": a base f0 drawn log-uniformly in 90-250 Hz with a smooth intonation
    contour (clipped to 80-300 Hz) drives a Rosenberg glottal-flow pulse train (built by phase
    accumulation, so glides are smooth), differentiated (lip radiation) and passed through four
    formant resonators whose targets (F1 300-900, F2 900-2500, F3 2000-3500 Hz, bandwidths
    60-200 Hz; F4 fixed per talker) change per syllable. Syllables come at 3.5-5.5 per second
    with raised-cosine attacks and decays, 30-90 ms gaps and, after ~12 % of syllables, a
    150-600 ms pause. Band-pass noise (2-7 kHz, kept below Nyquist) makes ~10 % of syllables
    unvoiced and adds fricative bursts at ~35 % of voiced onsets and offsets, 10-22 dB below
    the vowels. Formants at or above 0.45 x sample_rate are dropped.

    Args:
        rng: source of all randomness; the same generator state gives bit-identical output.
        n_samples: length of the output in samples (>= 1).
        sample_rate: sampling rate in Hz (8000-48000 are supported).

    Returns:
        float32 array of shape (n_samples,), normalised to unit RMS over its active samples
        (where the syllable or fricative envelope exceeds 0.05); all zeros if nothing is active.
    """
    fs, n = int(sample_rate), int(n_samples)
    ms = fs / 1000.0
    rate = rng.uniform(3.5, 5.5)  # syllables per second
    f0_base = np.exp(rng.uniform(np.log(90.0), np.log(250.0)))
    f4 = rng.uniform(3300.0, 4300.0)
    # Syllable schedule: (start, length) in samples; the first may begin before sample 0.
    syllables, t = [], -int(rng.uniform(0.0, 1.0 / rate) * fs)
    while t < n:
        gap = rng.uniform(30.0, 90.0) * ms
        length = max(int(rng.uniform(0.7, 1.3) * fs / rate - gap), int(60 * ms))
        syllables.append((t, length))
        t += length + int(gap)
        if rng.random() < 0.12:
            t += int(rng.uniform(150.0, 600.0) * ms)
    # Intonation: semitone offsets at syllable centres, linearly interpolated, plus declination.
    centres = np.array([s + length / 2 for s, length in syllables])
    accents = rng.uniform(-3.0, 3.0, size=len(syllables))
    time = np.arange(n)
    semis = np.interp(time, centres, accents) - rng.uniform(1.0, 3.0) * time / max(n, fs)
    f0 = np.clip(f0_base * 2.0 ** (semis / 12.0), 80.0, 300.0)
    phase = np.mod(rng.random() + np.cumsum(f0 / fs), 1.0)
    t_open, t_close = rng.uniform(0.35, 0.45), rng.uniform(0.12, 0.2)  # fractions of a period
    flow = np.where(
        phase < t_open,
        0.5 - 0.5 * np.cos(np.pi * phase / t_open),
        np.cos(0.5 * np.pi * np.clip((phase - t_open) / t_close, 0.0, 1.0)),
    )
    excitation = np.diff(flow, prepend=flow[:1]) * fs / f0_base
    excitation += rng.uniform(0.1, 0.3) * rng.standard_normal(n)  # breathiness
    hi = min(7000.0, 0.45 * fs)
    band = sorted((min(rng.uniform(2000.0, 3500.0), 0.6 * hi), hi))
    noise = signal.sosfilt(signal.butter(4, band, "bandpass", fs=fs, output="sos"), rng.standard_normal(n))
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    out, active = np.zeros(n), np.zeros(n, dtype=bool)
    for start, length in syllables:
        lo, hi_s = max(start, 0), min(start + length, n)
        voiced = rng.random() < 0.9
        formants = np.array(
            [rng.uniform(300.0, 900.0), rng.uniform(900.0, 2500.0), rng.uniform(2000.0, 3500.0), f4]
        )
        formants[1] = max(formants[1], formants[0] + 250.0)
        formants[2] = max(formants[2], formants[1] + 300.0)
        sos = _formant_sos(formants, rng.uniform(60.0, 200.0, size=4), fs)
        env = _envelope(length, int(rng.uniform(20, 60) * ms), int(rng.uniform(30, 80) * ms))
        fric = np.zeros(length) if voiced else rng.uniform(0.5, 2.0) * env
        for edge in (0, 1):  # fricative burst at the onset / offset of a voiced syllable
            if voiced and rng.random() < 0.35:
                dur = min(int(rng.uniform(30.0, 100.0) * ms), length)
                burst = rng.uniform(0.5, 2.0) * _envelope(dur, dur // 3, dur // 3)
                fric[(length - dur) * edge :][:dur] += burst
        if hi_s <= lo:
            continue
        seg = slice(lo - start, hi_s - start)
        if voiced:
            out[lo:hi_s] += signal.sosfilt(sos, excitation[lo:hi_s]) * env[seg]
        out[lo:hi_s] += noise[lo:hi_s] * fric[seg]
        active[lo:hi_s] |= (env[seg] * voiced > 0.05) | (fric[seg] > 0.05)
    rms = np.sqrt(np.mean(out[active] ** 2)) if active.any() else 0.0
    return (out / rms if rms > 0 else out).astype(np.float32)


class FolderSources:
    """Excerpts of the ``*.wav`` / ``*.flac`` files found (recursively) under a folder.

    Args:
        folder: directory searched recursively; suffixes are matched case-insensitively and
            files are ordered by their relative path, so file indices are deterministic.
        sample_rate: rate in Hz that every excerpt is resampled to.

    Raises:
        DualmicError: if the folder does not exist or holds no wav/flac file.
    """

    def __init__(self, folder: str | Path, sample_rate: int) -> None:
        self.folder = Path(folder)
        self.sample_rate = int(sample_rate)
        if not self.folder.is_dir():
            raise DualmicError(f"sources.folder {self.folder}: no such directory")
        found = [p for p in self.folder.rglob("*") if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file()]
        self.files = sorted(found, key=lambda p: p.relative_to(self.folder).as_posix())
        if not self.files:
            raise DualmicError(f"sources.folder {self.folder}: no .wav or .flac files found")
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> np.ndarray:
        """Mono float32 samples of file ``index`` at ``self.sample_rate`` (LRU-cached)."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        path = self.files[index]
        try:
            data, rate = sf.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, OSError, ValueError, TypeError) as err:
            reason = getattr(err, "error_string", None) or err
            raise DualmicError(f"sources.folder: cannot read {path}: {reason}") from None
        if data.shape[0] == 0 or not np.all(np.isfinite(data)):
            raise DualmicError(f"sources.folder: {path} is empty or holds NaN/inf samples")
        mono = data.mean(axis=1)
        if rate != self.sample_rate:
            import torch  # heavy imports only when a file actually needs resampling
            import torchaudio.functional as taf

            mono = taf.resample(torch.from_numpy(mono), int(rate), self.sample_rate).numpy()
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        self._cache[index] = mono
        if len(self._cache) > _CACHE_FILES:
            self._cache.popitem(last=False)
        return mono

    def excerpt(
        self, rng: np.random.Generator, n_samples: int, exclude: set[int] | None = None
    ) -> tuple[np.ndarray, int]:
        """A random active excerpt of one file.

        Args:
            rng: source of the file choice and offset; same state gives the same excerpt.
            n_samples: excerpt length in samples at ``self.sample_rate``.
            exclude: file indices to avoid (e.g. those already used in the same room); ignored
                when it would leave no file to choose.

        Returns:
            (signal, index): float32 array of shape (n_samples,) and the index of its file in
            ``self.files``. Of ``_CANDIDATES`` random start offsets the most energetic is kept;
            files shorter than ``n_samples`` are repeated to length.

        Raises:
            DualmicError: if the chosen file cannot be decoded (the message names it).
        """
        choices = [i for i in range(len(self.files)) if i not in (exclude or set())]
        choices = choices or list(range(len(self.files)))
        index = choices[int(rng.integers(len(choices)))]
        audio = self._load(index)
        if len(audio) < n_samples:  # tile, starting anywhere in the file
            audio = np.tile(audio, -(-n_samples // len(audio)) + 1)
        starts = rng.integers(0, len(audio) - n_samples + 1, size=_CANDIDATES)
        energy = [float(np.sum(audio[s : s + n_samples] ** 2)) for s in starts]
        best = int(starts[int(np.argmax(energy))])
        return audio[best : best + n_samples].copy(), index


_FOLDERS: dict[tuple[str, int], FolderSources] = {}


def source_signals(
    kind: str,
    folder: str | None,
    seed: int,
    split_seed: int,
    start: int,
    count: int,
    n_sources: int,
    n_samples: int,
    sample_rate: int,
) -> np.ndarray:
    """Dry signals of rooms ``start .. start+count-1`` of one dataset split.

    Room ``j``'s signals depend only on (kind, folder, seed, split_seed, j) and the sizes, never
    on how rooms are chunked: synthetic source ``k`` uses ``default_rng([seed, split_seed, j,
    k])``; folder sources use one ``default_rng([seed, split_seed, j])`` per room, drawing its
    sources from different files while the folder has enough of them. The folder is listed once
    per (folder, sample_rate) and process, so files added later are not seen.

    Args:
        kind: "synthetic" (:func:`synthetic_speech`) or "folder" (:class:`FolderSources`).
        folder: audio folder for kind "folder"; ignored otherwise.
        seed: sources seed (>= 0).
        split_seed: seed of the dataset split (>= 0), so splits get different signals.
        start: index of the first room.
        count: number of rooms.
        n_sources: sources per room.
        n_samples: samples per signal.
        sample_rate: Hz.

    Returns:
        float32 array of shape (count, n_sources, n_samples).

    Raises:
        DualmicError: unknown kind, missing or unusable folder, or a negative seed.
    """
    if kind not in ("synthetic", "folder"):
        raise DualmicError(f"sources.kind {kind!r}: expected 'synthetic' or 'folder'")
    if seed < 0 or split_seed < 0:
        raise DualmicError(f"seeds must be >= 0, got sources.seed {seed}, split seed {split_seed}")
    out = np.zeros((count, n_sources, n_samples), dtype=np.float32)
    if kind == "synthetic":
        for i in range(count):
            for k in range(n_sources):
                rng = np.random.default_rng([seed, split_seed, start + i, k])
                out[i, k] = synthetic_speech(rng, n_samples, sample_rate)
        return out
    if folder is None:
        raise DualmicError("sources.kind is 'folder' but sources.folder is null; give a path")
    key = (str(Path(folder).resolve()), int(sample_rate))
    if key not in _FOLDERS:
        _FOLDERS[key] = FolderSources(folder, sample_rate)
    sources = _FOLDERS[key]
    for i in range(count):
        rng, used = np.random.default_rng([seed, split_seed, start + i]), set()
        for k in range(n_sources):
            out[i, k], index = sources.excerpt(rng, n_samples, exclude=used)
            used.add(index)
    return out
