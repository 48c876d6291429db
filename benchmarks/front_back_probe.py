"""Is front/back in a head's features? A linear probe on binaural rooms, one talker each.

A head tells front from back by the pinna: the same lateral angle reaches the ears with other
level differences per frequency in front than behind (on the MIT KEMAR at 16 kHz, 7-15 dB apart
at 4-8 kHz). This script asks how much of that a simple reader of the features can use, before
any model: it simulates ``--rooms`` binaural rooms of the train split's kind (the head of
``simulate.array.sofa``, one recorded talker from ``data/speech`` per room), computes dualmic's
features, averages per frequency bin over time the interaural level difference (ILD) and each
ear's log-magnitude, weighted one of three ways, folds left-side sources onto the right (a
source on the left has the mirrored cues), and fits a logistic regression (front or back) on 70
% of the rooms. It prints the front/back confusion on the other 30 %: over the sources more than
10 degrees from the interaural axis, and over those also within 30 degrees of the horizontal.

Weightings of the time-frequency bins:

* ``loud``: the louder half of the frames (what a plain average sees);
* ``coherent``: interaural coherence over 3 frames, to the 8th power, times ``loud``;
* ``onset``: each bin's rise of log-magnitude over its previous 3 frames (the ``onset``
  channels of ``features.channels``): where the direct sound arrives before its reflections.

    .venv/bin/python benchmarks/front_back_probe.py                    # ~1 min on 2 cores
    .venv/bin/python benchmarks/front_back_probe.py --rt60 0.05 0.1    # nearly anechoic rooms

Needs ``data/speech`` (``dvc repro speech``) and the SOFA file (``make hrtf-deps``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dualmic.core.onsets import onsets  # noqa: E402
from dualmic.core.params import parse_params  # noqa: E402
from dualmic.data.features import FeatureConfig, stft  # noqa: E402
from dualmic.sim.batches import simulate_batches  # noqa: E402

WEIGHTINGS = ("loud", "coherent", "onset")
HEAD_EARS = [[-0.09, 0.0, 0.0], [0.09, 0.0, 0.0]]  # the MIT KEMAR's ears (simulate.mic_offsets)
TRAIN_FRACTION = 0.7
RIDGE = 0.1  # L2 weight of the logistic regression


def binaural_params(n_rooms: int, rt60: tuple[float, float] | None):
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    sim = raw["simulate"]
    sim["array"]["kind"], sim["mic_offsets"] = "hrtf", HEAD_EARS
    sim["splits"]["train"].update(n_rooms=n_rooms, rt60_range=list(rt60) if rt60 else None)
    raw["features"]["channels"] = ["ipd", "logmag"]
    return parse_params(raw)


def room_features(audio: torch.Tensor, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """Per weighting, [ILD per bin, left-ear and right-ear log-magnitude per bin minus their
    mean], folded so that the source is on the right (positive mean low-band ILD)."""
    spec = stft(audio, cfg)  # (2, F, T)
    logmag = torch.log(spec.abs() + 1e-5)
    energy = logmag.mean(0)
    loud = (energy > energy.median(dim=1, keepdim=True).values).float()

    def smooth(z):
        return torch.nn.functional.avg_pool1d(z[:, None], 3, 1, 1, count_include_pad=False)[:, 0]

    cross = spec[1] * spec[0].conj()
    power = smooth(spec[0].abs() ** 2) * smooth(spec[1].abs() ** 2)
    coherence = (smooth(cross.real) ** 2 + smooth(cross.imag) ** 2) / (power + 1e-12)
    weights = {"loud": loud, "coherent": coherence**8 * loud, "onset": onsets(logmag).mean(0)}
    out = {}
    for name, w in weights.items():
        total = w.sum(1) + 1e-9
        ild = ((logmag[1] - logmag[0]) * w).sum(1) / total
        ears = (logmag * w).sum(2) / total
        ears = ears - ears.mean()
        if ild[: len(ild) // 4].mean() < 0:  # source on the left: mirror onto the right
            ild, ears = -ild, ears.flip(0)
        out[name] = torch.cat([ild, ears.flatten()]).numpy()
    return out


def confusion(x: np.ndarray, front: np.ndarray, judged: np.ndarray, n_train: int) -> float:
    """Front/back confusion of a ridge logistic regression fitted on the first ``n_train`` rows,
    on the ``judged`` rows after them."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    mu, sd = xt[:n_train].mean(0), xt[:n_train].std(0) + 1e-6
    xt = (xt - mu) / sd
    y = torch.as_tensor(front, dtype=torch.float64)
    w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500)

    def loss():
        opt.zero_grad()
        z = xt[:n_train] @ w + b
        value = torch.nn.functional.binary_cross_entropy_with_logits(z, y[:n_train]) + RIDGE * (w**2).sum()
        value.backward()
        return value

    opt.step(loss)
    with torch.no_grad():
        wrong = ((xt @ w + b) > 0).numpy() != front
    test = judged & (np.arange(len(x)) >= n_train)
    return float(wrong[test].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rooms", type=int, default=1500, help="binaural rooms simulated (default 1500)")
    ap.add_argument("--rt60", type=float, nargs=2, default=None, help="RT60 range in s (default params')")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds of talker per room (default 2)")
    args = ap.parse_args()
    p = binaural_params(args.rooms, tuple(args.rt60) if args.rt60 else None)
    cfg = FeatureConfig.from_params(p)
    clips = sorted((ROOT / "data" / "speech" / "clips").glob("*.flac"))
    if not clips:
        sys.exit("error: data/speech/clips holds no clips; run `dvc repro speech` first")
    n = int(args.seconds * p.simulate.sample_rate)
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {k: [] for k in WEIGHTINGS}
    direction = []
    for _, rooms, rirs in simulate_batches(p.simulate, "train", torch.device("cpu")):
        direction.append(rooms.src_direction_array_frame()[:, 0])
        for b in range(len(rooms)):
            clip = sf.read(clips[rng.integers(len(clips))], dtype="float32")[0]
            start = rng.integers(0, max(len(clip) - n, 1))
            dry = torch.as_tensor(clip[start : start + n])
            audio = AF.fftconvolve(dry[None], torch.as_tensor(rirs[b, 0]))[:, : len(dry)]
            for name, row in room_features(audio, cfg).items():
                rows[name].append(row)
    d = np.concatenate(direction)
    unit = d / np.linalg.norm(d, axis=1, keepdims=True)
    lateral = np.degrees(np.arccos(unit[:, 0]))
    elevation = np.degrees(np.arcsin(unit[:, 2]))
    judged = (lateral > 10) & (lateral < 170)
    level = judged & (np.abs(elevation) <= 30)
    n_train = int(TRAIN_FRACTION * len(d))
    rt = p.simulate.split("train").rt60_range or p.simulate.rt60_range
    print(
        f"{len(d)} binaural rooms, one talker, RT60 {rt[0]:g}-{rt[1]:g} s; trained on {n_train}, "
        f"scored on {int(judged[n_train:].sum())} ({int(level[n_train:].sum())} within 30 deg of level)"
    )
    print(f"{'weighting':10s} {'confusion':>10s} {'within 30 deg':>14s}")
    for name in WEIGHTINGS:
        x = np.asarray(rows[name])
        front = unit[:, 1] > 0
        every, near = confusion(x, front, judged, n_train), confusion(x, front, level, n_train)
        print(f"{name:10s} {every:10.3f} {near:14.3f}")


if __name__ == "__main__":
    main()
