"""Count and localise the talkers of a real two-channel recording with a trained model.

Channel order is the array frame's: channel 0 is mic 0 (at -x), channel 1 is mic 1 (at +x), so
x runs from mic 0 to mic 1 and a lateral angle of 0 deg is on the mic-1 side of the axis. Swapping
the channels mirrors every angle (a -> 180 - a).

A recording is read at any sample rate (resampled to the model's), scaled to unit RMS like the
training mixtures, turned into the model's STFT features and scored in model windows
``evaluate.hop_s`` apart whose log-probabilities are averaged; a recording shorter than one
window is zero-padded. Talkers who take turns are found from the windows as well
(``--turns``, :func:`dualmic.learn.turns.add_turn_talkers`). The same path as the evaluate
stage: :mod:`dualmic.learn.inference`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dualmic.core.errors import DualmicError, one_line
from dualmic.core.labels import LabelCoding
from dualmic.core.schema import channels_problem
from dualmic.data.features import FeatureConfig, features_from_audio
from dualmic.learn.decoding import PRESENCE, most_sure_slots, pooled_probs, slot_peak_deg, slot_presence
from dualmic.learn.inference import pooled_log_probs, window_starts
from dualmic.learn.mirror import mirror_average
from dualmic.learn.model import SSLModel
from dualmic.learn.model_file import META_DEFAULTS, load_model
from dualmic.learn.turns import add_turn_talkers, turn_evidence
from dualmic.recording import MIN_DURATION_S, channel_delay_s, highpass, highpass_filter

META_KEYS = (
    "label",
    "class_width_deg",
    "sample_rate",
    "n_fft",
    "hop",
    "channels",
    "mic_distance_m",
    "speed_of_sound",
    "hop_s",
)
_EPS = 1e-8


def load_predict_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[SSLModel, dict]:
    """:func:`dualmic.inference.load_model`, plus a check that the meta names every feature
    convention predict needs: (model, meta)."""
    model, meta = load_model(path, device)
    model_features(meta)
    return model, meta


def model_features(meta: dict) -> FeatureConfig:
    """The model's feature conventions from its saved meta; a DualmicError if any is missing."""
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DualmicError(f"the model file's meta lacks {', '.join(missing)}; retrain with this dualmic")
    try:
        cfg = FeatureConfig(
            sample_rate=int(meta["sample_rate"]),
            n_fft=int(meta["n_fft"]),
            hop=int(meta["hop"]),
            channels=tuple(meta["channels"]),
            mic_distance_m=float(meta["mic_distance_m"]),
            speed_of_sound=float(meta["speed_of_sound"]),
            onset_threshold_db=float(meta.get("onset_threshold_db", META_DEFAULTS["onset_threshold_db"])),
        )
        float(meta["hop_s"]), float(meta["class_width_deg"])
    except (TypeError, ValueError) as err:
        raise DualmicError(f"the model file's meta has a malformed value ({one_line(err)[:120]})") from None
    problem = channels_problem(cfg.channels)
    if problem:
        raise DualmicError(f"the model file's meta has channels {list(cfg.channels)}; they {problem}")
    if min(cfg.sample_rate, cfg.n_fft, cfg.hop) <= 0:
        raise DualmicError("the model file's meta has a non-positive sample_rate, n_fft or hop")
    return cfg


MIC_DISTANCE_RANGE = (0.5, 2.0)  # x the model's: spacings read by stretching time (README: other spacings)


def mic_distance_stretch(meta: dict, mic_distance_m: float) -> float:
    """How much to stretch the time axis of a recording of mics ``mic_distance_m`` apart so that
    the model, trained for mics ``meta["mic_distance_m"]`` apart, hears its delays as its own:
    model distance / recording's distance (:func:`dualmic.recording.stretch_audio`; 1.0 for
    the model's own). Any difference counts: 5 % more spacing read as it is would put a source
    30 deg off the axis 5 deg closer to it. A spacing outside ``MIC_DISTANCE_RANGE`` x the
    model's is refused in one line that says how to train a model for it."""
    model_m = float(model_features(meta).mic_distance_m)
    if not (mic_distance_m > 0 and np.isfinite(mic_distance_m)):
        raise DualmicError(
            f"--mic-distance {mic_distance_m:g}: give the distance between the mics in metres, > 0"
        )
    lo, hi = (f * model_m for f in MIC_DISTANCE_RANGE)
    if not lo <= mic_distance_m <= hi:
        half = round(mic_distance_m / 2, 4)
        raise DualmicError(
            f"--mic-distance {mic_distance_m:g} m: this model reads mics {lo:g} to {hi:g} m apart "
            f"(trained for {model_m:g} m); train one for yours: dvc exp run -S "
            f"'simulate.mic_offsets=[[-{half:g},0.0,0.0],[{half:g},0.0,0.0]]'"
        )
    return model_m / mic_distance_m


def segment_bounds(
    n_samples: int, sample_rate: int, segment_s: float, stretch: float = 1.0
) -> list[tuple[int, int]]:
    """Sample ranges [lo, hi) of consecutive ``segment_s``-second segments of a recording read at
    ``sample_rate`` with its time axis stretched by ``stretch`` (``segment_s`` in the file's own
    seconds). A last piece shorter than ``MIN_DURATION_S`` joins the segment before it."""
    size = max(1, int(round(segment_s * stretch * sample_rate)))
    least = int(round(MIN_DURATION_S * stretch * sample_rate))
    starts = list(range(0, n_samples, size))
    if len(starts) > 1 and n_samples - starts[-1] < least:
        starts.pop()
    return [(lo, starts[i + 1] if i + 1 < len(starts) else n_samples) for i, lo in enumerate(starts)]


# x mic distance / c: a head delays low frequencies by up to 3 a / c, 1.5 x its ear distance / c
DELAY_MARGIN = 1.5


def delay_warning(audio: np.ndarray, meta: dict) -> str | None:
    """A one-line warning when a recording's inter-mic delay (:func:`channel_delay_s`) is longer
    than the model's array allows (``DELAY_MARGIN`` x mic distance / speed of sound, plus one
    sample; the widest of its mics and, for a model that trained on rooms heard through a head
    too, that head's ears): the mics are further apart than the model's, or on a head, or the
    channels are not in sync, and the model's angles would be wrong. ``None`` when the delay fits."""
    cfg = model_features(meta)
    ears = meta.get("head_ear_distance_m")  # a model that trained on rooms heard through a head too
    widest = max(cfg.mic_distance_m, ears or 0.0)
    most = DELAY_MARGIN * widest / cfg.speed_of_sound + 1.0 / cfg.sample_rate
    delay = channel_delay_s(audio, cfg.sample_rate)
    if abs(delay) <= most:
        return None
    heard = f"mics {cfg.mic_distance_m:g} m apart" + (f" and ears {ears:g} m apart" if ears else "")
    return (
        f"the channels are {abs(delay) * 1e3:.2f} ms apart, more than this model's {heard} allow "
        f"({most * 1e3:.2f} ms): mics further apart (give --mic-distance), "
        + ("" if ears else "ears on a head (README: Two ears) ")
        + "or channels out of sync? The angles are likely wrong"
    )


def recording_windows(
    audio: np.ndarray,
    model: SSLModel,
    meta: dict,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    mirror: bool = False,
    highpass_hz: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled log-probabilities of one recording (2, n) at the model's rate, and those of
    every window of the channels as they are: ((n_slots, n_outputs), (n_windows, n_slots,
    n_outputs)).

    A high-pass at ``highpass_hz`` (0 = none; :func:`dualmic.recording.highpass`) takes out
    rumble and hum, each channel's mean (a recorder's DC offset) is taken away and the audio
    scaled to unit RMS (as the training mixtures are), windows ``meta["hop_s"]`` apart are scored
    ``batch_size`` at a time (bounded memory for long recordings) and their log-probabilities
    averaged; a recording shorter than one window is zero-padded. ``mirror``
    (``evaluate.mirror``): the pooled answer is averaged with the answer to the swapped
    channels, mapped back (:func:`dualmic.learn.mirror.mirror_average`).
    """
    cfg = model_features(meta)
    audio = highpass(np.asarray(audio), highpass_filter(highpass_hz, cfg.sample_rate))
    x = torch.as_tensor(audio, dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] != 2:
        raise DualmicError(f"audio has shape {tuple(x.shape)}; expected (2, samples): mic 0, mic 1")
    x = x - x.mean(dim=-1, keepdim=True)  # a recorder's DC offset: training mixtures have none
    x = (x / (x.pow(2).mean().sqrt() + _EPS)).float()
    features = features_from_audio(x[None], cfg)  # (1, C, F, T)
    hop_frames = max(1, round(float(meta["hop_s"]) * cfg.sample_rate / cfg.hop))
    window = model.cfg.n_frames
    n_frames = features.shape[-1]
    starts = window_starts(n_frames, window, hop_frames)

    def each_window(swap: bool) -> np.ndarray:  # a window shorter than the model's is zero-padded
        return np.concatenate(
            [
                pooled_log_probs(
                    model,
                    torch.stack([features[0, ..., s : s + window] for s in starts[lo : lo + batch_size]]),
                    hop_frames,
                    batch_size,
                    device,
                    swap,
                )
                for lo in range(0, len(starts), batch_size)
            ]
        )

    windows = each_window(False)
    logp = windows.astype(np.float64).mean(0).astype(np.float32)
    if not mirror:
        return logp, windows
    coding = LabelCoding.from_meta(meta, model.cfg.n_classes)
    swapped = each_window(True).astype(np.float64).mean(0).astype(np.float32)
    return mirror_average(logp[None], swapped[None], coding)[0], windows


def predict_angles(
    audio: np.ndarray, model: SSLModel, meta: dict, device: str | torch.device = "cpu"
) -> list[float]:
    """Angles (degrees, sorted ascending) of the sources found in a recording (2, n) at the
    model's rate: as many as the model counts (a model without counting: one per slot).

    The angle kind is ``meta["label"]`` (``lateral``: angle to the mic axis, 0 deg on the mic-1
    side); each angle is decoded as the model was trained to be (``labels.decode``).
    """
    return [a for a, _ in predict_sources(audio, model, meta, device)]


def slot_confidence(log_probs: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Confidence of each slot's angle, 0..1: the pooled probability of its best angle class and
    the two classes beside it (log_probs (n_slots, n_outputs) → (n_slots,)). A counting model's
    "no source" class (index ``n_classes``) takes its share of the probability, so an uncertain
    source scores low."""
    prob = pooled_probs(log_probs)
    k = prob.shape[-1] if n_classes is None else n_classes
    best = prob[:, :k].argmax(axis=-1)
    out = np.empty(len(prob))
    for s, b in enumerate(best):
        out[s] = prob[s, max(b - 1, 0) : min(b + 2, k)].sum()
    return out


def predict_sources(
    audio: np.ndarray,
    model: SSLModel,
    meta: dict,
    device: str | torch.device = "cpu",
    decode: str = "peak",
    mirror: bool = False,
    turns: bool = True,
    presence: float = PRESENCE,
    n_sources: int | None = None,
    highpass_hz: float = 0.0,
) -> list[tuple[float, float]]:
    """(angle in degrees, confidence 0..1) of every source found, sorted by angle (see
    :func:`predict_angles` and :func:`slot_confidence`); an empty list when a counting model
    hears no talker. ``decode``: ``peak`` reads angles between the classes, ``argmax`` gives
    class centres (as ``labels.decode``). ``mirror``: see :func:`recording_windows`.
    ``turns`` (``evaluate.turns``): also a talker heard in part of the recording only
    (:func:`dualmic.learn.turns.add_turn_talkers`; its confidence is its share of the
    windows that hear a source). ``presence`` (``evaluate.presence``): a counting model's slot
    reports a source when 1 - p(no source) is above it. ``n_sources``: the number of sources is
    known; the ``n_sources`` slots most sure to hold one answer (the model does not count, and
    ``turns`` and ``presence`` do not apply). ``highpass_hz``: see :func:`recording_windows`."""
    logp, windows = recording_windows(audio, model, meta, device, mirror=mirror, highpass_hz=highpass_hz)
    coding = LabelCoding.from_meta(meta, model.cfg.n_classes, decode)
    angles = slot_peak_deg(logp, coding)
    confidence = slot_confidence(logp, coding.n_classes)
    if n_sources is not None:  # a known count: the slots most sure to hold a source answer
        if not 0 <= n_sources <= len(logp):
            raise DualmicError(
                f"--n-sources {n_sources}: this model localises at most {len(logp)} talkers; "
                f"give 0 to {len(logp)}"
            )
        keep = most_sure_slots(logp, coding)[:n_sources]
    elif coding.counting:  # a slot holds a source when it is more sure than ``presence`` that it does
        keep = slot_presence(logp, coding) > presence
    else:
        keep = np.ones(len(logp), dtype=bool)
    pairs = sorted(zip(angles[keep].tolist(), confidence[keep].tolist(), strict=True))
    if turns and coding.counting and n_sources is None:
        found = np.full((1, len(logp)), np.nan)
        conf = np.full((1, len(logp)), np.nan)
        found[0, : len(pairs)], conf[0, : len(pairs)] = [a for a, _ in pairs], [c for _, c in pairs]
        found = add_turn_talkers(found, turn_evidence(windows[None], coding), coding, conf)
        pairs = [(a, c) for a, c in zip(found[0], conf[0], strict=True) if np.isfinite(a)]
    return [(round(float(a), 2), round(float(c), 4)) for a, c in pairs]


def predict_segments(
    audio: np.ndarray,
    model: SSLModel,
    meta: dict,
    segment_s: float,
    stretch: float = 1.0,
    device: str | torch.device = "cpu",
    **options,
) -> list[tuple[float, float, list[tuple[float, float]]]]:
    """:func:`predict_sources` of every ``segment_s``-second segment of a recording (2, n) read at
    the model's rate with its time axis stretched by ``stretch`` (:func:`segment_bounds`), each
    as a recording of its own (its own level, windows and count): (start s, end s, sources) with
    times in the file's seconds. A silent segment (all samples zero) has no source. ``options``:
    those of :func:`predict_sources` (a high-pass filters each segment alone)."""
    rate = model_features(meta).sample_rate
    out = []
    for lo, hi in segment_bounds(audio.shape[-1], rate, segment_s, stretch):
        piece = audio[:, lo:hi]
        sources = predict_sources(piece, model, meta, device, **options) if np.any(piece) else []
        out.append((round(lo / (rate * stretch), 3), round(hi / (rate * stretch), 3), sources))
    return out
