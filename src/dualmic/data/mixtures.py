"""One split of the features stage: labels from rooms.csv, mixtures and features in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import angle_to_class
from dualmic.core.params import Params
from dualmic.data.features import FeatureConfig, features_from_audio, mix_sources, reverberant_images
from dualmic.data.sources import source_signals
from dualmic.sim.rooms import Rooms


def split_labels(p: Params, rooms: Rooms) -> tuple[np.ndarray, np.ndarray]:
    """(angles float32 (n, S), classes int64 (n, S)) of ``labels.angle``, both sorted ascending."""
    if rooms.n_sources != p.simulate.n_sources:
        raise DualmicError(
            f"rooms.csv has {rooms.n_sources} sources per room but simulate.n_sources is "
            f"{p.simulate.n_sources}; re-run the simulate stage"
        )
    angles = np.sort(rooms.angles(p.labels.angle), axis=1)
    classes = angle_to_class(angles, p.labels.class_width_deg, p.labels.n_classes)
    return angles.astype(np.float32), classes


@dataclass
class FeatureBatch:
    start: int
    features: np.ndarray  # (B, C, F, T) float16
    mixture: np.ndarray  # (B, 2, n_samples) float32


def feature_batches(p: Params, split: str, rirs: np.ndarray) -> Iterator[FeatureBatch]:
    """Mix and featurise a split's rooms in batches of ``features.batch_size``.

    Each room draws its sources from (sources.seed, split seed, room) and its levels and noise
    from (features.seed, split seed, room), so results do not depend on the batch size.
    """
    cfg = FeatureConfig.from_params(p)
    n_samples = p.n_samples
    n_rooms, n_src, _, n_taps = rirs.shape
    split_seed = p.simulate.split(split).seed
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
        rngs = [np.random.default_rng([p.features.seed, split_seed, i]) for i in range(start, start + count)]
        with torch.inference_mode():
            rir_batch = torch.from_numpy(np.array(rirs[start : start + count]))
            images = reverberant_images(rir_batch, torch.from_numpy(dry))
            mixture = mix_sources(images, rngs, p.features.sir_db, p.features.snr_db, cfg)
            feats = features_from_audio(mixture, cfg)
        yield FeatureBatch(start, feats.numpy().astype(np.float16), mixture.numpy())
