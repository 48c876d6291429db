"""Edits of the talkers of an online mixture: a second voice from a talker's position, and gaps.

``augment.talker_overlap`` plays a second talker excerpt from an active talker's position (a
loudspeaker, or people speaking over each other from one place). The number of sources is the
number of positions: without it, one talker's continuous speech (no pauses) is taken for two,
because training mixtures of two talkers are denser in time and frequency than those of one.
``augment.talker_gaps`` cuts silences into a talker's excerpt (0.1-0.6 s after every 0.2-0.8 s),
so two talkers who take turns are still two. ``augment.band_limit`` low-passes a talker's excerpt
at a cut-off drawn from ``augment.band_limit_hz``, as a talker recorded in a narrow band (a
telephone, an 8 kHz file, a codec) and played into the room sounds.

Both are drawn as scalars per example (after every other draw of
:meth:`dualmic.data.online.OnlineMixer.draw`, and not at all when their probability is 0, so runs
without them reproduce) and applied to the dry talker signals before the RIRs.
"""

from __future__ import annotations

import numpy as np
import torch

from dualmic.data.perturb import low_pass_gain
from dualmic.data.pool import Pool

GAP_SPEECH_S = (0.2, 0.8)  # seconds of speech between the silences of augment.talker_gaps
GAP_SILENCE_S = (0.1, 0.6)  # seconds of each silence

Overlap = tuple[int, int, int, float]  # (source, pool clip, offset, dB) spoken over a talker
Gap = tuple[int, int, int, int]  # (source, speech, silence, phase) in samples
BandLimit = tuple[int, float]  # (source, cut-off Hz)


def draw_overlaps(
    rng: np.random.Generator, talkers, probability: float, pool: Pool, length: int, sir_db
) -> tuple[Overlap, ...]:
    """Per active talker, with ``probability``, a second excerpt of ``length`` samples from its
    position at a level drawn from ``sir_db`` (dB relative to the talker)."""
    out = []
    if probability > 0:
        for k in talkers:
            if rng.random() < probability:
                c = int(rng.integers(len(pool.talkers)))
                off = pool.active_offset(rng, c, length)
                out.append((k, c, off, float(rng.uniform(*sir_db))))
    return tuple(out)


def draw_gaps(rng: np.random.Generator, talkers, probability: float, sample_rate: int) -> tuple[Gap, ...]:
    """Per active talker, with ``probability``, a speech / silence rhythm and its phase."""
    out = []
    if probability > 0:
        for k in talkers:
            if rng.random() < probability:
                on = int(rng.uniform(*GAP_SPEECH_S) * sample_rate)
                off = int(rng.uniform(*GAP_SILENCE_S) * sample_rate)
                out.append((k, on, off, int(rng.integers(on + off))))
    return tuple(out)


def draw_band_limits(
    rng: np.random.Generator, talkers, probability: float, cutoff_hz
) -> tuple[BandLimit, ...]:
    """Per active talker, with ``probability``, a low-pass cut-off drawn from ``cutoff_hz``."""
    out = []
    if probability > 0:
        for k in talkers:
            if rng.random() < probability:
                out.append((k, float(rng.uniform(*cutoff_hz))))
    return tuple(out)


def band_gains(limits, n_sources: int, n_fft: int, sample_rate: int) -> torch.Tensor | None:
    """Spectral gains (n_sources, n_fft // 2 + 1) of one example's band limits, None if it has none."""
    if not limits:
        return None
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    gains = np.ones((n_sources, len(freqs)))
    for k, cutoff in limits:
        gains[k] = low_pass_gain(freqs, cutoff)
    return torch.from_numpy(gains.astype(np.float32))


def apply_edits(dry: torch.Tensor, overlaps, gaps, talkers: torch.Tensor) -> None:
    """Apply one example's edits in place to its dry signals ``dry`` (S, length); ``talkers`` is
    the pool's talker clips."""
    length = dry.shape[-1]
    for k, clip, off, gain_db in overlaps:  # a second voice from the same position
        dry[k] += 10 ** (gain_db / 20) * talkers[clip, off : off + length]
    for k, on, off, phase in gaps:  # speech, silence, speech, ... from a random phase
        dry[k] *= ((torch.arange(length) + phase) % (on + off) < on).float()
