"""The random part of an on-the-fly training example (:mod:`dualmic.data.online`): scalars only.

Everything an example holds (talkers, levels, excerpts, noise, microphone errors, talker edits)
is drawn here from one Generator, in a fixed order, so the same (seed, epoch, room) gives the
same example; the signal work that turns a :class:`Draw` into audio is batched in the mixer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dualmic.data.augment import draw_condition
from dualmic.data.pool import NOISE_COLORS, Pool
from dualmic.data.talker_edits import BandLimit, Gap, Overlap, draw_band_limits, draw_gaps, draw_overlaps


@dataclass
class Draw:
    """Everything random about one online example (scalars only)."""

    talkers: tuple[int, ...]  # active sources
    gains_db: tuple[float, ...]
    clips: tuple[int, ...]  # pool talker per source
    offsets: tuple[int, ...]
    point_noise: tuple[int, int, float] | None  # (colour, offset, SNR dB) at the silent source
    diffuse: tuple[str, tuple[int, ...], tuple[int, ...], float] | None  # kind, clips/colour, offsets, SNR
    sensor: tuple[int, int, float] | None  # white-noise offsets for mic 0 and 1, SNR dB
    mic: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None  # gain, tilt, allpass
    noise_source: tuple[int, int, int, float] | None = None  # (position, colour, offset, SNR dB)
    overlaps: tuple[Overlap, ...] = ()  # second voices spoken from a talker's position
    gaps: tuple[Gap, ...] = ()  # silences cut into a talker's excerpt
    band_limits: tuple[BandLimit, ...] = ()  # talkers low-passed, as recorded in a narrow band


def _offset(rng: np.random.Generator, total: int, length: int) -> int:
    return int(rng.integers(0, total - length + 1))


def draw_example(
    rng: np.random.Generator, p, pool: Pool, n_src: int, n_positions: int, dry_len: int, n: int
) -> Draw:
    """One example's draw from ``rng``: ``n_src`` source positions (talkers, or a point noise at a
    silent one), ``n_positions`` noise positions, dry excerpts of ``dry_len`` samples (a model
    window of ``n`` plus the RIR)."""
    aug = p.augment
    cond = draw_condition(rng, aug, n_src, p.features.sir_db, p.features.active_sources)
    k_pool = len(pool.talkers)
    clips = tuple(int(c) for c in rng.choice(k_pool, size=n_src, replace=k_pool < n_src))
    offsets = tuple(pool.active_offset(rng, c, dry_len) for c in clips)
    point = None
    if cond.point_noise_snr_db is not None:
        point = (int(rng.integers(3)), _offset(rng, pool.noise_samples, dry_len),
                 cond.point_noise_snr_db)  # fmt: skip
    diffuse = None
    if cond.diffuse_kind == "babble":
        group = tuple(int(c) for c in rng.choice(k_pool, size=2 * aug.babble_talkers))
        offs = tuple(_offset(rng, pool.clip_samples, n) for _ in group)
        diffuse = ("babble", group, offs, cond.diffuse_snr_db)
    elif cond.diffuse_kind is not None:
        color = NOISE_COLORS.index(cond.diffuse_kind)
        offs = tuple(_offset(rng, pool.noise_samples, n) for _ in range(2))
        diffuse = ("noise", (color,), offs, cond.diffuse_snr_db)
    sensor = None
    if cond.sensor_snr_db is not None:
        a, b = (_offset(rng, pool.noise_samples, n) for _ in range(2))
        sensor = (a, b, cond.sensor_snr_db)
    noise_source = None
    if aug.noise_source > 0 and rng.random() < aug.noise_source:
        noise_source = (
            int(rng.integers(n_positions)),
            int(rng.integers(3)),
            _offset(rng, pool.noise_samples, dry_len),
            float(rng.uniform(*aug.point_noise_snr_db)),
        )
    overlaps = draw_overlaps(rng, cond.talkers, aug.talker_overlap, pool, dry_len,
                             p.features.sir_db)  # fmt: skip
    gaps = draw_gaps(rng, cond.talkers, aug.talker_gaps, p.simulate.sample_rate)
    limits = draw_band_limits(rng, cond.talkers, aug.band_limit, aug.band_limit_hz)
    mic = None
    if any(cond.mic_gain_db) or any(cond.mic_tilt) or any(cond.mic_allpass):
        mic = (cond.mic_gain_db, cond.mic_tilt, cond.mic_allpass)
    return Draw(
        cond.talkers, cond.gains_db, clips, offsets, point, diffuse, sensor, mic, noise_source,
        overlaps, gaps, limits,
    )  # fmt: skip
