"""A bank of talker clips made of recorded words: training sources that sound like people.

Debian ships recordings of real voices with two KDE games (GPL; installed at set-up, never
committed): ``ktuberling-data`` (words, one folder per language under
``/usr/share/ktuberling/sounds``) and ``klettres-data`` (letters and syllables, one folder per
language under ``/usr/share/klettres``, in ``alpha/`` and ``syllab/``). Neither names its
speakers, so a **voice** here is the recordings of one package folder at one sample rate: a
folder is one language's recordings, and its files at different rates are taken to come from
different recording sessions (often people); one voice may still hold more than one speaker.
Folders holding byte-identical copies of another folder's files (ktuberling's ``sr@latin`` and
friends) add nothing and are dropped.

A clip is one voice: its words in a random order (each used once before any repeats), each
trimmed of its leading and trailing silence and brought to a common level with a random offset
of +-``level_db``, separated (and preceded) by silences drawn from ``pause_s``. The clip is cut
at ``clip_s`` with a short fade, brought to -20 dBFS RMS over its active part (less if a peak
would pass 0.99: never clipped) and written as 16-bit FLAC. Clip ``i`` draws everything from
``default_rng([seed, i])``, so clips do not change when ``n_clips`` grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from dualmic.core.errors import DualmicError, one_line
from dualmic.core.files import atomic_folder, save_csv
from dualmic.core.schema_conditions import SpeechParams
from dualmic.data.words import FRAME_S, TRIM_DB, Recording, fade, frame_db, load_word


@dataclass(frozen=True)
class Package:
    """A Debian package of recorded speech: its apt name and the folder of its per-language folders."""

    apt: str
    root: Path


PACKAGES: dict[str, Package] = {
    "ktuberling": Package("ktuberling-data", Path("/usr/share/ktuberling/sounds")),
    "klettres": Package("klettres-data", Path("/usr/share/klettres")),
}
AUDIO_SUFFIXES = (".flac", ".ogg", ".opus", ".wav")
CLIPS = "clips"  # sub-folder of the bank holding the audio
INDEX = "index.csv"
TARGET_RMS = 0.1  # -20 dBFS over the clip's active part
MAX_PEAK = 0.99
_END_FADE_S = 0.01  # fade at the clip's cut


def package_roots(names: tuple[str, ...], roots: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """The folder of each named package; a missing one is a one-line error naming the apt command."""
    out = {}
    for name in names:
        root = Path((roots or {}).get(name, PACKAGES[name].root))
        if not root.is_dir():
            apt = PACKAGES[name].apt
            raise DualmicError(
                f"speech.packages: {name} recordings not found at {root}; install them with "
                f"apt-get install {apt} (or make speech-deps)"
            )
        out[name] = root
    return out


def find_recordings(
    names: tuple[str, ...], min_rate: int, roots: Mapping[str, Path] | None = None
) -> list[Recording]:
    """Every usable recording of the packages, sorted; duplicates (same bytes) kept once.

    A package's language folders are its sub-folders holding audio (searched recursively);
    files recorded at less than ``min_rate`` Hz lack the upper band and are left out.
    """
    found, seen = [], set()
    for package, root in package_roots(names, roots).items():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = [p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
            for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
                digest = hashlib.md5(path.read_bytes()).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                try:
                    rate = sf.info(str(path)).samplerate
                except (RuntimeError, OSError, ValueError, TypeError) as err:
                    raise DualmicError(f"speech: cannot read {path}: {one_line(err)}") from None
                if rate >= min_rate:
                    name = path.relative_to(root).as_posix()
                    found.append(Recording(package, path, name, folder.name, int(rate)))
    return found


def voices(recordings: list[Recording], min_words: int) -> dict[str, list[Recording]]:
    """Recordings grouped by voice (sorted by voice id); voices with fewer than ``min_words`` dropped."""
    groups: dict[str, list[Recording]] = {}
    for rec in recordings:
        groups.setdefault(rec.voice, []).append(rec)
    return {v: recs for v, recs in sorted(groups.items()) if len(recs) >= min_words}


def talker_clip(
    rng: np.random.Generator,
    n_words: int,
    word: Callable[[int], np.ndarray | None],
    n_samples: int,
    sample_rate: int,
    pause_s: tuple[float, float],
    level_db: float,
) -> tuple[np.ndarray, list[int]]:
    """Words of one voice with pauses between them, ``n_samples`` long, normalised, never clipped.

    Args:
        rng: every draw (word order, pauses, levels); the same state gives the same clip.
        n_words: how many words the voice has.
        word: word index -> its unit-RMS samples at ``sample_rate``, or None for a silent
            recording (skipped).
        n_samples: clip length.
        sample_rate: Hz.
        pause_s: seconds [min, max] of the silence before each word.
        level_db: each word's level is drawn uniformly in +-level_db dB.

    Returns:
        (float32 clip, indices of the words placed in it, in order). The words come in random
        orders, each once before any repeats; the clip ends with a 10-ms fade and is scaled to
        -20 dBFS RMS over its active part, or lower so that no sample exceeds 0.99.

    Raises:
        DualmicError: if every word of the voice is silent.
    """
    out, used = np.zeros(n_samples), []
    order, k, skipped = rng.permutation(n_words), 0, 0
    pos = int(round(rng.uniform(*pause_s) * sample_rate))
    while pos < n_samples:
        if k == len(order):
            order, k = rng.permutation(n_words), 0
        index = int(order[k])
        k += 1
        audio = word(index)
        if audio is None:
            skipped += 1
            if skipped >= n_words and not used:
                raise DualmicError("speech: a voice holds only silent recordings")
            continue
        gain = 10.0 ** (rng.uniform(-level_db, level_db) / 20.0)
        piece = audio[: n_samples - pos] * gain
        out[pos : pos + len(piece)] = piece
        used.append(index)
        pos += len(audio) + int(round(rng.uniform(*pause_s) * sample_rate))
    out *= fade(n_samples, int(round(_END_FADE_S * sample_rate)))[::-1]
    frame = max(1, int(round(FRAME_S * sample_rate)))
    level = frame_db(out, frame)
    active = np.repeat(level >= level.max() - TRIM_DB, frame)[:n_samples]
    rms = np.sqrt(np.mean(out[: len(active)][active] ** 2)) if active.any() else 0.0
    peak = np.abs(out).max()
    if rms > 0:
        out *= min(TARGET_RMS / rms, MAX_PEAK / peak)
    return out.astype(np.float32), used


def build_bank(
    params: SpeechParams,
    sample_rate: int,
    out: Path,
    roots: Mapping[str, Path] | None = None,
    advance: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Write the speech bank to ``out`` (replacing it whole, atomically) and return its index.

    ``out/clips/clip_NNNNN.flac`` (16-bit FLAC, mono, ``sample_rate``) and ``out/index.csv``:
    one row per clip with its file (relative to ``out``), language, voice, package, word count
    and words (package-relative paths, ``;``-separated, in order).

    Raises:
        DualmicError: a package is not installed, or it holds no voice with enough recordings.
    """
    recs = find_recordings(params.packages, params.min_file_rate, roots)
    by_voice = voices(recs, params.min_voice_words)
    if not by_voice:
        raise DualmicError(
            f"speech: no voice of {', '.join(params.packages)} has >= {params.min_voice_words} "
            f"recordings at >= {params.min_file_rate} Hz; lower speech.min_voice_words or "
            "speech.min_file_rate"
        )
    names = list(by_voice)
    n_samples = int(round(params.clip_s * sample_rate))
    plan: dict[str, list[tuple[int, np.random.Generator]]] = {}
    for i in range(params.n_clips):
        rng = np.random.default_rng([params.seed, i])
        plan.setdefault(names[int(rng.integers(len(names)))], []).append((i, rng))
    rows: list[dict] = [{}] * params.n_clips
    with atomic_folder(out) as tmp:
        (tmp / CLIPS).mkdir()
        for voice in sorted(plan):  # one voice's words in memory at a time, each loaded once
            recs, cache = by_voice[voice], {}

            def word(index: int, recs=recs, cache=cache) -> np.ndarray | None:
                if index not in cache:
                    cache[index] = load_word(recs[index], sample_rate)
                return cache[index]

            first = recs[0]
            for i, rng in plan[voice]:
                try:
                    clip, used = talker_clip(
                        rng, len(recs), word, n_samples, sample_rate, params.pause_s, params.level_db
                    )
                except DualmicError as err:
                    raise DualmicError(f"{err} ({voice})") from None
                name = f"{CLIPS}/clip_{i:05d}.flac"
                sf.write(str(tmp / name), clip, sample_rate, subtype="PCM_16", format="FLAC")
                rows[i] = {
                    "file": name,
                    "language": first.language,
                    "voice": voice,
                    "package": PACKAGES[first.package].apt,
                    "n_words": len(used),
                    "words": ";".join(recs[j].name for j in used),
                }
                if advance is not None:
                    advance(1)
        index = pd.DataFrame(rows, columns=["file", "language", "voice", "package", "n_words", "words"])
        save_csv(tmp / INDEX, index)
    return index
