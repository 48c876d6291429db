"""Measured head-related impulse responses (HRIRs) from a SOFA file, as the two receivers.

A SimpleFreeFieldHRIR file (AES69) holds, for D measured directions, the impulse responses from
a far source to the two ears of a head. dualmic reads one with sofar and brings it into the
array frame of its rooms:

* **axes**: SOFA's listener frame has x to the front, y to the left and z up. The array frame
  has x along the interaural axis towards the right ear (mic 1, SOFA receiver 1), y to the
  front and z up, so a lateral angle of 0° points at the right ear as it points at mic 1 of a
  free-field pair: array (x, y, z) = SOFA (−y, x, z).
* **channels**: receiver 0 of the file (the left ear) is mic 0, receiver 1 (the right ear)
  mic 1.
* **sample rate**: the HRIRs are resampled (polyphase, scipy) to ``simulate.sample_rate``. A
  file sampled below it (its upper band is missing) or at a rate that is not a whole number of
  Hz is refused.
* **time origin**: a measured HRIR starts with part of the path from the loudspeaker. Its
  origin is taken as the median, over directions, of the mean onset of the two ears: the
  arrival at the head centre. Rendering delays each HRIR by the path length to the head centre
  minus that origin.
* **level**: HRIRs are scaled so that their energy, averaged over directions and ears, is 1 (a
  diffuse field's gain), so a free-field RIR's 1/d law carries over.
* **direction**: a direct path is rendered through the measured direction closest to it on its
  own cone of confusion (:func:`measured_for`), so its interaural cues match its lateral angle
  even where the measurement has no direction near it.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from dualmic.core.errors import DualmicError, one_line

CONVENTION = "SimpleFreeFieldHRIR"
LATERAL_WEIGHT = 2.0  # degrees of direction error one degree of lateral error costs (measured_for)
MIN_DIRECTIONS = 8  # fewer cannot cover the horizontal plane
_ONSET_FRACTION = 0.1  # an ear's onset: first sample above this fraction of its peak


@dataclass(frozen=True)
class Hrtf:
    """HRIRs at the simulation's sample rate, in the array frame.

    Attributes:
        path: the SOFA file read.
        sample_rate: Hz of ``ir``.
        ir: (D, 2, L) float32 HRIRs, ear 0 = mic 0 (left), ear 1 = mic 1 (right).
        directions: (D, 3) unit vectors towards the measured sources, array frame.
        origin: samples; where the arrival at the head centre sits in ``ir``.
        ear_offsets: (2, 3) metres, the receivers' positions in the array frame.
        source_rate: Hz of the file.
    """

    path: str
    sample_rate: int
    ir: np.ndarray
    directions: np.ndarray
    origin: float
    ear_offsets: np.ndarray
    source_rate: float

    @property
    def head_radius_m(self) -> float:
        """Half the distance between the ears."""
        return float(np.linalg.norm(self.ear_offsets[1] - self.ear_offsets[0]) / 2)

    def nearest(self, direction: np.ndarray) -> np.ndarray:
        """Index of the measured direction that renders each array-frame ``direction`` (..., 3):
        the smallest angle to it plus ``LATERAL_WEIGHT`` times the difference of their lateral
        angles (:func:`measured_for`)."""
        d = torch.as_tensor(np.asarray(direction, dtype=np.float64))
        return measured_for(d, torch.as_tensor(self.directions)).numpy()

    def spread(self, count: int) -> np.ndarray:
        """Indices of ``count`` measured directions spread over the sphere (farthest-point
        sampling from the frontal one; deterministic)."""
        count = min(count, len(self.directions))
        chosen = [int(np.argmax(self.directions[:, 1] - np.abs(self.directions[:, 2])))]
        closest = self.directions @ self.directions[chosen[0]]
        for _ in range(count - 1):
            nxt = int(np.argmin(closest))
            chosen.append(nxt)
            closest = np.maximum(closest, self.directions @ self.directions[nxt])
        return np.asarray(chosen)


def measured_for(direction: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Index of the measured direction (M, 3 unit vectors) that renders each ``direction`` (..., 3).

    Plain nearest-neighbour choice would change the interaural cues of directions the measurement
    does not cover (a KEMAR has none below −40° elevation: 18 % of the sphere, whose nearest
    measured direction is on average 10° off in lateral angle). The lateral angle (to the
    interaural axis) is what two ears measure best, so the choice minimises the angle to the
    direction plus ``LATERAL_WEIGHT`` × the lateral-angle difference: a direction off the grid
    takes a measured one on (nearly) its own cone of confusion.
    """
    unit = direction / direction.norm(dim=-1, keepdim=True)
    measured = measured.to(unit)
    angle = torch.rad2deg(torch.acos((unit @ measured.T).clamp(-1, 1)))
    lateral = torch.rad2deg(torch.acos(unit[..., :1].clamp(-1, 1)))
    cost = angle + LATERAL_WEIGHT * (lateral - torch.rad2deg(torch.acos(measured[:, 0].clamp(-1, 1)))).abs()
    return cost.argmin(-1)


def sofa_to_array_frame(xyz: np.ndarray) -> np.ndarray:
    """SOFA listener frame (x front, y left, z up) → array frame (x right ear, y front, z up)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.stack([-xyz[..., 1], xyz[..., 0], xyz[..., 2]], axis=-1)


def array_to_sofa_frame(xyz: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sofa_to_array_frame`."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.stack([xyz[..., 1], -xyz[..., 0], xyz[..., 2]], axis=-1)


def _cartesian(pos: np.ndarray, kind: str, units: str) -> np.ndarray:
    """SOFA positions (N, 3) as cartesian metres."""
    if kind.strip().lower() == "cartesian":
        return pos
    az, el, r = (pos[:, k] for k in range(3))
    if "radian" not in units.lower():
        az, el = np.radians(az), np.radians(el)
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=-1)


def _onsets(ir: np.ndarray) -> np.ndarray:
    """(D, 2) first sample of each HRIR above ``_ONSET_FRACTION`` of its own peak."""
    mag = np.abs(ir)
    return np.argmax(mag >= _ONSET_FRACTION * mag.max(-1, keepdims=True), axis=-1).astype(np.float64)


def _read(path: Path):
    import sofar  # noqa: PLC0415  (netCDF and sofar load only when a head is simulated)

    if not path.is_file():
        raise DualmicError(f"simulate.array.sofa {str(path)!r} does not exist; give a {CONVENTION} file")
    try:
        return sofar.read_sofa(str(path), verify=False, verbose=False)
    except Exception as err:  # noqa: BLE001  (any reader failure means: not a readable SOFA file)
        why = one_line(err, 80)
        raise DualmicError(f"simulate.array.sofa {str(path)!r} is not a readable SOFA file ({why})") from None


@functools.lru_cache(maxsize=4)
def load_hrtf(path: str | os.PathLike, sample_rate: int) -> Hrtf:
    """Read, check and resample a SimpleFreeFieldHRIR file; any problem is one DualmicError line."""
    from scipy.signal import resample_poly  # noqa: PLC0415

    p = Path(path)
    sofa = _read(p)
    where = f"simulate.array.sofa {str(p)!r}"
    convention = str(getattr(sofa, "GLOBAL_SOFAConventions", "?"))
    if convention != CONVENTION:
        raise DualmicError(f"{where} has convention {convention}; expected {CONVENTION}")
    ir = np.asarray(sofa.Data_IR, dtype=np.float64)
    if ir.ndim != 3 or ir.shape[1] != 2:
        raise DualmicError(f"{where} has Data.IR of shape {ir.shape}; expected (directions, 2 ears, taps)")
    if ir.shape[0] < MIN_DIRECTIONS:
        raise DualmicError(f"{where} has {ir.shape[0]} directions; at least {MIN_DIRECTIONS} are needed")
    if not np.isfinite(ir).all() or not (np.abs(ir).max(-1) > 0).all():
        raise DualmicError(f"{where} has an HRIR that is silent, NaN or infinite")
    rate = float(np.ravel(sofa.Data_SamplingRate)[0])
    if not (math.isfinite(rate) and rate == round(rate) and rate >= sample_rate):
        raise DualmicError(
            f"{where} is sampled at {rate:g} Hz; dualmic resamples whole-Hz rates of at least "
            f"simulate.sample_rate ({sample_rate} Hz)"
        )
    ratio = Fraction(sample_rate, int(rate))
    if ratio.denominator > 10_000:
        raise DualmicError(f"{where}: {rate:g} Hz to {sample_rate} Hz is not a ratio dualmic resamples")
    src = _cartesian(
        np.asarray(sofa.SourcePosition, dtype=np.float64).reshape(-1, 3),
        str(sofa.SourcePosition_Type),
        str(sofa.SourcePosition_Units),
    )
    if len(src) == 1:
        src = np.repeat(src, ir.shape[0], axis=0)
    norm = np.linalg.norm(src, axis=-1, keepdims=True)
    if len(src) != ir.shape[0] or not (norm > 0).all():
        raise DualmicError(f"{where}: SourcePosition does not give one direction per HRIR")
    ears = sofa_to_array_frame(np.asarray(sofa.ReceiverPosition, dtype=np.float64).reshape(-1, 3)[:2])

    resampled = resample_poly(ir, ratio.numerator, ratio.denominator, axis=-1)
    onset = _onsets(ir).mean(-1)  # per direction, at the file's rate
    origin = float(np.median(onset)) * sample_rate / rate
    resampled /= math.sqrt(np.mean(np.sum(resampled**2, axis=-1)))
    return Hrtf(
        path=str(p),
        sample_rate=sample_rate,
        ir=resampled.astype(np.float32),
        directions=sofa_to_array_frame(src / norm),
        origin=origin,
        ear_offsets=ears,
        source_rate=rate,
    )


def check_ears(hrtf: Hrtf, mic_offsets, tolerance_m: float = 0.01) -> None:
    """The simulate params' mic positions must be the file's ears (they set the array radius, the
    SRP-PHAT baseline's spacing and the recorded geometry)."""
    mics = np.asarray(mic_offsets, dtype=np.float64)
    if mics.shape != hrtf.ear_offsets.shape or np.abs(mics - hrtf.ear_offsets).max() > tolerance_m:
        want = [[round(float(v), 4) for v in ear] for ear in hrtf.ear_offsets]
        raise DualmicError(
            f"simulate.mic_offsets {[list(m) for m in mics.tolist()]} are not the ears of {hrtf.path} "
            f"(receivers at {want} m in the array frame); set simulate.mic_offsets={want}"
        )
