"""Which angle a label is, and how an angle becomes a class.

Both angles live in the array frame, whose x axis runs from mic 0 to mic 1:

* ``lateral_deg`` = acos(x / |d|) in [0, 180]: the angle between the source direction and the
  mic axis. A two-mic array observes exactly this angle (through the TDOA); it is the same for
  every source on a cone around the axis, so front/back and elevation are not observable.
* ``azimuth_deg`` = |atan2(y, x)| in [0, 180]: the published recipe's label, the horizontal-plane
  azimuth with front/back folded. It equals the lateral angle only for sources at the array's
  height; above or below it, the two differ and the azimuth is not recoverable from two mics.
* ``azimuth360_deg`` = atan2(y, x) mod 360 in [0, 360): the full-circle horizontal azimuth, 0° at
  mic 1 (a head's right ear), 90° in front (the array frame's y), 180° at mic 0, 270° behind.
  Free-field mics cannot tell front from back; the ears of a head can, through the pinnae's
  spectral cues (``simulate.array.kind: hrtf``). It is circular: 355° and 5° are 10° apart.

A room's label is one angle per source slot, sorted ascending (:func:`sort_slots`); a circular
label is sorted by its folded angle min(a, 360 - a), the part interaural time and level
differences carry, so which slot a talker takes never hangs on front/back. When fewer talkers
than slots are active, the slots after the talkers hold NaN ("no source", class ``n_classes`` for a counting
model, ``labels.counting``); a model without that class instead repeats the talkers' angles in
every slot (one talker: both slots carry its angle).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

ANGLE_KINDS = ("lateral", "azimuth", "azimuth360")
CIRCULAR = ("azimuth360",)  # labels on a circle of 360 degrees


def label_span_deg(label: str) -> float:
    """Degrees a label covers: 360 for a circular one, else 180."""
    return 360.0 if label in CIRCULAR else 180.0


def label_period(label: str) -> float | None:
    """360 for a circular label (errors wrap around), else None."""
    return 360.0 if label in CIRCULAR else None


def angle_difference(a, b, period: float | None = None) -> np.ndarray:
    """a - b in degrees; on a circle of ``period`` degrees, the signed shortest way round."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return d if period is None else (d + period / 2) % period - period / 2


def lateral_deg(direction: np.ndarray) -> np.ndarray:
    """Angle to the mic axis. ``direction``: (..., 3) array-frame vectors → (...) degrees."""
    norm = np.linalg.norm(direction, axis=-1)
    cos = np.clip(direction[..., 0] / norm, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def azimuth_deg(direction: np.ndarray) -> np.ndarray:
    """Front/back-folded azimuth |atan2(y, x)|. ``direction``: (..., 3) → (...) degrees."""
    return np.abs(np.degrees(np.arctan2(direction[..., 1], direction[..., 0])))


def elevation_deg(direction: np.ndarray) -> np.ndarray:
    """Angle above (+) or below (−) the array's horizontal plane. ``direction``: (..., 3) → (...)
    degrees in [−90, 90]."""
    norm = np.linalg.norm(direction, axis=-1)
    return np.degrees(np.arcsin(np.clip(direction[..., 2] / norm, -1.0, 1.0)))


def slot_key(angles_deg: np.ndarray, period: float | None = None) -> np.ndarray:
    """What slots are sorted by: the angle itself, or on a circle of 360 degrees (azimuth360)
    the front/back-folded angle min(a, 360 - a): a source in front and its mirror image behind
    the interaural axis share a key, so a slot's place depends on what both ears hear alike."""
    a = np.asarray(angles_deg, dtype=np.float64)
    return a if period is None else np.minimum(a % period, period - a % period)


def sort_slots(slots_deg: np.ndarray, period: float | None = None) -> np.ndarray:
    """Slot labels (n, S) sorted per room by :func:`slot_key` (stable), NaN last."""
    slots = np.asarray(slots_deg)
    order = np.argsort(slot_key(slots, period), axis=-1, kind="stable")  # NaN keys sort last
    return np.take_along_axis(slots, order, axis=-1)


def slot_values(slots_deg: np.ndarray, angles_deg: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-source ``values`` (n, S) moved into the slot order of sorted labels ``slots_deg`` (n,
    S), each slot taking the value of the source whose angle (``angles_deg``, source order) it
    holds; NaN for empty slots."""
    slots = np.asarray(slots_deg, dtype=np.float64)
    angles = np.asarray(angles_deg, dtype=np.float64)
    nearest = np.abs(slots[:, :, None] - angles[:, None, :]).argmin(-1)  # NaN slots: index 0
    out = np.take_along_axis(np.asarray(values, dtype=np.float64), nearest, axis=1)
    return np.where(np.isfinite(slots), out, np.nan)


def azimuth360_deg(direction: np.ndarray) -> np.ndarray:
    """Full-circle azimuth atan2(y, x) mod 360. ``direction``: (..., 3) → (...) degrees."""
    return np.degrees(np.arctan2(direction[..., 1], direction[..., 0])) % 360.0


def angle_to_class(angle_deg: np.ndarray, class_width_deg: float, n_classes: int) -> np.ndarray:
    """Class index floor(angle / width), clipped to 0..n_classes-1 (so 180° is the last class);
    a NaN angle (no source in the slot) is class ``n_classes``, the "no source" class."""
    angle = np.asarray(angle_deg, dtype=np.float64)
    empty = np.isnan(angle)
    cls = np.floor(np.where(empty, 0.0, angle) / class_width_deg).astype(np.int64)
    return np.where(empty, n_classes, np.clip(cls, 0, n_classes - 1))


def slot_angles(
    angles_deg: np.ndarray, active: np.ndarray, counting: bool, period: float | None = None
) -> np.ndarray:
    """Sorted slot labels (n, S) from per-source angles (n, S) and which sources talk (n, S);
    ``period`` 360 for a circular label (:func:`sort_slots`).

    ``counting``: the active angles ascending, then NaN per silent slot. Otherwise every slot
    carries an active talker's angle (one talker: all slots); a room without talkers is refused.
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    active = np.asarray(active, dtype=bool)
    out = np.full(angles.shape, np.nan)
    for i in range(len(angles)):
        talking = angles[i, active[i]]
        if counting:
            out[i, : len(talking)] = talking
        elif len(talking) == 0:
            raise ValueError(f"room {i} has no active talker; its label needs labels.counting")
        else:
            out[i] = np.resize(talking, angles.shape[1])
    return sort_slots(out, period)


def merge_close_slots(
    slots_deg: np.ndarray, min_separation_deg: float, period: float | None = None
) -> np.ndarray:
    """Slot labels (n, S), sorted with NaN last, where talkers closer than ``min_separation_deg``
    in the label angle become one source at their mean angle: two mics cannot tell two talkers
    at one angle from one, so a training label that counts them as two asks for what the
    recording does not hold. On a circle of ``period`` degrees the last and first talkers are
    neighbours too, and the result is sorted as :func:`sort_slots` sorts. 0 leaves the labels
    as they are."""
    slots = np.array(slots_deg, dtype=np.float64, copy=True)
    if min_separation_deg <= 0:
        return slots
    for i in range(len(slots)):
        talkers = sorted(float(a) for a in slots[i] if np.isfinite(a))
        merged = True
        while merged and len(talkers) > 1:
            merged = False
            pairs = [(j, j + 1) for j in range(len(talkers) - 1)]
            if period is not None and len(talkers) > 2:
                pairs.append((len(talkers) - 1, 0))
            for j, k in pairs:
                gap = float(angle_difference(talkers[k], talkers[j], period))
                if abs(gap) < min_separation_deg:
                    mean = talkers[j] + gap / 2
                    mean = mean % period if period is not None else mean
                    talkers = sorted([a for m, a in enumerate(talkers) if m not in (j, k)] + [mean])
                    merged = True
                    break
        slots[i] = np.nan
        slots[i, : len(talkers)] = talkers
    return sort_slots(slots, period)


def source_counts(angles_deg: np.ndarray) -> np.ndarray:
    """Sources per room of slot labels (n, S) (NaN = no source): (n,) int64."""
    return np.isfinite(np.asarray(angles_deg, dtype=np.float64)).sum(axis=-1).astype(np.int64)


def pair_slots(pred_deg, true_deg, period: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both (N, S) sorted ascending per room; on a circle, each room's predictions reordered to
    the pairing with the smallest summed circular error."""
    pred = np.sort(np.asarray(pred_deg, dtype=np.float64), axis=1)
    true = np.sort(np.asarray(true_deg, dtype=np.float64), axis=1)
    if pred.ndim != 2 or pred.shape != true.shape:
        raise ValueError(f"predictions {pred.shape} and true angles {true.shape} must both be (N, S)")
    if period is None:
        return pred, true
    best, best_cost = pred.copy(), np.full(len(pred), np.inf)
    for order in permutations(range(pred.shape[1])):
        cand = pred[:, order]
        err = np.abs(angle_difference(cand, true, period))
        mismatch = (np.isfinite(cand) != np.isfinite(true)).any(axis=1)
        cost = np.where(mismatch, np.inf, np.nansum(err, axis=1))
        better = cost < best_cost
        best[better], best_cost[better] = cand[better], cost[better]
    return best, true


def slot_errors(pred_deg, true_deg, period: float | None = None) -> np.ndarray:
    """Absolute error of every source after pairing the (N, S) arrays per room (sorted, or on a
    circle of ``period`` degrees the closest pairing); NaN for empty slots and for every slot of a
    room whose count is wrong."""
    pred, true = pair_slots(pred_deg, true_deg, period)
    err = np.abs(angle_difference(pred, true, period))
    err[source_counts(pred) != source_counts(true)] = np.nan
    return err


def class_centre_deg(cls: np.ndarray, class_width_deg: float) -> np.ndarray:
    """Centre angle of a class, e.g. class 3 of 5° → 17.5°."""
    return (np.asarray(cls, dtype=np.float64) + 0.5) * class_width_deg


@dataclass(frozen=True)
class LabelCoding:
    """How slot labels become model targets and model outputs become angles (``labels.*``)."""

    class_width_deg: float
    n_classes: int
    counting: bool = False  # class n_classes means "no source in this slot"
    sigma_deg: float = 0.0  # Gaussian target over the classes around the true angle; 0 = one-hot
    decode: str = "argmax"  # argmax: best class centre | peak: parabola through the best 3 classes
    circular: bool = False  # the classes go round a circle (labels.angle azimuth360)

    @classmethod
    def from_params(cls, p) -> LabelCoding:
        lab = p.labels
        circular = lab.angle in CIRCULAR
        return cls(lab.class_width_deg, lab.n_classes, lab.counting, lab.sigma_deg, lab.decode, circular)

    @classmethod
    def from_meta(cls, meta: dict, n_classes: int, decode: str = "peak") -> LabelCoding:
        """The coding of a saved model (one from before counting does not count), read by
        ``decode``: decoding is a choice at inference, not part of the trained model."""
        counting = bool(meta.get("counting", False))
        circular = meta.get("label") in CIRCULAR
        return cls(float(meta["class_width_deg"]), int(n_classes), counting, 0.0, decode, circular)

    @property
    def period(self) -> float | None:
        """Degrees round the circle of a circular label (errors wrap), else None."""
        return self.n_classes * self.class_width_deg if self.circular else None
