"""SOFA (AES69) export of simulated RIRs, room geometry, labels and predictions: layout and helpers.

Two conventions are written with sofar (every file passes ``Sofa.verify()``):

* **GeneralFIR 1.0** (:func:`dualmic.sofa_export.write_general_fir`): all rooms of a split in one file, one
  measurement per (room, source), ``m = room * n_sources + source``; R = 2 receivers (the mics);
  ``Data.IR`` (M, R, N).
* **SingleRoomSRIR 1.0** (:func:`dualmic.sofa_export.write_single_room_srir`): one room per
  file, one measurement per source (M = n_sources), with ``RoomCornerA`` = (0, 0, 0) and
  ``RoomCornerB`` = the room size (``GLOBAL:RoomType`` shoebox), as that convention defines a
  shoebox room.

Geometry (all cartesian, metres):

* ``ListenerPosition`` (M, 3): the array centre (the head centre) in room coordinates;
* ``ListenerView`` (M or 1, 3): the array frame's x axis in room coordinates, i.e. the mic axis
  (mic 0 -> mic 1) turned by ``array_rot_deg`` about z: (cos, sin, 0); ``ListenerUp`` = (0, 0, 1).
  So atan2(view_y, view_x) = ``array_rot_deg`` and the listener frame *is* the array frame;
* ``ReceiverPosition`` (R, 3): the mic offsets in the listener (array) frame, exactly
  ``simulate.mic_offsets``;
* ``SourcePosition`` (M, 3): the source in room coordinates.

Binaural rooms (``simulate.array.kind: hrtf``) follow SOFA's head frame instead, as their HRTF
file does: ``ListenerView`` is the head's front (the array frame's y axis) and the receivers are
the ears in the listener frame (x front, y left, z up): receiver 0 the left ear at +y, receiver 1
the right ear at −y. The HRTF file is named in ``GLOBAL:ListenerDescription`` and
``GLOBAL:ReceiverDescription``. SingleRoomSRIR is the AES69-2022 convention for binaural room
responses of a single room (it supersedes SingleRoomDRIR).

Extra per-measurement variables (not in the conventions; each has ``Units`` and ``Description``):
``RoomDimensions`` (M, 3) metre [GeneralFIR], ``RT60`` second, ``RoomIndex``, ``SourceIndex``,
``TrueAngle`` and ``PredictedAngle`` degree, the latter two with a ``Convention`` attribute naming
the label (lateral or azimuth, see the README's "What a label is").

**Predicted angles per source.** The model predicts a room's angles *sorted ascending*; it does
not know which source is which. :func:`dualmic.sofa.predictions.predictions_per_source` assigns
them by the order of the sources' true angles: the source with the smaller true angle gets the
smaller prediction (ties keep the source order).

No SOFA *string* variables are written (only attributes): sofar 1.3.0 cannot write string
variables with netCDF4 >= 1.7.4 (pyfar/sofar#132), and none is mandatory in these conventions.

Every write is atomic: the file is written under a temporary ``*.sofa`` name beside the target
and renamed into place only when complete (sofar insists on the ``.sofa`` suffix).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from dualmic import __version__
from dualmic.core.errors import DualmicError, one_line
from dualmic.core.files import atomic_path
from dualmic.sim.hrtf import array_to_sofa_frame
from dualmic.sim.rooms import Rooms

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # AES69: "yyyy-mm-dd hh:mm:ss"
LICENSE = "CC-BY-4.0"  # the exported data (the code is MIT)
ORGANIZATION = "dualmic"
AUTHOR_CONTACT = "dualmic project (see its README); generated data, no personal contact"
COMPRESSION = 4  # zlib level of sofar.write_sofa (its default)

LABEL_CONVENTIONS = {
    "lateral": (
        "lateral: angle between the source direction (from the array centre) and the mic axis, "
        "acos(x/|d|) in the array frame (x from mic 0 to mic 1, z up); 0 deg = mic-1 side, "
        "90 deg = broadside, 180 deg = mic-0 side"
    ),
    "azimuth": (
        "azimuth: |atan2(y, x)| of the source direction (from the array centre) in the array frame "
        "(x from mic 0 to mic 1, z up), front/back folded into 0..180 deg"
    ),
    "azimuth360": (
        "azimuth360: atan2(y, x) mod 360 of the source direction (from the array centre) in the array "
        "frame (x from mic 0 to mic 1 = towards the right ear, y front, z up): 0 deg = mic-1 side, "
        "90 deg = front, 180 deg = mic-0 side, 270 deg = back"
    ),
}
_PREDICTION_NOTE = (
    "the model predicts a room's angles sorted ascending (class centres); they are assigned to the "
    "room's sources in the order of the sources' true angles (smaller true angle gets the smaller "
    "prediction)"
)


def load_sofar():
    """sofar, imported late (it imports netCDF4) and without its import-time chatter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sofar

    return sofar


# --------------------------------------------------------------------------------------------
# inputs


def params_comment(p) -> str:
    """Compact JSON of the simulate, labels and features params (for ``GLOBAL:Comment``), without
    the features keys that act on nothing (:meth:`~dualmic.core.schema.FeaturesParams.idle_keys`)."""
    dumped = p.model_dump(mode="json", exclude={"features": set(p.features.idle_keys())})
    return "params " + json.dumps(
        {k: dumped[k] for k in ("simulate", "labels", "features")}, sort_keys=True, separators=(",", ":")
    )


def resolve_date(date_created: str | None = None) -> str:
    """``date_created`` checked, or SOURCE_DATE_EPOCH, or now; UTC as "YYYY-MM-DD hh:mm:ss"."""
    if date_created is not None:
        try:
            datetime.strptime(date_created, DATE_FORMAT)
        except (TypeError, ValueError):
            raise DualmicError(
                f"date {date_created!r} is not of the form YYYY-MM-DD hh:mm:ss (UTC)"
            ) from None
        return date_created
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), UTC).strftime(DATE_FORMAT)
        except (ValueError, OverflowError, OSError):
            raise DualmicError(f"SOURCE_DATE_EPOCH {epoch!r} is not a Unix time in seconds") from None
    return datetime.now(UTC).strftime(DATE_FORMAT)


class SofaExport:
    """Everything both SOFA writers need, checked once (R rooms, S sources, M mics, N taps).

    ``rirs`` (R, S, M, N); ``rooms`` the split's :class:`~dualmic.sim.rooms.Rooms` (as read from
    rooms.csv); ``mic_offsets`` (M, 3) array-frame mic positions; ``true_angles`` /
    ``predicted_angles`` (R, S) degrees in source order (``predicted_angles`` None: no
    PredictedAngle variable); ``label`` lateral | azimuth; ``comment`` appended to "dualmic
    VERSION" in ``GLOBAL:Comment``; ``date_created`` UTC "YYYY-MM-DD hh:mm:ss" (None:
    SOURCE_DATE_EPOCH or now; a fixed value makes the files bit-identical across runs);
    ``hrtf_file`` the SOFA file of the head whose ears the receivers are (None: free-field mics).
    Invalid input is a one-line :class:`DualmicError` before anything is written.
    """

    def __init__(
        self,
        rirs,
        rooms: Rooms,
        mic_offsets,
        sample_rate: float,
        true_angles,
        predicted_angles,
        label: str,
        comment: str = "",
        date_created: str | None = None,
        license: str = LICENSE,
        author_contact: str = AUTHOR_CONTACT,
        hrtf_file: str | None = None,
    ):
        rirs = np.asarray(rirs)
        if rirs.ndim != 4 or rirs.shape[2] != 2:
            raise DualmicError(f"RIRs have shape {rirs.shape}; expected (rooms, sources, 2 mics, taps)")
        if not np.issubdtype(rirs.dtype, np.floating):
            raise DualmicError(f"RIRs have dtype {rirs.dtype}; expected floats")
        n_rooms, n_src, n_mics, _ = rirs.shape
        if not isinstance(rooms, Rooms) or len(rooms) != n_rooms:
            got = len(rooms) if isinstance(rooms, Rooms) else type(rooms).__name__
            raise DualmicError(f"rooms table has {got} rooms but the RIRs have {n_rooms}")
        if rooms.n_sources != n_src:
            raise DualmicError(f"rooms have {rooms.n_sources} sources but the RIRs have {n_src}")
        mics = np.asarray(mic_offsets, dtype=np.float64)
        if mics.shape != (n_mics, 3):
            raise DualmicError(f"mic offsets have shape {mics.shape}; expected ({n_mics}, 3)")
        if label not in LABEL_CONVENTIONS:
            raise DualmicError(f"label {label!r}: expected one of {', '.join(LABEL_CONVENTIONS)}")
        if not (isinstance(sample_rate, int | float) and sample_rate > 0):
            raise DualmicError(f"sample rate {sample_rate!r} must be a positive number (Hz)")
        true = np.asarray(true_angles, dtype=np.float64)
        pred = None if predicted_angles is None else np.asarray(predicted_angles, dtype=np.float64)
        for what, arr in (("true angles", true), ("predicted angles", pred)):
            if arr is not None and arr.shape != (n_rooms, n_src):
                raise DualmicError(f"{what} have shape {arr.shape}; expected ({n_rooms}, {n_src})")
        if not np.isfinite(true).all():
            raise DualmicError("true angles hold NaN or infinite values; re-run simulate")
        self.rirs = rirs
        self.mics = mics
        self.sample_rate = float(sample_rate)
        self.true = true
        self.pred = pred
        self.label = label
        self.comment = comment
        self.date = resolve_date(date_created)
        self.license = license
        self.author_contact = author_contact
        self.room_dim = rooms.room_dim
        self.rt60 = rooms.rt60
        self.center = rooms.array_center
        self.rot_deg = rooms.array_rot_deg
        self.src = rooms.src_pos
        self.hrtf_file = hrtf_file

    @property
    def n_rooms(self) -> int:
        return self.rirs.shape[0]

    @property
    def n_sources(self) -> int:
        return self.rirs.shape[1]

    def view(self) -> np.ndarray:
        """(R, 3) the listener's view in room coordinates: the array frame's x axis (mic axis),
        or for a head its front (the array frame's y axis)."""
        rot = np.radians(self.rot_deg) + (np.pi / 2 if self.hrtf_file else 0.0)
        return np.stack([np.cos(rot), np.sin(rot), np.zeros_like(rot)], axis=1)

    def receivers(self) -> np.ndarray:
        """(M, 3) receiver positions in the listener frame: the mic offsets, or the ears in
        SOFA's head frame (x front, y left, z up)."""
        return array_to_sofa_frame(self.mics) if self.hrtf_file else self.mics


# --------------------------------------------------------------------------------------------
# writing


def set_entry(sofa, name: str, value) -> None:
    """Set a convention entry (mandatory or optional) on a protected Sofa object."""
    sofa.protected = False
    setattr(sofa, name, value)
    sofa.protected = True


def add_variable(sofa, name, value, dims, units=None, description=None, **attributes) -> None:
    """A custom numeric variable with its Units / Description / other attributes."""
    sofa.add_variable(name, np.asarray(value, dtype=np.float64), "double", dims)
    if units is not None:
        sofa.add_attribute(f"{name}_Units", units)
    if description is not None:
        sofa.add_attribute(f"{name}_Description", description)
    for key, text in attributes.items():
        sofa.add_attribute(f"{name}_{key}", text)


def set_globals(sofa, title: str, ex: SofaExport) -> None:
    set_entry(sofa, "GLOBAL_Title", title)
    set_entry(sofa, "GLOBAL_Organization", ORGANIZATION)
    set_entry(sofa, "GLOBAL_License", ex.license)
    set_entry(sofa, "GLOBAL_AuthorContact", ex.author_contact)
    set_entry(sofa, "GLOBAL_Comment", f"dualmic {__version__}" + (f"; {ex.comment}" if ex.comment else ""))
    set_entry(sofa, "GLOBAL_DateCreated", ex.date)
    set_entry(sofa, "GLOBAL_DateModified", ex.date)
    set_entry(sofa, "GLOBAL_ApplicationName", "dualmic")
    set_entry(sofa, "GLOBAL_ApplicationVersion", __version__)
    set_entry(
        sofa, "GLOBAL_Origin", "simulated by dualmic (simulate stage); predictions by its trained model"
    )


def add_angles(sofa, ex: SofaExport, true: np.ndarray, pred: np.ndarray | None) -> None:
    convention = LABEL_CONVENTIONS[ex.label]
    add_variable(
        sofa, "TrueAngle", true, "M", "degree",
        f"true {ex.label} angle of the measurement's source (from the simulated geometry)",
        Convention=convention,
    )  # fmt: skip
    if pred is not None:
        add_variable(
            sofa, "PredictedAngle", pred, "M", "degree",
            f"the model's predicted {ex.label} angle of this source; {_PREDICTION_NOTE}",
            Convention=convention,
        )  # fmt: skip


def write_atomic(path: Path, sofa) -> Path:
    """Write ``sofa`` (sofar verifies it first) to ``path`` atomically via a temporary ``*.sofa``."""
    final = Path(path)
    if final.suffix != ".sofa":
        raise DualmicError(f"{final}: a SOFA file name must end in .sofa")
    sofar = load_sofar()
    with atomic_path(final) as tmp:
        written = tmp.with_suffix(".sofa")  # sofar replaces any other suffix by .sofa
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                sofar.write_sofa(str(written), sofa, compression=COMPRESSION)
            os.replace(written, tmp)
        except (OSError, RuntimeError) as err:  # netCDF/HDF5 report a full disk as RuntimeError
            why = getattr(err, "strerror", None) or one_line(err, 80)
            raise DualmicError(f"cannot write {final}: {why}") from None
        finally:
            if written.exists():
                written.unlink()
    return final
