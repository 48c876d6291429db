"""Training examples: random crops of model windows from memory-mapped features (or room
indices that an online mixer turns into fresh mixtures).

Everything random is drawn from ``train.seed``: the crop of each example (per epoch and
example; the validation split is :func:`dualmic.core.rooms_split.split_train_val`), so a
resumed run sees what an uninterrupted one does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class CropDataset(Dataset):
    """Random windows of ``window`` frames from memory-mapped features (n, C, F, T), with their
    rooms' slot angles (NaN = no source) as labels.

    The crop of example ``i`` in epoch ``e`` comes from ``default_rng([seed, e, i])``, so it does
    not depend on batch order, process count or restarts.
    """

    def __init__(self, features: np.ndarray, angles: np.ndarray, indices: np.ndarray, window: int, seed: int):
        self.features, self.angles, self.indices = features, angles, indices
        self.window, self.seed, self.epoch = window, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        n_frames = self.features.shape[-1]
        start = 0
        if n_frames > self.window:
            start = int(
                np.random.default_rng([self.seed, self.epoch, i]).integers(n_frames - self.window + 1)
            )
        x = torch.from_numpy(np.asarray(self.features[i, ..., start : start + self.window], dtype=np.float32))
        if x.shape[-1] < self.window:
            x = torch.nn.functional.pad(x, (0, self.window - x.shape[-1]))
        return x, torch.from_numpy(np.asarray(self.angles[i], dtype=np.float32))


class RoomIndices(Dataset):
    """The training room indices themselves, for a loader whose ``collate`` mixes each batch on
    the fly (``mixer.batch(rooms)``, see :mod:`dualmic.data.online`); ``set_epoch`` passes the
    epoch on, so every epoch draws new mixtures."""

    def __init__(self, indices: np.ndarray, mixer):
        self.indices, self.mixer = indices, mixer

    def set_epoch(self, epoch: int) -> None:
        self.mixer.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> int:
        return int(self.indices[k])


class FeatureRooms:
    """The cached features of some rooms of a split (``rooms``, sorted indices), indexed by room:
    ``view[indices]`` gives the rows of those rooms, so validation reads a split whose features
    stage featurised only its validation rooms (``train.mixing: online``) as if it held them all.
    """

    def __init__(self, features: np.ndarray, rooms: np.ndarray, n_rooms: int):
        self.features = features
        self.row = np.full(n_rooms, -1, dtype=np.int64)
        self.row[np.asarray(rooms, dtype=np.int64)] = np.arange(len(rooms))
        self.shape = (n_rooms, *features.shape[1:])
        self.ndim, self.dtype = features.ndim, features.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rooms) -> np.ndarray:
        rows = self.row[rooms]
        if np.any(rows < 0):
            raise IndexError(
                f"rooms {np.atleast_1d(rooms)[np.atleast_1d(rows) < 0][:5].tolist()} have no cached features"
            )
        return self.features[rows]
