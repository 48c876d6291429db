"""Stage train: the SSL model on the train split's features.

Reads <features_dir>/{features,labels,angles,rooms}.npy (with ``train.mixing: online`` the
training rooms are instead re-mixed every epoch from <rirs_dir>/train and the talker pool, see
:mod:`dualmic.data.online`, and the features stage featurised only the validation rooms, which
validation reads); writes <out>/model.pt
(best epoch on a validation split carved from the TRAIN rooms), <out>/checkpoint.pt (last epoch,
resumed by an interrupted run) and DVCLive logs in <live_dir>. Under torchrun it trains with DDP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dualmic.core.device import autocast_dtype, resolve_device
from dualmic.core.errors import DualmicError
from dualmic.core.files import load_npy
from dualmic.core.labels import LabelCoding
from dualmic.core.params import load_params
from dualmic.core.rooms_split import split_train_val
from dualmic.learn.checkpoint import run_fingerprint
from dualmic.learn.crops import FeatureRooms
from dualmic.learn.distributed import setup, teardown
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import model_config, model_meta
from dualmic.learn.trainer import TrainData, Trainer, check_features


def run(
    params: Path = Path("params.yaml"),
    features_dir: Path = Path("data/features/train"),
    out: Path = Path("models"),
    live_dir: Path | None = Path("metrics/train"),
    rirs_dir: Path = Path("data/rirs/train"),
    speech_dir: Path = Path("data/speech"),
) -> dict:
    p = load_params(params)
    ctx = setup(resolve_device(p.train.device))
    labels = load_npy(features_dir / "labels.npy", mmap=False)
    angles = load_npy(features_dir / "angles.npy", mmap=False)
    features = _room_features(p, features_dir, len(labels))
    cfg = model_config(p)
    check_features(features, labels, cfg, features_dir)
    torch.manual_seed(p.train.seed)  # initial weights
    model = SSLModel(cfg)
    # every params section that shapes the training data or the run (all but the conditions test,
    # the export and the decoding), so a checkpoint never resumes a run on other data
    # (labels.decode only reads the outputs of a trained model)
    exclude = {"conditions": True, "export": True, "labels": {"decode"}}
    # train.precision auto resolves per machine: the resolved one is what a checkpoint was made in
    precision = str(autocast_dtype(ctx.device, p.train.precision) or "fp32")
    fp = run_fingerprint({"model": cfg.to_dict(), "precision": precision, **p.model_dump(exclude=exclude)})
    mixer = _online_mixer(p, rirs_dir, speech_dir, len(labels)) if p.train.mixing == "online" else None
    data = TrainData(features, labels, angles, p.hop_frames, LabelCoding.from_params(p), mixer)
    live = _live(live_dir) if ctx.is_main and live_dir is not None else None
    meta = model_meta(p)
    if mixer is not None and mixer.mic_distance is not None:  # some rooms heard through a head
        meta["head_ear_distance_m"] = round(float(mixer.mic_distance.max()), 6)
    summary = Trainer(model, data, p.train, ctx, out, meta, fp, live).fit()
    if live is not None:
        live.summary.update(summary)
        live.end()
    teardown(ctx)
    return summary


def _room_features(p, features_dir: Path, n_rooms: int):
    """The train split's cached features by room: all rooms, or (``train.mixing: online``) the
    validation rooms the features stage featurised (its rooms.npy), which must be this run's."""
    features = load_npy(features_dir / "features.npy")
    rooms_path = features_dir / "rooms.npy"
    if not rooms_path.is_file() or len(features) == n_rooms:
        return features
    rooms = load_npy(rooms_path, mmap=False)
    if len(rooms) != len(features):
        raise DualmicError(
            f"{features_dir}: rooms.npy names {len(rooms)} rooms but features.npy holds {len(features)}; "
            "re-run the features stage"
        )
    if p.train.mixing != "online":
        raise DualmicError(
            f"{features_dir} holds the features of {len(rooms)} of the {n_rooms} train rooms (the "
            "validation rooms of train.mixing online) but train.mixing is cached; re-run the features stage"
        )
    val = split_train_val(n_rooms, p.train.val_fraction, p.train.seed)[1]
    if not np.isin(val, rooms).all():
        raise DualmicError(
            f"{features_dir} holds the features of other validation rooms than train.seed "
            f"{p.train.seed} and train.val_fraction {p.train.val_fraction} pick; re-run the features stage"
        )
    return FeatureRooms(features, rooms, n_rooms)


def _online_mixer(p, rirs_dir: Path, speech_dir: Path, n_rooms: int):
    """The on-the-fly mixer of the train split's rooms (imported late: cached runs do not need it)."""
    from dualmic.data.online import OnlineMixer
    from dualmic.data.pool import build_pool
    from dualmic.sim.rooms import Rooms

    rirs = load_npy(rirs_dir / "rirs.npy")
    if len(rirs) != n_rooms:
        raise DualmicError(
            f"{rirs_dir}/rirs.npy holds {len(rirs)} rooms but the train features {n_rooms}; "
            "re-run the simulate and features stages"
        )
    rooms = Rooms.read(rirs_dir / "rooms.csv", p.simulate.mic_offsets, len(rirs))
    pool = build_pool(p.online, p.simulate.sample_rate, speech_dir)
    noise_path = rirs_dir / "noise_rirs.npy"
    noise_rirs = load_npy(noise_path) if noise_path.is_file() else None
    if noise_rirs is not None and len(noise_rirs) != len(rirs):
        raise DualmicError(
            f"{noise_path} holds {len(noise_rirs)} rooms, rirs.npy {len(rirs)}; re-run simulate"
        )
    distance = None
    if rooms.head is not None:  # a split that mixes heads in: each room's own receivers' distance
        distance = np.linalg.norm(rooms.mic_pos[:, 1] - rooms.mic_pos[:, 0], axis=-1)
    angles = rooms.angles(p.labels.angle, stored=True)
    return OnlineMixer(rirs, angles, pool, p, noise_rirs=noise_rirs, mic_distance_m=distance)


def _live(directory: Path):
    """A fresh DVCLive log; a resumed run replays its earlier epochs from the checkpoint."""
    from dvclive import Live  # imported late: it is slow to import and only rank 0 needs it

    return Live(str(directory), save_dvc_exp=False, dvcyaml=None)
