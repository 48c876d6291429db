"""The dry signals on-the-fly mixing cuts its excerpts from (see :mod:`dualmic.data.online`):
synthetic talkers drawn from ``online.seed``, the recorded-voice bank (``data/speech``),
espeak-ng talkers (``online.espeak_voices``) and white, pink and brown noise, held in memory
once per training run."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from dualmic.core.errors import DualmicError
from dualmic.data.espeak import talker_clip, talker_specs
from dualmic.data.perturb import colored_noise
from dualmic.data.sources import synthetic_speech

_EPS = 1e-8
_CANDIDATES = 4  # excerpt offsets tried per talker; the most energetic is kept
_BLOCK = 80  # samples per block of the pool's cumulative energy (excerpt energies to the block)
_ROWS = 16  # talker clips scaled and summed per step of build_pool (bounds its float64 temporaries)
NOISE_COLORS = ("white", "pink", "brown")


@dataclass
class Pool:
    """Dry signals the online mixer cuts excerpts from."""

    talkers: torch.Tensor  # (K, L) float32, each unit RMS
    energy: np.ndarray  # (K, L // _BLOCK + 1) cumulative block energy, for picking active excerpts
    noise: torch.Tensor  # (3, Ln) float32 white, pink, brown, unit power

    @property
    def clip_samples(self) -> int:
        return self.talkers.shape[1]

    @property
    def noise_samples(self) -> int:
        return self.noise.shape[1]

    def active_offset(self, rng: np.random.Generator, clip: int, length: int) -> int:
        """Start of a ``length``-sample excerpt of talker ``clip``: the most energetic of
        ``_CANDIDATES`` random starts (energies summed to the block)."""
        starts = rng.integers(0, self.clip_samples - length + 1, size=_CANDIDATES)
        first, last = starts // _BLOCK, (starts + length) // _BLOCK
        energy = self.energy[clip, last] - self.energy[clip, first]
        return int(starts[int(np.argmax(energy))])


def speech_clips(speech_dir: Path, sample_rate: int, n_samples: int) -> list[np.ndarray]:
    """The recorded-voice bank's clips (``data/speech``) cut or tiled to ``n_samples``."""
    index = speech_dir / "index.csv"
    if not index.is_file():
        raise DualmicError(f"{index} not found: run `dvc repro speech` (online.talkers names speech)")
    clips = []
    with index.open(newline="") as f:
        for row in csv.DictReader(f):
            audio, rate = sf.read(speech_dir / row["file"], dtype="float32")
            if rate != sample_rate:
                raise DualmicError(
                    f"{speech_dir / row['file']} is sampled at {rate} Hz but simulate.sample_rate is "
                    f"{sample_rate}; re-run the speech stage"
                )
            clips.append(np.resize(audio, n_samples))
    return clips


def build_pool(online, sample_rate: int, speech_dir: Path | None = None) -> Pool:
    """The talker and noise pool of the ``online`` params (deterministic from ``online.seed``)."""
    n = int(round(online.clip_s * sample_rate))
    clips = [
        synthetic_speech(np.random.default_rng([online.seed, 0x5E, k]), n, sample_rate)
        for k in range(online.synthetic_talkers if "synthetic" in online.talkers else 0)
    ]
    if "speech" in online.talkers:
        clips += speech_clips(speech_dir or Path("data/speech"), sample_rate, n)
    if "espeak" in online.talkers:
        specs = talker_specs(online.espeak_voices, online.espeak_talkers, online.seed, online.clip_s)
        clips += [np.resize(talker_clip(spec, sample_rate), n) for spec in specs]
    if len(clips) < 2:
        raise DualmicError(
            f"online.talkers {list(online.talkers)} gives {len(clips)} talker clip(s); at least 2 are needed"
        )
    # the clips become rows of one float32 array as they are let go, then each row is scaled to
    # unit RMS and its cumulative block energy taken, _ROWS rows at a time: the float64 sums
    # never need more than a few MB, not copies of the whole pool (900 clips of 8 s: 461 MB)
    talkers = np.empty((len(clips), n), dtype=np.float32)
    for k in range(len(clips)):
        talkers[k], clips[k] = clips[k], None
    n_blocks = n // _BLOCK
    energy = np.zeros((len(talkers), n_blocks + 1))
    for lo in range(0, len(talkers), _ROWS):
        rows = talkers[lo : lo + _ROWS]  # a view: scaled in place
        rows /= (
            np.sqrt(np.mean(rows.astype(np.float64) ** 2, axis=1, keepdims=True)).astype(np.float32) + _EPS
        )
        blocks = rows[:, : n_blocks * _BLOCK].reshape(len(rows), n_blocks, _BLOCK)
        energy[lo : lo + _ROWS, 1:] = np.cumsum((blocks.astype(np.float64) ** 2).sum(-1), axis=1)
    rng = np.random.default_rng([online.seed, 0x401])
    n_noise = int(round(online.noise_s * sample_rate))
    noise = np.stack([colored_noise(rng, 1, n_noise, c)[0] for c in NOISE_COLORS])
    return Pool(
        torch.from_numpy(talkers),
        energy,
        torch.from_numpy(noise.astype(np.float32)),
    )
