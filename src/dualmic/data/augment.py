"""Training mixtures in the conditions of real recordings (the ``augment`` params).

For the splits in ``augment.splits`` each room's mixture is drawn, from
``default_rng([augment.seed, split seed, room])``, with:

* 0, 1 or 2 active talkers (``features.active_sources``): a silent source's slot is "no
  source" for a counting model (one talker, no count: both slots carry its angle), and the
  first silent source's position may hold a point source of noise instead (``point_noise``),
  rendered through that position's RIR; a room without talkers always holds noise;
* talker level differences from ``features.sir_db``;
* a diffuse noise field (``diffuse``): white, pink, brown or babble (extra talkers), at an SNR
  drawn from ``diffuse_snr_db``;
* sensor noise, independent per mic (``sensor_snr_db``);
* imperfect microphones (``mic``): gain, spectral tilt and all-pass phase per mic.

Splits not listed are mixed exactly as before (:func:`dualmic.data.features.mix_sources`), so
the eval split and the published recipe stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dualmic.data.features import FeatureConfig
from dualmic.data.perturb import add_at_snr, colored_noise, diffuse_pair, mic_mismatch

_EPS = 1e-8
NOISE_KINDS = ("white", "pink", "brown", "babble")


@dataclass(frozen=True)
class Condition:
    """What one training mixture holds (drawn by :func:`draw_condition`)."""

    talkers: tuple[int, ...]  # indices of the active sources
    gains_db: tuple[float, ...]  # level of each source relative to source 0
    point_noise_snr_db: float | None  # a noise point source at the silent source's position
    diffuse_kind: str | None
    diffuse_snr_db: float | None
    sensor_snr_db: float | None
    mic_gain_db: tuple[float, float]
    mic_tilt: tuple[float, float]
    mic_allpass: tuple[float, float]


def draw_talkers(rng: np.random.Generator, n_sources: int, active_sources) -> tuple[int, ...]:
    """Which sources talk: a count from ``active_sources`` (probabilities of 0 .. n_sources;
    None = all), then that many sources at random, ascending."""
    if active_sources is None:
        return tuple(range(n_sources))
    count = int(rng.choice(len(active_sources), p=np.asarray(active_sources) / np.sum(active_sources)))
    if count >= n_sources:
        return tuple(range(n_sources))
    return tuple(sorted(int(k) for k in rng.choice(n_sources, size=count, replace=False)))


def draw_condition(
    rng: np.random.Generator, aug, n_sources: int, sir_db: tuple[float, float], active_sources=None
) -> Condition:
    """One room's condition; ``aug`` is the ``augment`` params section, ``active_sources``
    ``features.active_sources``."""
    talkers = draw_talkers(rng, n_sources, active_sources)
    silent = len(talkers) < n_sources
    gains = (0.0, *(float(rng.uniform(*sir_db)) for _ in range(n_sources - 1)))
    point = float(rng.uniform(*aug.point_noise_snr_db)) if silent and rng.random() < aug.point_noise else None
    diffuse = rng.random() < aug.diffuse or not talkers
    kind = str(rng.choice(NOISE_KINDS)) if diffuse else None
    diffuse_snr = float(rng.uniform(*aug.diffuse_snr_db)) if diffuse else None
    sensor = float(rng.uniform(*aug.sensor_snr_db)) if rng.random() < aug.sensor else None
    m = aug.mic
    mismatch = rng.random() < m.probability

    def pair(limit: float) -> tuple[float, float]:
        return tuple(float(x) for x in rng.uniform(-limit, limit, 2)) if mismatch else (0.0, 0.0)

    return Condition(
        talkers, gains, point, kind, diffuse_snr, sensor, pair(m.gain_db), pair(m.tilt), pair(m.allpass)
    )


def render(
    images: np.ndarray,
    rirs: np.ndarray,
    cond: Condition,
    rng: np.random.Generator,
    cfg: FeatureConfig,
    babble: np.ndarray | None = None,
) -> np.ndarray:
    """One room's mixture (2, n) under ``cond``, normalised to unit RMS.

    ``images`` (S, 2, n): every source's image at the mics; ``rirs`` (S, 2, taps) the room's
    RIRs (for a point noise source); ``babble`` (K, n) extra dry talkers for babble noise.
    """
    images = images / (np.sqrt(np.mean(images**2, axis=(1, 2), keepdims=True)) + _EPS)
    gains = 10 ** (np.asarray(cond.gains_db) / 20)
    mixture = sum((images[k] * gains[k] for k in cond.talkers), np.zeros_like(images[0]))
    n = mixture.shape[-1]
    if cond.point_noise_snr_db is not None:
        silent = next(k for k in range(len(images)) if k not in cond.talkers)
        taps = rirs.shape[-1]
        dry = colored_noise(rng, 1, n + taps - 1, str(rng.choice(("white", "pink", "brown"))))[0]
        noise = np.stack([np.convolve(dry, rirs[silent, m], mode="valid") for m in range(2)])
        mixture = add_at_snr(mixture, noise, cond.point_noise_snr_db)
    if cond.diffuse_kind is not None:
        if cond.diffuse_kind == "babble" and babble is not None and len(babble) >= 2:
            half = len(babble) // 2
            pair = babble[:half].sum(0), babble[half:].sum(0)
        else:
            kind = "pink" if cond.diffuse_kind == "babble" else cond.diffuse_kind
            pair = tuple(colored_noise(rng, 2, n, kind))
        field = diffuse_pair(
            pair[0][:n], pair[1][:n], cfg.mic_distance_m, cfg.sample_rate, cfg.speed_of_sound
        )
        mixture = add_at_snr(mixture, field, cond.diffuse_snr_db)
    if cond.sensor_snr_db is not None:
        mixture = add_at_snr(mixture, rng.standard_normal((2, n)), cond.sensor_snr_db)
    if any(cond.mic_gain_db) or any(cond.mic_tilt) or any(cond.mic_allpass):
        mixture = mic_mismatch(
            mixture, np.array(cond.mic_gain_db), np.array(cond.mic_tilt), np.array(cond.mic_allpass)
        )
    return mixture / (np.sqrt(np.mean(mixture**2)) + _EPS)
