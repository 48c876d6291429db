"""Run SSL models on features: pooled window log-probabilities and decoded angles.

A model sees a fixed window of STFT frames. Longer inputs are cut into windows ``hop`` frames
apart, and the per-window log-probabilities are averaged (pooled) before decoding; train
(validation), evaluate, export and predict all go through :func:`pooled_log_probs`.

A pair of receivers is symmetric under swapping them: the recording with its channels swapped
is the recording of the mirrored scene, every angle ``a`` becoming ``180 - a``. So
:func:`symmetric_log_probs` (``evaluate.mirror``) also scores the swapped channels, maps that
answer back (classes mirrored, slots matched) and averages the two: a two-view ensemble of one
model at twice the inference cost, with no training change.

Pooling the windows' log-probabilities suits talkers who speak through the whole input. Two
people in conversation take turns: each window hears one of them, the pooled slots settle on
whichever spoke more and the other is lost. :func:`add_turn_talkers` (``evaluate.turns``) adds, to
what the pooled slots found, a talker that windows heard in part of the input only
(:func:`turn_evidence`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from dualmic.core.errors import DualmicError
from dualmic.core.labels import LabelCoding, angle_difference, class_centre_deg
from dualmic.core.params import Params
from dualmic.learn.model import SSLModel

# evaluate.turns: a talker heard in part of the input only (talkers who take turns) is added when
# the windows that hear a source give its class and the two beside it this much of a source on
# average, at least one window this much, and it is this far from every talker found already.
TURN_MEAN_MASS = 0.3
TURN_PEAK_MASS = 0.8
TURN_MIN_SEPARATION_DEG = 10.0


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """Start frames of the pooled windows; the last window ends at the last frame."""
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, hop))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


def mirror_features(x: torch.Tensor) -> torch.Tensor:
    """Features (B, C, F, T) of the same audio with mic 0 and mic 1 swapped: the phase
    difference changes sign (cos kept, sin negated) and the two log-magnitude channels trade
    places."""
    out = x.clone()
    out[:, 1] = -x[:, 1]
    if x.shape[1] >= 4:
        out[:, 2], out[:, 3] = x[:, 3], x[:, 2]
    return out


def _window_batches(model: SSLModel, features, hop_frames: int, batch_size: int, device, mirror: bool):
    """Yield (first row, window log-probabilities (rows, W, n_slots, n_outputs) float32 tensor)."""
    cfg = model.cfg
    n, c, f, t = features.shape
    if c != cfg.in_channels or f != cfg.n_freq:
        raise DualmicError(
            f"features have {c} channels x {f} bins but the model expects {cfg.in_channels} x "
            f"{cfg.n_freq}; features.channels / n_fft differ from the model's training params"
        )
    starts = window_starts(t, cfg.n_frames, hop_frames)
    per_batch = max(1, batch_size // len(starts))
    model.eval()
    with torch.inference_mode():
        for lo in range(0, n, per_batch):
            batch = features[lo : lo + per_batch]
            if isinstance(batch, torch.Tensor):
                x = batch.detach().float().cpu()
            else:  # a copy: memmaps are read-only, torch wants writable memory
                x = torch.from_numpy(np.array(batch, dtype=np.float32))
            if t < cfg.n_frames:
                x = torch.nn.functional.pad(x, (0, cfg.n_frames - t))
            if mirror:
                x = mirror_features(x)
            windows = torch.stack([x[..., s : s + cfg.n_frames] for s in starts], dim=1)
            logits = model(windows.flatten(0, 1).to(device)).float()
            logp = logits.log_softmax(-1).reshape(len(x), len(starts), cfg.n_slots, cfg.n_outputs)
            yield lo, logp.cpu()


def pooled_log_probs(
    model: SSLModel,
    features,
    hop_frames: int,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    mirror: bool = False,
) -> np.ndarray:
    """Average window log-probabilities: features (N, C, F, T) → (N, n_slots, n_outputs) float32.

    ``features`` is an array, a memmap or a tensor. Inputs shorter than the model window are
    zero-padded (zero cos/sin carries no phase). ``mirror``: score the channel-swapped
    features instead (:func:`mirror_features`; the answer is about the mirrored scene).
    """
    out = np.empty((features.shape[0], model.cfg.n_slots, model.cfg.n_outputs), dtype=np.float32)
    for lo, logp in _window_batches(model, features, hop_frames, batch_size, device, mirror):
        out[lo : lo + len(logp)] = logp.mean(1).numpy()
    return out


def window_log_probs(
    model: SSLModel, features, hop_frames: int, batch_size: int = 32, device: str | torch.device = "cpu"
) -> np.ndarray:
    """The log-probabilities of every window before pooling: (N, W, n_slots, n_outputs) float32."""
    return np.concatenate(
        [logp.numpy() for _, logp in _window_batches(model, features, hop_frames, batch_size, device, False)]
    )


def mirror_classes(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Outputs (..., S, K) about a mirrored scene, re-indexed so class k holds the angle
    ``180 - a`` of the class it held (class k ↔ class 180/width - 1 - k, modulo the classes on a
    circle); "no source" stays. Needs class edges symmetric about 90° (180 / width whole)."""
    half = 180.0 / coding.class_width_deg
    if abs(half - round(half)) > 1e-9:
        raise DualmicError(
            f"labels.class_width_deg {coding.class_width_deg} does not divide 180; evaluate.mirror "
            "needs classes symmetric about 90 degrees (set evaluate.mirror: false)"
        )
    k = np.arange(coding.n_classes)
    source = (round(half) - 1 - k) % coding.n_classes
    out = np.array(log_probs, copy=True)
    out[..., : coding.n_classes] = np.asarray(log_probs)[..., source]
    return out


def match_slots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b``'s slots (N, S, K) reordered to agree best with ``a``'s: for each example, the
    assignment that maximises the summed Bhattacharyya overlap of the slots' probabilities.
    (Mirroring reverses the sorted order of the talkers but not the "no source" slots after
    them, so slots are matched, not just reversed.)"""
    pa, pb = np.sqrt(pooled_probs(a)), np.sqrt(pooled_probs(b))
    overlap = np.einsum("nsk,ntk->nst", pa, pb)
    out = np.empty_like(b)
    for i in range(len(b)):
        _, cols = linear_sum_assignment(-overlap[i])
        out[i] = b[i, cols]
    return out


def symmetric_log_probs(
    model: SSLModel,
    features,
    hop_frames: int,
    coding: LabelCoding,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    mirror: bool = True,
) -> np.ndarray:
    """:func:`pooled_log_probs`, with ``mirror`` averaged with the pooled answer to the swapped
    channels mapped back to this scene (classes mirrored, slots matched): (N, n_slots, n_outputs)."""
    return room_log_probs(model, features, hop_frames, coding, batch_size, device, mirror)[0]


def room_log_probs(
    model: SSLModel,
    features,
    hop_frames: int,
    coding: LabelCoding,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    mirror: bool = False,
    turns: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The pooled log-probabilities of :func:`symmetric_log_probs` and, with ``turns``, the
    :func:`turn_evidence` of the windows (of the channels as they are), else None."""
    n = features.shape[0]
    logp = np.empty((n, model.cfg.n_slots, model.cfg.n_outputs), dtype=np.float32)
    evidence = np.empty((n, 2, coding.n_classes)) if turns else None
    for lo, windows in _window_batches(model, features, hop_frames, batch_size, device, False):
        logp[lo : lo + len(windows)] = windows.mean(1).numpy()
        if evidence is not None:
            evidence[lo : lo + len(windows)] = turn_evidence(windows.numpy(), coding)
    if mirror:
        swapped = pooled_log_probs(model, features, hop_frames, batch_size, device, mirror=True)
        logp = mirror_average(logp, swapped, coding)
    return logp, evidence


def mirror_average(log_probs: np.ndarray, swapped: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """The mean of pooled log-probabilities (N, S, K) and those of the swapped channels
    (``swapped``, about the mirrored scene) mapped back: classes mirrored, slots matched."""
    back = match_slots(log_probs, mirror_classes(swapped, coding))
    return (0.5 * (log_probs.astype(np.float64) + back)).astype(np.float32)


def slot_peak_deg(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """The angle each slot points at, ignoring "no source": (..., S) degrees.

    ``argmax``: the centre of the best angle class. ``peak``: the vertex of the parabola through
    the pooled log-probabilities of the best class and its two neighbours (exact for a Gaussian
    peak, which ``labels.sigma_deg`` trains for), kept within the best class; edge classes keep
    their centre (on a circular label, the classes wrap round and none is an edge).
    """
    logp = np.asarray(log_probs, dtype=np.float64)[..., : coding.n_classes]
    best = logp.argmax(-1)
    return _peak_angle(logp, best, coding)


def _peak_angle(logp: np.ndarray, best: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """The angle of class ``best`` (...) of log-values ``logp`` (..., n_classes), read between
    the classes as :func:`slot_peak_deg` says."""
    angle = class_centre_deg(best, coding.class_width_deg)
    if coding.decode != "peak" or coding.n_classes < 3:
        return angle
    n = coding.n_classes
    inner = best if coding.circular else np.clip(best, 1, n - 2)  # a circle has no edge class
    y0, y1, y2 = (np.take_along_axis(logp, ((inner + d) % n)[..., None], -1)[..., 0] for d in (-1, 0, 1))
    curve = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curve < 0, 0.5 * (y0 - y2) / curve, 0.0)
    shift = np.where(best == inner, np.clip(shift, -0.5, 0.5), 0.0)
    angle = angle + shift * coding.class_width_deg
    return angle % (n * coding.class_width_deg) if coding.circular else angle


def pooled_probs(log_probs: np.ndarray) -> np.ndarray:
    """Pooled log-probabilities (averaged over windows, so no longer normalised) as
    probabilities that sum to 1 per slot: (..., K) float64."""
    logp = np.asarray(log_probs, dtype=np.float64)
    prob = np.exp(logp - logp.max(-1, keepdims=True))
    return prob / prob.sum(-1, keepdims=True)


def slot_presence(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """How sure each slot is that it holds a source, 0..1: (..., S). A counting model's
    1 - p(no source); otherwise the pooled probability of the best class."""
    prob = pooled_probs(log_probs)
    return 1.0 - prob[..., coding.n_classes] if coding.counting else prob.max(-1)


def decode_angles(log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Predicted slot angles (N, S) degrees, sorted ascending; NaN (sorted last) where a counting
    model gives "no source" half or more of the slot's probability. (Not the single best class:
    a source's probability is spread over neighbouring angle classes, "no source" is one class.)"""
    angle = slot_peak_deg(log_probs, coding)
    if coding.counting:
        angle = np.where(slot_presence(log_probs, coding) <= 0.5, np.nan, angle)
    return np.sort(angle, axis=-1)


def decode_known_count(log_probs: np.ndarray, counts: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Slot angles (N, S) when the number of sources of each room is given: the ``counts[i]``
    slots most sure to hold a source (:func:`slot_presence`) give their angles, sorted, then NaN.
    Scores models with and without counting (and baselines) on the same footing."""
    angle = slot_peak_deg(log_probs, coding)
    order = np.argsort(-slot_presence(log_probs, coding), axis=-1, kind="stable")
    out = np.full(angle.shape, np.nan)
    for i, k in enumerate(np.asarray(counts, dtype=np.int64)):
        out[i, :k] = np.sort(angle[i, order[i, :k]])
    return out


def _class_and_neighbours(values: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Each class's value plus its two neighbours' (..., n_classes); on a circle they wrap."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[..., 1:] += values[..., :-1]
    out[..., :-1] += values[..., 1:]
    if coding.circular:
        out[..., 0] += values[..., -1]
        out[..., -1] += values[..., 0]
    return out


def turn_evidence(window_log_probs: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Where windows hear sources: window log-probabilities (N, W, S, n_outputs) → (N, 2,
    n_classes). A window's source density is the probability its slots put on each angle class
    (summed over slots: the expected number of sources per class). Row 0: the mean density over
    the windows that hear a source (expected count 0.5 or more; all windows if none does). Row
    1: over all windows, the highest density of each class and its two neighbours."""
    prob = np.exp(np.asarray(window_log_probs, dtype=np.float64)[..., : coding.n_classes])
    density = prob.sum(-2)  # (N, W, K)
    heard = density.sum(-1) >= 0.5
    heard[~heard.any(1)] = True
    mean = (density * heard[..., None]).sum(1) / heard.sum(1)[:, None]
    peak = _class_and_neighbours(density, coding).max(1)
    return np.stack([mean, peak], axis=1)


def add_turn_talkers(
    angles: np.ndarray, evidence: np.ndarray, coding: LabelCoding, confidence: np.ndarray | None = None
) -> np.ndarray:
    """Decoded angles (N, S) (:func:`decode_angles`, NaN = no source) with the talkers the
    pooled slots missed added from :func:`turn_evidence` (N, 2, n_classes), sorted again.

    The classes of the mean density are visited from the highest down, each taking its
    neighbours out of the running: a class whose mean density, with its neighbours', is below
    TURN_MEAN_MASS ends the search; one that some window was at least TURN_PEAK_MASS sure of
    and lies more than TURN_MIN_SEPARATION_DEG from every talker found is a talker (its angle
    read between the classes as ``labels.decode`` says), until every slot holds one.
    ``confidence`` (N, S), if given, is reordered alike, a found talker's being its mass
    (at most 1)."""
    out = np.array(angles, dtype=np.float64, copy=True)
    if not coding.counting:
        return out
    period = coding.n_classes * coding.class_width_deg if coding.circular else None
    n_slots = out.shape[1]
    for i in range(len(out)):
        found = [float(a) for a in out[i] if np.isfinite(a)]
        conf = [] if confidence is None else [float(c) for c in confidence[i][np.isfinite(out[i])]]
        mean, peak = evidence[i]
        mass = _class_and_neighbours(mean, coding)
        log_mean = np.log(np.maximum(mean, 1e-12))
        left = mean.copy()
        for _ in range(n_slots):
            if len(found) >= n_slots:
                break
            k = int(left.argmax())
            if mass[k] < TURN_MEAN_MASS:
                break
            n = coding.n_classes
            left[[(k + d) % n for d in (-1, 0, 1) if coding.circular or 0 <= k + d < n]] = -np.inf
            if peak[k] < TURN_PEAK_MASS:
                continue
            a = float(_peak_angle(log_mean, np.array(k), coding))
            if all(abs(angle_difference(a, h, period)) > TURN_MIN_SEPARATION_DEG for h in found):
                found.append(a)
                conf.append(min(1.0, float(mass[k])))
        order = np.argsort(found, kind="stable")
        out[i] = np.nan
        out[i, : len(found)] = np.asarray(found)[order]
        if confidence is not None:
            confidence[i] = np.nan
            confidence[i, : len(conf)] = np.asarray(conf)[order]
    return out


def model_answers(
    log_probs: np.ndarray, coding: LabelCoding, true_counts: np.ndarray, evidence: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The model's scored angles (N, S): ``model`` with its own count (a counting model) or told
    the count (a model without the "no source" class), and for a counting model also
    ``model_known_count``, told the count as the baselines are. With ``evidence``
    (:func:`turn_evidence`), ``model`` adds the talkers who take turns (:func:`add_turn_talkers`)."""
    known = decode_known_count(log_probs, true_counts, coding)
    if not coding.counting:
        return {"model": known}
    found = decode_angles(log_probs, coding)
    if evidence is not None:
        found = add_turn_talkers(found, evidence, coding)
    return {"model": found, "model_known_count": known}


def predict_split(model: SSLModel, features, p: Params, device: str | torch.device = "cpu") -> np.ndarray:
    """Sorted predicted slot angles (rooms, n_sources) in degrees (NaN = no source): pooled
    windows every ``evaluate.hop_s`` (and the swapped channels when ``evaluate.mirror``),
    decoded as ``labels.*`` says, with the talkers who take turns when ``evaluate.turns`` (the
    evaluate stage's)."""
    coding = LabelCoding.from_params(p)
    ev = p.evaluate
    logp, evidence = room_log_probs(
        model, features, p.hop_frames, coding, device=device, mirror=ev.mirror, turns=ev.turns
    )
    found = decode_angles(logp, coding)
    return found if evidence is None else add_turn_talkers(found, evidence, coding)
