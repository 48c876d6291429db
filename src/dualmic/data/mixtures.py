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
    rooms: np.ndarray  # (B,) indices of the batch's rooms in the split
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


def draw_active(p: Params, split_seed: int, rooms: np.ndarray) -> np.ndarray:
    """Which sources talk in ``rooms`` (indices) of a split mixed without ``augment``: (B, S)
    bool, the talker count drawn from ``features.active_sources`` on a stream of its own (so
    levels and noise stay as they were)."""
    n_src = p.simulate.n_sources
    active = np.zeros((len(rooms), n_src), dtype=bool)
    for b, room in enumerate(rooms):
        rng = np.random.default_rng([p.features.seed, split_seed, int(room), _ACTIVE_STREAM])
        active[b, list(draw_talkers(rng, n_src, p.features.active_sources))] = True
    return active


def split_active(p: Params, split: str, n_rooms: int) -> np.ndarray:
    """(n_rooms, S) bool: which sources talk in every room of ``split``, as :func:`feature_batches`
    draws them, without mixing a room (for the labels of rooms the features stage leaves out)."""
    n_src = p.simulate.n_sources
    split_seed = p.simulate.split(split).seed
    if split in p.augment.splits:
        talkers = [_room_condition(p, split_seed, room, n_src)[1].talkers for room in range(n_rooms)]
        return np.array([np.isin(np.arange(n_src), t) for t in talkers]).reshape(n_rooms, n_src)
    if p.features.active_sources is None:
        return np.ones((n_rooms, n_src), dtype=bool)
    return draw_active(p, split_seed, np.arange(n_rooms))


def _room_condition(p: Params, split_seed: int, room: int, n_src: int):
    """(rng, condition) of ``room`` of a split mixed with ``augment``: the condition is the
    first draw of the room's own stream, the rest of which renders its mixture."""
    rng = np.random.default_rng([p.augment.seed, split_seed, room])
    return rng, draw_condition(rng, p.augment, n_src, p.features.sir_db, p.features.active_sources)


def _dry(p: Params, seed: int, split_seed: int, rooms: np.ndarray, n_src: int, n: int) -> np.ndarray:
    """(B, n_src, n) dry signals of ``rooms`` (sorted indices), read in runs of consecutive rooms
    (a room's signals depend on its index only)."""
    runs = np.split(rooms, np.flatnonzero(np.diff(rooms) != 1) + 1)
    return np.concatenate(
        [
            source_signals(
                p.sources.kind,
                p.sources.folder,
                seed,
                split_seed,
                int(run[0]),
                len(run),
                n_src,
                n,
                p.simulate.sample_rate,
            )  # fmt: skip
            for run in runs
        ]
    )


def feature_batches(
    p: Params, split: str, rirs: np.ndarray, rooms: np.ndarray | None = None
) -> Iterator[FeatureBatch]:
    """Mix and featurise ``rooms`` (sorted indices; None = all) of a split in batches of
    ``features.batch_size``.

    Each room draws its sources from (sources.seed, split seed, room) and its levels and noise
    from (features.seed, split seed, room), so results depend neither on the batch size nor on
    which other rooms are mixed.
    """
    cfg = FeatureConfig.from_params(p)
    n_samples = p.n_samples
    n_rooms, n_src, _, n_taps = rirs.shape
    rooms = np.arange(n_rooms) if rooms is None else np.asarray(rooms, dtype=np.int64)
    split_seed = p.simulate.split(split).seed
    aug = p.augment if split in p.augment.splits else None
    for first in range(0, len(rooms), p.features.batch_size):
        batch = rooms[first : first + p.features.batch_size]
        dry = _dry(p, p.sources.seed, split_seed, batch, n_src, n_samples + n_taps - 1)
        active = np.ones((len(batch), n_src), dtype=bool)
        with torch.inference_mode():
            rir_batch = torch.from_numpy(np.array(rirs[batch]))
            images = reverberant_images(rir_batch, torch.from_numpy(dry))
            if aug is None:
                rngs = [np.random.default_rng([p.features.seed, split_seed, int(i)]) for i in batch]
                if p.features.active_sources is not None:
                    active = draw_active(p, split_seed, batch)
                mixture = mix_sources(images, rngs, p.features.sir_db, p.features.snr_db, cfg, active)
            else:
                mixture = _augmented(
                    p, aug, split_seed, batch, images.numpy(), rir_batch.numpy(), active, cfg
                )
            feats = features_from_audio(mixture, cfg)
        yield FeatureBatch(batch, feats.numpy().astype(np.float16), mixture.numpy(), active)


def _augmented(p: Params, aug, split_seed: int, rooms: np.ndarray, images, rirs, active, cfg) -> torch.Tensor:
    """Mixtures of ``rooms`` under their drawn conditions (see :mod:`dualmic.data.augment`);
    marks the silent sources in ``active``."""
    count, n_src, _, n = images.shape
    babble = _dry(p, aug.seed, split_seed, rooms, aug.babble_talkers, n)
    out = np.empty((count, 2, n), dtype=np.float32)
    for b in range(count):
        rng, cond = _room_condition(p, split_seed, int(rooms[b]), n_src)
        active[b] = np.isin(np.arange(n_src), cond.talkers)
        out[b] = render(images[b].astype(np.float64), rirs[b], cond, rng, cfg, babble[b])
    return torch.from_numpy(out)
