"""One split of the features stage: labels from rooms.csv, mixtures and features in batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dualmic.errors import DualmicError
from dualmic.features import FeatureConfig, features_from_audio, mix_sources, reverberant_images
from dualmic.labels import angle_to_class
from dualmic.params import Params
from dualmic.sources import source_signals


def feature_config(p: Params) -> FeatureConfig:
    mics = np.asarray(p.simulate.mic_offsets)
    return FeatureConfig(
        sample_rate=p.simulate.sample_rate,
        n_fft=p.features.n_fft,
        hop=p.features.hop,
        channels=p.features.channels,
        mic_distance_m=float(np.linalg.norm(mics[1] - mics[0])),
        speed_of_sound=p.simulate.speed_of_sound,
    )


def source_angles(rooms: pd.DataFrame, angle: str, n_sources: int) -> np.ndarray:
    """The label angle of every source, sorted ascending per room: (n_rooms, S) degrees."""
    cols = [f"src{k}_{angle}_deg" for k in range(n_sources)]
    missing = [c for c in cols if c not in rooms.columns]
    if missing:
        raise DualmicError(f"rooms.csv lacks column {missing[0]}; re-run the simulate stage")
    return np.sort(rooms[cols].to_numpy(dtype=np.float64), axis=1)


def split_labels(p: Params, rooms: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(angles float32 (n, S), classes int64 (n, S)), both sorted ascending by angle."""
    angles = source_angles(rooms, p.labels.angle, p.simulate.n_sources)
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
    cfg = feature_config(p)
    n_samples = int(round(p.features.duration_s * p.simulate.sample_rate))
    n_rooms, n_src, _, n_taps = rirs.shape
    split_seed = p.simulate.splits[split].seed
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
