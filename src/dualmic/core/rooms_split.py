"""Which training rooms select the model, and which rooms the features stage featurises.

The train stage holds out ``train.val_fraction`` of the TRAIN split's rooms (drawn from
``train.seed``) to pick its best epoch. With ``train.mixing: online`` the other rooms are re-mixed
from their RIRs in every epoch and their cached features are never read, so the features stage
featurises the held-out rooms only; with ``cached`` mixing it featurises them all.
"""

from __future__ import annotations

import numpy as np


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted (train, val) room indices of the train split."""
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    order = np.random.default_rng([seed, 0x7A1]).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def featurised_rooms(p, split: str, n_rooms: int) -> np.ndarray:
    """Sorted indices of the rooms of ``split`` whose features the features stage writes: the
    validation rooms of the train split when it is mixed online, else every room."""
    if split == "train" and p.train.mixing == "online" and n_rooms > 1:
        return split_train_val(n_rooms, p.train.val_fraction, p.train.seed)[1]
    return np.arange(n_rooms)
