"""Stage features@<split>: mixtures of the split's rooms and the model's input features.

Reads <rirs>/<split>/{rirs.npy,rooms.csv}; writes <out>/<split>/: features.npy (k, C, F, T)
float16 of k featurised rooms, rooms.npy (k,) int64 their indices in the split, labels.npy (n, S)
int64 classes and angles.npy (n, S) float32 degrees of every room (both sorted ascending, of the
``labels.angle`` angle; a silent slot is NaN, class ``labels.n_classes``), and mix.npy (k, 2,
samples) float32 for the splits in ``features.keep_mix``.

Every room is featurised (k = n) except in the train split mixed online (``train.mixing:
online``), whose training rooms are re-mixed in every epoch: there only the validation rooms
are (:func:`dualmic.core.rooms_split.featurised_rooms`), a tenth of the work and of the disk.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from dualmic.core.files import load_npy, npy_appender, save_npy
from dualmic.core.params import load_params
from dualmic.core.progress import progress_bar
from dualmic.core.rooms_split import featurised_rooms
from dualmic.data.features import FeatureConfig
from dualmic.data.mixtures import active_labels, feature_batches, split_active, split_labels
from dualmic.sim.rooms import Rooms


def run(
    split: str,
    params: Path = Path("params.yaml"),
    rirs_dir: Path = Path("data/rirs"),
    out: Path = Path("data/features"),
) -> None:
    p = load_params(params)
    p.simulate.split(split)  # an unknown split is a one-line error
    rirs = load_npy(rirs_dir / split / "rirs.npy")
    rooms = Rooms.read(rirs_dir / split / "rooms.csv", p.simulate.mic_offsets, len(rirs))
    angles, classes = split_labels(p, rooms)
    cfg = FeatureConfig.from_params(p)
    n_rooms, n_samples = len(rirs), p.n_samples
    chosen = featurised_rooms(p, split, n_rooms)
    shape = (len(chosen), cfg.n_channels, cfg.n_freq, cfg.n_frames(n_samples))
    dest = out / split
    with contextlib.ExitStack() as stack:
        # appended in room order with plain writes: a memmap's written pages would stay in the
        # stage's resident memory (1.9 GB of float16 features for 3000 rooms of [ipd, logmag])
        feats = stack.enter_context(npy_appender(dest / "features.npy", shape, "float16"))
        mix = None
        if split in p.features.keep_mix:
            mix = stack.enter_context(npy_appender(dest / "mix.npy", (len(chosen), 2, n_samples), "float32"))
        bar = stack.enter_context(progress_bar(f"features {split}", len(chosen)))
        active = split_active(p, split, n_rooms)  # every room's talkers, also those not mixed here
        for batch in feature_batches(p, split, rirs, chosen):  # batches in room order
            feats(batch.features)
            if mix is not None:
                mix(batch.mixture)
            bar(len(batch.features))
        if not active.all():  # rooms with silent sources (features.active_sources)
            angles, classes = active_labels(rooms.angles(p.labels.angle, stored=True), active, p)
        save_npy(dest / "rooms.npy", chosen.astype(np.int64))
        save_npy(dest / "labels.npy", classes)
        save_npy(dest / "angles.npy", angles)
