"""One split of the features stage: labels from rooms.csv, mixtures and features in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import angle_to_class, label_period, slot_angles, sort_slots
from dualmic.core.params import Params
from dualmic.data.augment import draw_condition, draw_talkers, render
from dualmic.data.features import FeatureConfig, features_from_audio, mix_sources, reverberant_images
from dualmic.data.sources import source_signals
from dualmic.sim.rooms import Rooms

_ACTIVE_STREAM = 0xAC7  # the talker count of rooms mixed without augment


def split_labels(p: Params, rooms: Rooms) -> tuple[np.ndarray, np.ndarray]:
    """(angles float32 (n, S), classes int64 (n, S)) of ``labels.angle``, both in slot order
    (:func:`dualmic.core.labels.sort_slots`)."""
    if rooms.n_sources != p.simulate.n_sources:
        raise DualmicError(
            f"rooms.csv has {rooms.n_sources} sources per room but simulate.n_sources is "
            f"{p.simulate.n_sources}; re-run the simulate stage"
        )
    angles = sort_slots(rooms.angles(p.labels.angle, stored=True), label_period(p.labels.angle))
    classes = angle_to_class(angles, p.labels.class_width_deg, p.labels.n_classes)
    return angles.astype(np.float32), classes


@dataclass
class FeatureBatch:
    start: int
    features: np.ndarray  # (B, C, F, T) float16
    mixture: np.ndarray  # (B, 2, n_samples) float32
    active: np.ndarray  # (B, S) bool: the sources that talk (all, unless the split is augmented)


def active_labels(angles: np.ndarray, active: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Labels of rooms where only some sources talk (:func:`dualmic.core.labels.slot_angles`):
    (angles float32 (n, S) sorted, NaN = no source; classes int64, n_classes = no source).
    ``angles`` (n, S) in source order."""
    slots = slot_angles(angles, active, p.labels.counting, label_period(p.labels.angle))
    classes = angle_to_class(slots, p.labels.class_width_deg, p.labels.n_classes)
    return slots.astype(np.float32), classes


def draw_active(p: Params, split_seed: int, start: int, count: int) -> np.ndarray:
    """Which sources talk in rooms ``start ..`` of a split mixed without ``augment``: (count, S)
    bool, the talker count drawn from ``features.active_sources`` on a stream of its own (so
    levels and noise stay as they were)."""
    n_src = p.simulate.n_sources
    active = np.zeros((count, n_src), dtype=bool)
    for b in range(count):
        rng = np.random.default_rng([p.features.seed, split_seed, start + b, _ACTIVE_STREAM])
        active[b, list(draw_talkers(rng, n_src, p.features.active_sources))] = True
    return active


def feature_batches(p: Params, split: str, rirs: np.ndarray) -> Iterator[FeatureBatch]:
    """Mix and featurise a split's rooms in batches of ``features.batch_size``.

    Each room draws its sources from (sources.seed, split seed, room) and its levels and noise
    from (features.seed, split seed, room), so results do not depend on the batch size.
    """
    cfg = FeatureConfig.from_params(p)
    n_samples = p.n_samples
    n_rooms, n_src, _, n_taps = rirs.shape
    split_seed = p.simulate.split(split).seed
    aug = p.augment if split in p.augment.splits else None
    for start in range(0, n_rooms, p.features.batch_size):
        count = min(p.features.batch_size, n_rooms - start)
        dry = source_signals(
            p.sources.kind,
            p.sources.folder,
            p.sources.seed,
            split_seed,
            start,
            count,
            n_src,
            n_samples + n_taps - 1,
            p.simulate.sample_rate,
        )
        active = np.ones((count, n_src), dtype=bool)
        with torch.inference_mode():
            rir_batch = torch.from_numpy(np.array(rirs[start : start + count]))
            images = reverberant_images(rir_batch, torch.from_numpy(dry))
            if aug is None:
                rngs = [
                    np.random.default_rng([p.features.seed, split_seed, i])
                    for i in range(start, start + count)
                ]
                if p.features.active_sources is not None:
                    active = draw_active(p, split_seed, start, count)
                mixture = mix_sources(images, rngs, p.features.sir_db, p.features.snr_db, cfg, active)
            else:
                mixture = _augmented(
                    p, aug, split_seed, start, images.numpy(), rir_batch.numpy(), active, cfg
                )
            feats = features_from_audio(mixture, cfg)
        yield FeatureBatch(start, feats.numpy().astype(np.float16), mixture.numpy(), active)


def _augmented(p: Params, aug, split_seed: int, start: int, images, rirs, active, cfg) -> torch.Tensor:
    """Mixtures of rooms ``start ..`` under their drawn conditions (see :mod:`dualmic.data.augment`);
    marks the silent sources in ``active``."""
    count, n_src, _, n = images.shape
    babble = source_signals(
        p.sources.kind, p.sources.folder, aug.seed, split_seed, start, count, aug.babble_talkers, n,
        p.simulate.sample_rate,
    )  # fmt: skip
    out = np.empty((count, 2, n), dtype=np.float32)
    for b in range(count):
        rng = np.random.default_rng([aug.seed, split_seed, start + b])
        cond = draw_condition(rng, aug, n_src, p.features.sir_db, p.features.active_sources)
        active[b] = np.isin(np.arange(n_src), cond.talkers)
        out[b] = render(images[b].astype(np.float64), rirs[b], cond, rng, cfg, babble[b])
    return torch.from_numpy(out)
