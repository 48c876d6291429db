"""One recorded word of the speech bank (:mod:`dualmic.data.speech`): where it is, and how it
is loaded (mono, resampled, high-passed, trimmed of silence, at unit active level)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from dualmic.core.errors import DualmicError, one_line

FRAME_S = 0.02  # frame of the silence trimming and the active-level measure
TRIM_DB = 30.0  # frames this far below the loudest frame of a word are silence ...
_FLOOR_DB = 10.0  # ... and so are frames within this of the word's noise floor
_MAX_GAP_S = 0.2  # silences within a word up to this long are kept
_HIGHPASS_HZ = 70.0  # zero-phase high-pass of every word (DC, hum, rumble)
_EDGE_S = 0.005  # raised-cosine fade of each trimmed word


@dataclass(frozen=True)
class Recording:
    """One recorded word (or letter, or syllable) of a package."""

    package: str
    path: Path  # absolute
    name: str  # path relative to the package root, posix
    folder: str  # the package's language folder, e.g. en_GB
    rate: int  # Hz, of the file

    @property
    def language(self) -> str:
        """ISO-639 code of the folder: ``en_GB`` -> ``en``, ``sr@latin`` -> ``sr``."""
        return self.folder.split("@")[0].split("_")[0].lower()

    @property
    def voice(self) -> str:
        return f"{self.package}/{self.folder}/{self.rate}"


def fade(n: int, length: int) -> np.ndarray:
    """Raised-cosine fade-in of ``length`` samples (at most ``n // 2``) over ``n`` samples."""
    length = min(length, n // 2)
    ramp = np.ones(n)
    ramp[:length] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / max(length, 1))
    return ramp


def frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    n = max(1, len(x) // frame)
    padded = np.zeros(n * frame)
    padded[: min(len(x), n * frame)] = x[: n * frame]
    return 10.0 * np.log10(np.mean(padded.reshape(n, frame) ** 2, axis=1) + 1e-20)


def _span(active: np.ndarray, centre: int, max_gap: int) -> tuple[int, int]:
    """First and last active frame of the run around ``centre`` bridging gaps of <= ``max_gap`` frames."""
    idx = np.flatnonzero(active)
    pos = int(np.searchsorted(idx, centre))
    lo = hi = pos
    while lo > 0 and idx[lo] - idx[lo - 1] - 1 <= max_gap:
        lo -= 1
    while hi < len(idx) - 1 and idx[hi + 1] - idx[hi] - 1 <= max_gap:
        hi += 1
    return int(idx[lo]), int(idx[hi])


def load_word(rec: Recording, sample_rate: int) -> np.ndarray | None:
    """The recording, mono, at ``sample_rate``, high-passed, trimmed of silence, at unit active RMS.

    Faded in and out over 20 ms (some files start with a DC step) and high-passed at 70 Hz
    (zero phase: DC, hum and rumble out). Silence is found on 20-ms frames: a frame is active
    when it is within 30 dB of the loudest frame and 10 dB above the file's noise floor (its
    10th-percentile frame, or 20 dB below the loudest if that is higher). The word is the run
    of active frames around the loudest one, bridging gaps up to 0.2 s (a click or a breath
    apart from the word is cut), plus 40 ms before and 80 ms after, with 5-ms fades; its RMS
    over the run's active frames is 1. None when the file is silent or shorter than 80 ms.
    """
    try:
        data, rate = sf.read(str(rec.path), dtype="float64", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as err:
        raise DualmicError(f"speech: cannot read {rec.path}: {one_line(err)}") from None
    x = data.mean(axis=1)
    if not len(x) or not np.all(np.isfinite(x)):
        return None
    if rate != sample_rate:
        import torch
        import torchaudio.functional as taf

        x = taf.resample(torch.from_numpy(x - x.mean()), int(rate), int(sample_rate)).numpy()
    frame = max(1, int(round(FRAME_S * sample_rate)))
    if len(x) < 4 * frame:
        return None
    x = x * fade(len(x), frame) * fade(len(x), frame)[::-1]  # some files start with a DC step
    x = signal.sosfiltfilt(signal.butter(4, _HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos"), x)
    level = frame_db(x, frame)
    loudest = 1 + int(np.argmax(level[1:-1]))  # not an edge frame: what is left of a step or click
    peak, floor = level[loudest], np.percentile(level, 10)
    if peak < -100.0:
        return None
    active = level >= max(peak - TRIM_DB, min(floor, peak - 2 * _FLOOR_DB) + _FLOOR_DB)
    first, last = _span(active, loudest, int(round(_MAX_GAP_S / FRAME_S)))
    start, stop = max(0, (first - 2) * frame), min(len(x), (last + 4) * frame)
    word = x[start:stop]
    edge = int(round(_EDGE_S * sample_rate))
    word = word * fade(len(word), edge) * fade(len(word), edge)[::-1]
    body = x[first * frame : (last + 1) * frame]
    mask = np.repeat(active[first : last + 1], frame)[: len(body)]
    rms = np.sqrt(np.mean(body[mask] ** 2))
    return word / rms if rms > 0 else None
