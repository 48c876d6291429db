"""The conditions test's mixtures and scores: each condition's rooms (:mod:`dualmic.scoring.conditions`)
with espeak-ng talkers, mixed as the features stage mixes and changed as the condition says, then
scored for the model, SRP-PHAT and the constant guess."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torchaudio.functional as AF

from dualmic.core.labels import LabelCoding, source_counts
from dualmic.core.params import Params
from dualmic.data.espeak import TalkerPool, talker_specs
from dualmic.data.features import FeatureConfig, features_from_audio, mix_sources, reverberant_images
from dualmic.data.perturb import add_at_snr, colored_noise, diffuse_pair, mic_mismatch
from dualmic.learn.inference import model_answers, room_log_probs
from dualmic.scoring import metrics
from dualmic.scoring.baselines import method_angles
from dualmic.scoring.conditions import (
    CONDITIONS,
    MIC_ALLPASS,
    MIC_GAIN_DB,
    MIC_TILT,
    N_SLOTS,
    TURN_OVERLAP_S,
    Condition,
    condition_rirs,
    condition_rooms,
    condition_taps,
)
from dualmic.sim.rooms import Rooms

KEPT_SCORES = ("mae_deg", "acc_10deg")  # of metrics.summary, per condition and method
_MIX_STREAM = 0xC0D2  # talkers, levels, noise and mic errors
_EPS = 1e-8


def talker_pool(p: Params) -> TalkerPool:
    """The espeak-ng talkers of ``conditions.*``, each long enough for the longest RIRs of any
    condition (so the talkers do not depend on which conditions run)."""
    longest = max(condition_taps(c, p) for c in CONDITIONS.values())
    seconds = p.features.duration_s + longest / p.simulate.sample_rate + 0.5
    c = p.conditions
    return TalkerPool(talker_specs(c.voices, c.n_talkers, c.seed, seconds), p.simulate.sample_rate)


@dataclass
class Rendered:
    """A condition's rooms, labels, mixtures and model inputs."""

    rooms: Rooms
    angles: np.ndarray  # (N, 2) degrees of labels.angle, sorted per room; NaN = no talker
    mixture: np.ndarray  # (N, 2, n_samples) float32, unit RMS
    speech: np.ndarray  # (N, 2, n_samples) float32: the talkers' part of mixture (after mic errors)
    noise: np.ndarray  # (N, 2, n_samples) float32: the rest, mixture - speech
    features: np.ndarray  # (N, C, F, T) float16, as the features stage stores them


def _noise(
    cond: Condition,
    rng: np.random.Generator,
    pool: TalkerPool,
    talkers: np.ndarray,
    noise_rirs: np.ndarray | None,
    babble_talkers: int,
    cfg: FeatureConfig,
    n: int,
) -> np.ndarray:
    """The noise of one room: (2, n) at any level."""
    if cond.noise == "diffuse":
        pink = colored_noise(rng, 2, n, "pink")
        return diffuse_pair(pink[0], pink[1], cfg.mic_distance_m, cfg.sample_rate, cfg.speed_of_sound)
    if cond.noise == "babble":
        others = np.setdiff1d(np.arange(len(pool)), talkers)
        picks = rng.choice(others, size=2 * babble_talkers, replace=False)
        voices = pool.excerpts(rng, picks, n)
        halves = voices[:babble_talkers].sum(0), voices[babble_talkers:].sum(0)
        return diffuse_pair(*halves, cfg.mic_distance_m, cfg.sample_rate, cfg.speed_of_sound)
    if cond.noise == "point":
        dry = colored_noise(rng, 1, n + noise_rirs.shape[-1] - 1, "pink").astype(np.float32)
        image = reverberant_images(torch.from_numpy(noise_rirs[None, None]), torch.from_numpy(dry[None]))
        return image[0, 0].double().numpy()
    if cond.noise == "sensor":
        return colored_noise(rng, 2, n, "white")
    raise ValueError(f"unknown noise {cond.noise!r}")


def take_turns(dry: np.ndarray, taps: int, sample_rate: int) -> np.ndarray:
    """Dry talkers (B, 2, n + taps - 1) who take turns: talker 0 falls silent and talker 1 starts
    around the middle of the mixture's ``n`` samples, both speaking for TURN_OVERLAP_S. (Dry
    sample ``taps - 1 + i`` is heard at mixture sample ``i``; a talker's reverberation outlasts
    its turn, as in a room.)"""
    n = dry.shape[-1] - taps + 1
    half = round(TURN_OVERLAP_S * sample_rate / 2)
    switch = taps - 1 + n // 2
    out = dry.copy()
    out[:, 0, switch + half :] = 0.0
    out[:, 1, : switch - half] = 0.0
    return out


def recorded_at(dry: np.ndarray, source_rate: int, sample_rate: int) -> np.ndarray:
    """Dry talkers (..., n) at ``sample_rate`` as if recorded at ``source_rate``: resampled down
    and back (torchaudio's windowed-sinc resampler), so nothing is left above source_rate / 2."""
    x = torch.from_numpy(np.ascontiguousarray(dry))
    down = AF.resample(x, sample_rate, source_rate)
    return AF.resample(down, source_rate, sample_rate)[..., : dry.shape[-1]].numpy()


def render_batch(
    cond: Condition, p: Params, pool: TalkerPool, start: int, count: int, device: str | torch.device = "cpu"
) -> Rendered:
    """Rooms ``start .. start+count-1`` of ``cond``: geometry, labels, mixtures and features."""
    cfg = FeatureConfig.from_params(p)
    rooms = condition_rooms(cond, p, start, count)
    rirs = condition_rirs(cond, p, rooms, start, device)
    n, taps = p.n_samples, rirs.shape[-1]
    seed = p.conditions.room_seed(cond.name)
    rngs = [np.random.default_rng([seed, start + b, _MIX_STREAM]) for b in range(count)]
    talkers = [rng.choice(len(pool), size=cond.talkers, replace=False) for rng in rngs]
    dry = np.stack([pool.excerpts(rng, t, n + taps - 1) for rng, t in zip(rngs, talkers, strict=True)])
    if cond.turns:
        dry = take_turns(dry, taps, p.simulate.sample_rate)
    if cond.source_rate is not None:
        dry = recorded_at(dry, cond.source_rate, p.simulate.sample_rate)
    with torch.inference_mode():
        images = reverberant_images(
            torch.from_numpy(np.ascontiguousarray(rirs[:, : cond.talkers])),
            torch.from_numpy(dry.astype(np.float32)),
        )
        speech = mix_sources(images, rngs, p.features.sir_db, None, cfg).double().numpy()

    out = {k: np.empty((count, 2, n), dtype=np.float32) for k in ("mixture", "speech", "noise")}
    for b, rng in enumerate(rngs):
        talk = speech[b]
        if cond.mic_mismatch:
            gain = rng.uniform(-MIC_GAIN_DB, MIC_GAIN_DB, 2)
            tilt = rng.uniform(-MIC_TILT, MIC_TILT, 2)
            allpass = rng.uniform(-MIC_ALLPASS, MIC_ALLPASS, 2)
            talk = mic_mismatch(talk, gain, tilt, allpass)
        mix = talk
        if cond.noise is not None:
            noise_rirs = rirs[b, cond.talkers] if cond.noise == "point" else None
            noise = _noise(cond, rng, pool, talkers[b], noise_rirs, p.conditions.babble_talkers, cfg, n)
            mix = add_at_snr(talk, noise, cond.snr_db)
        scale = 1.0 / (np.sqrt(np.mean(mix**2)) + _EPS)
        out["mixture"][b] = mix * scale
        out["speech"][b] = talk * scale
        out["noise"][b] = (mix - talk) * scale

    angles = np.full((count, N_SLOTS), np.nan)  # NaN: a slot without a talker
    angles[:, : cond.talkers] = np.sort(rooms.angles(p.labels.angle)[:, : cond.talkers], axis=1)
    with torch.inference_mode():
        feats = features_from_audio(torch.from_numpy(out["mixture"]), cfg).numpy().astype(np.float16)
    return Rendered(rooms, angles, out["mixture"], out["speech"], out["noise"], feats)


def render_condition(
    cond: Condition,
    p: Params,
    pool: TalkerPool,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
) -> Rendered:
    """All ``conditions.n_rooms`` rooms of ``cond``, in batches of ``simulate.batch_size``."""
    parts = []
    n_rooms, size = p.conditions.n_rooms, p.simulate.batch_size
    for start in range(0, n_rooms, size):
        parts.append(render_batch(cond, p, pool, start, min(size, n_rooms - start), device))
        if progress is not None:
            progress(len(parts[-1].angles))
    if len(parts) == 1:
        return parts[0]
    rooms = replace(
        parts[0].rooms,
        **{
            f: np.concatenate([getattr(r.rooms, f) for r in parts])
            for f in ("room_dim", "rt60", "array_center", "array_rot_deg", "mic_pos", "src_pos")
        },
        head=None if parts[0].rooms.head is None else np.concatenate([r.rooms.head for r in parts]),
        stored_angles={},
    )
    arrays = {
        f: np.concatenate([getattr(r, f) for r in parts])
        for f in ("angles", "mixture", "speech", "noise", "features")
    }
    return Rendered(rooms=rooms, **arrays)


# --------------------------------------------------------------------------- scoring


def predictions(
    rendered: Rendered,
    net,
    meta: dict,
    p: Params,
    train_angles: np.ndarray,
    device: str | torch.device = "cpu",
    srp_phat: bool = True,
) -> dict[str, np.ndarray]:
    """Sorted angles (N, 2) of every method (NaN = no source): the model (pooled windows every
    evaluate.hop_s, with the swapped channels too when evaluate.mirror; a counting model finds
    the count, talkers who take turns too when evaluate.turns, and ``model_known_count`` is told
    it), SRP-PHAT (when ``srp_phat``) on the
    mixtures, and the train set's median angles; the
    baselines are told the count."""
    coding = LabelCoding.from_params(p)
    ev = p.evaluate
    log_probs, evidence = room_log_probs(
        net, rendered.features, p.hop_frames, coding, device=device, mirror=ev.mirror, turns=ev.turns
    )
    true_counts = source_counts(rendered.angles)
    answers = model_answers(log_probs, coding, true_counts, evidence, ev.presence)
    mixture = rendered.mixture if srp_phat else None
    distance = meta["mic_distance_m"]  # the model's; SRP-PHAT is told a head's ear distance
    if rendered.rooms.head is not None and rendered.rooms.head.any():
        distance = float(np.linalg.norm(rendered.rooms.mic_pos[0, 1] - rendered.rooms.mic_pos[0, 0]))
    pred = method_angles(answers.pop("model"), mixture, distance, p, train_angles, counts=true_counts)
    pred.update(answers)
    return pred


def condition_scores(
    name: str,
    pred: dict[str, np.ndarray],
    angles: np.ndarray,
    period: float | None = None,
    elevation: np.ndarray | None = None,
) -> dict:
    """Flat scores ``<name>.<method>.mae_deg`` / ``.acc_10deg`` (sources of correctly counted
    rooms), ``<name>.n_rooms``, for a counting model ``<name>.model.count_acc`` and, on a circular
    label (``period``), the model's ``front_back_confusion`` (and, given each slot's
    ``elevation``, ``front_back_confusion_horizontal``: the sources within 30° of the horizontal)."""
    out: dict = {f"{name}.n_rooms": int(len(angles))}
    for method, pr in pred.items():
        summary = metrics.summary(pr, angles, f"{name}.{method}", period)
        out.update({f"{name}.{method}.{k}": summary[f"{name}.{method}.{k}"] for k in KEPT_SCORES})
    if "model_known_count" in pred:
        count = metrics.count_summary(pred["model"], angles, f"{name}.model", period)
        out[f"{name}.model.count_acc"] = count[f"{name}.model.count_acc"]
    if period is not None:
        fb = metrics.front_back_summary(pred["model"], angles, f"{name}.model", true_elevation_deg=elevation)
        out.update({k: v for k, v in fb.items() if ".front_back_confusion" in k})
    return out
