"""SOFA export (dualmic.sofa.layout): round trips through sofar and netCDF4, verification, sofa_info."""

from __future__ import annotations

import subprocess
import sys

import netCDF4
import numpy as np
import pytest
import sofar
from packaging.version import Version

from dualmic import __version__
from dualmic.core.errors import DualmicError
from dualmic.sim.rooms import Rooms, RoomSpec, sample_rooms
from dualmic.sofa import layout as dsofa
from dualmic.sofa import predictions
from dualmic.sofa.info import sofa_info
from dualmic.sofa.layout import SofaExport
from dualmic.sofa.writers import write_general_fir, write_single_room_srir

DATE = "2026-01-02 03:04:05"
N_TAPS = 64
MICS = ((-0.05, 0.0, 0.0), (0.05, 0.0, 0.0))


def _rooms(n: int = 3):
    spec = RoomSpec(
        room_dim_min=(3.0, 3.0, 2.5),
        room_dim_max=(10.0, 6.0, 4.0),
        rt60_range=(0.1, 0.7),
        src_distance_range=(0.5, 5.0),
        min_wall_distance=0.5,
        mic_offsets=MICS,
        rotate_array=True,
        n_sources=2,
    )
    return sample_rooms(spec, 4242, 0, n)


@pytest.fixture(scope="module")
def data():
    rooms = _rooms(3)
    frame = rooms.to_frame()
    rng = np.random.default_rng(1)
    rirs = rng.standard_normal((3, 2, 2, N_TAPS)).astype(np.float32)
    true = frame[["src0_lateral_deg", "src1_lateral_deg"]].to_numpy()
    pred = predictions.predictions_per_source(np.sort(rng.uniform(0, 180, (3, 2)), axis=1), true)
    return {"rooms": rooms, "frame": frame, "rirs": rirs, "true": true, "pred": pred}


def _export(data, **over) -> SofaExport:
    kw = dict(
        rirs=data["rirs"],
        rooms=Rooms.from_frame(data["frame"], MICS),
        mic_offsets=MICS,
        sample_rate=16000,
        true_angles=data["true"],
        predicted_angles=data["pred"],
        label="lateral",
        comment='params {"simulate":{}}',
        date_created=DATE,
    )
    kw.update(over)
    return SofaExport(**kw)


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("sofa")
    general = write_general_fir(root / "eval_rirs.sofa", _export(data))
    single = write_single_room_srir(root / "rooms" / "room_0001.sofa", _export(data), 1)
    return {"general": general, "single": single, "root": root}


def _read(path):
    return sofar.read_sofa(str(path), verbose=False)  # verify='auto': verified while reading


def test_pinned_netcdf4_writes_without_string_variables(files):
    """sofar 1.3.0 crashes writing string variables with netCDF4 >= 1.7.4 (pyfar/sofar#132)."""
    assert Version(netCDF4.__version__) < Version("1.7.4")
    assert Version(sofar.__version__) == Version("1.3.0")
    for path in (files["general"], files["single"]):
        with netCDF4.Dataset(path) as ds:
            kinds = {name: var.dtype for name, var in ds.variables.items()}
            assert all(kind == np.float64 for kind in kinds.values()), kinds
            assert len(ds.dimensions["S"]) == 0  # no string data at all


def test_general_fir_round_trip(files, data):
    sofa = _read(files["general"])
    sofa.verify()  # raises on any violation of AES69 / GeneralFIR 1.0
    assert sofa.GLOBAL_SOFAConventions == "GeneralFIR" and sofa.GLOBAL_SOFAConventionsVersion == "1.0"
    rirs, rooms = data["rirs"], data["rooms"]
    # measurement m = room * n_sources + source; float32 -> float64 is exact
    np.testing.assert_array_equal(sofa.Data_IR, rirs.reshape(6, 2, N_TAPS).astype(np.float64))
    assert sofa.Data_SamplingRate == 16000 and sofa.Data_SamplingRate_Units == "hertz"
    np.testing.assert_array_equal(sofa.Data_Delay, np.zeros((1, 2)))  # (I, R)
    np.testing.assert_array_equal(sofa.SourcePosition, rooms.src_pos.reshape(6, 3))
    np.testing.assert_array_equal(sofa.ListenerPosition, np.repeat(rooms.array_center, 2, axis=0))
    np.testing.assert_array_equal(sofa.ReceiverPosition, np.array(MICS))
    for name in ("SourcePosition", "ListenerPosition", "ReceiverPosition", "ListenerView"):
        assert getattr(sofa, f"{name}_Type") == "cartesian" and getattr(sofa, f"{name}_Units") == "metre"
    np.testing.assert_array_equal(sofa.RoomIndex, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(sofa.SourceIndex, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(sofa.RoomDimensions, np.repeat(rooms.room_dim, 2, axis=0))
    np.testing.assert_array_equal(sofa.RT60, np.repeat(rooms.rt60, 2))
    np.testing.assert_array_equal(sofa.TrueAngle, data["true"].reshape(6))
    np.testing.assert_array_equal(sofa.PredictedAngle, data["pred"].reshape(6))
    assert sofa.TrueAngle_Units == sofa.PredictedAngle_Units == "degree"
    assert sofa.RT60_Units == "second" and sofa.RoomDimensions_Units == "metre"
    assert sofa.TrueAngle_Convention.startswith("lateral: angle between the source direction")
    assert "sorted ascending" in sofa.PredictedAngle_Description
    assert sofa.GLOBAL_DateCreated == DATE and sofa.GLOBAL_License == "CC-BY-4.0"
    assert sofa.GLOBAL_Organization == "dualmic" and sofa.GLOBAL_Title
    assert sofa.GLOBAL_Comment == f'dualmic {__version__}; params {{"simulate":{{}}}}'


def test_listener_view_is_the_array_rotation(files, data):
    sofa = _read(files["general"])
    view = np.asarray(sofa.ListenerView)
    np.testing.assert_allclose(np.linalg.norm(view, axis=1), 1.0)
    assert np.all(view[:, 2] == 0)
    angle = np.degrees(np.arctan2(view[:, 1], view[:, 0])) % 360
    expected = np.repeat(data["rooms"].array_rot_deg, 2) % 360
    np.testing.assert_allclose(angle, expected, atol=1e-9)
    np.testing.assert_array_equal(sofa.ListenerUp, [[0.0, 0.0, 1.0]])  # (I, C)


def test_geometry_in_the_file_reproduces_the_mics_and_labels(files, data):
    """Listener frame = array frame: view/up + receiver offsets give the mic positions, and the
    source direction in that frame gives the stored true (lateral) angle."""
    sofa = _read(files["general"])
    view = np.asarray(sofa.ListenerView)
    up = np.broadcast_to(np.asarray(sofa.ListenerUp), view.shape)
    left = np.cross(up, view)
    mics = np.asarray(sofa.ReceiverPosition)
    listener = np.asarray(sofa.ListenerPosition)
    placed = listener[:, None, :] + mics[None, :, 0:1] * view[:, None] + mics[None, :, 1:2] * left[:, None]
    placed = placed + mics[None, :, 2:3] * up[:, None]
    np.testing.assert_allclose(placed, np.repeat(data["rooms"].mic_pos, 2, axis=0), atol=1e-12)
    d = np.asarray(sofa.SourcePosition) - listener
    lateral = np.degrees(np.arccos(np.sum(d * view, axis=1) / np.linalg.norm(d, axis=1)))
    np.testing.assert_allclose(lateral, sofa.TrueAngle, atol=1e-9)


def test_single_room_srir_round_trip(files, data):
    sofa = _read(files["single"])
    sofa.verify()
    assert sofa.GLOBAL_SOFAConventions == "SingleRoomSRIR" and sofa.GLOBAL_RoomType == "shoebox"
    rooms = data["rooms"]
    np.testing.assert_array_equal(sofa.Data_IR, data["rirs"][1].astype(np.float64))
    np.testing.assert_array_equal(sofa.RoomCornerA, np.zeros((1, 3)))  # (I, C)
    np.testing.assert_array_equal(sofa.RoomCornerB, rooms.room_dim[1:2])
    assert sofa.RoomVolume == pytest.approx(np.prod(rooms.room_dim[1]))
    np.testing.assert_array_equal(sofa.SourcePosition, rooms.src_pos[1])
    np.testing.assert_array_equal(sofa.ListenerPosition, np.repeat(rooms.array_center[1:2], 2, axis=0))
    np.testing.assert_array_equal(np.asarray(sofa.ReceiverPosition).reshape(2, 3), np.array(MICS))
    view = np.asarray(sofa.ListenerView).reshape(3)
    assert np.degrees(np.arctan2(view[1], view[0])) % 360 == pytest.approx(rooms.array_rot_deg[1] % 360)
    np.testing.assert_array_equal(sofa.ListenerUp, [[0.0, 0.0, 1.0]])
    assert sofa.RT60 == rooms.rt60[1] and sofa.RoomIndex == 1
    np.testing.assert_array_equal(sofa.SourceIndex, [0, 1])
    np.testing.assert_array_equal(sofa.TrueAngle, data["true"][1])
    np.testing.assert_array_equal(sofa.PredictedAngle, data["pred"][1])
    assert sofa.GLOBAL_RoomShortName == "room_0001" and sofa.GLOBAL_DatabaseName


def test_plain_netcdf_view(files):
    with netCDF4.Dataset(files["general"]) as ds:
        assert {d: len(ds.dimensions[d]) for d in "MRN"} == {"M": 6, "R": 2, "N": N_TAPS}
        assert ds.variables["Data.IR"].dimensions == ("M", "R", "N")
        assert ds.variables["RoomDimensions"].dimensions == ("M", "C")
        for name in ("RT60", "RoomIndex", "SourceIndex", "TrueAngle", "PredictedAngle"):
            assert ds.variables[name].dimensions == ("M",)
        assert ds.SOFAConventions == "GeneralFIR" and ds.DateCreated == DATE
    with netCDF4.Dataset(files["single"]) as ds:
        assert {d: len(ds.dimensions[d]) for d in "MRN"} == {"M": 2, "R": 2, "N": N_TAPS}
        assert ds.variables["RoomCornerB"].shape == (1, 3)


def test_predictions_follow_the_order_of_the_true_angles():
    sorted_pred = np.array([[10.0, 100.0], [10.0, 100.0], [20.0, 30.0], [5.0, 6.0]])
    true = np.array([[12.0, 95.0], [95.0, 12.0], [40.0, 40.0], [7.0, 1.0]])
    out = predictions.predictions_per_source(sorted_pred, true)
    np.testing.assert_array_equal(out, [[10, 100], [100, 10], [20, 30], [6, 5]])
    three = predictions.predictions_per_source(np.array([[1.0, 2.0, 3.0]]), np.array([[50.0, 10.0, 30.0]]))
    np.testing.assert_array_equal(three, [[3, 1, 2]])
    with pytest.raises(DualmicError):
        predictions.predictions_per_source(np.zeros((2, 2)), np.zeros((3, 2)))


def test_fixed_date_gives_bit_identical_files(data, tmp_path):
    a = write_general_fir(tmp_path / "a" / "x.sofa", _export(data))
    b = write_general_fir(tmp_path / "b" / "x.sofa", _export(data))
    assert a.read_bytes() == b.read_bytes()


def test_no_predictions_and_azimuth_label(data, tmp_path):
    frame = data["frame"]
    azimuth = frame[["src0_azimuth_deg", "src1_azimuth_deg"]].to_numpy()
    path = write_general_fir(
        tmp_path / "x.sofa", _export(data, predicted_angles=None, true_angles=azimuth, label="azimuth")
    )
    sofa = _read(path)
    assert not hasattr(sofa, "PredictedAngle")
    assert sofa.TrueAngle_Convention.startswith("azimuth:")
    np.testing.assert_array_equal(sofa.TrueAngle, azimuth.reshape(6))


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"rirs": np.zeros((3, 2, 3, 8), np.float32)}, "RIRs have shape"),
        ({"true_angles": np.zeros((2, 2))}, "true angles have shape"),
        ({"predicted_angles": np.zeros((3, 3))}, "predicted angles have shape"),
        ({"label": "elevation"}, "label 'elevation'"),
        ({"date_created": "21.11.2026"}, "YYYY-MM-DD hh:mm:ss"),
        ({"mic_offsets": [[0, 0, 0]]}, "mic offsets have shape"),
    ],
)
def test_bad_inputs_are_one_line_errors(data, tmp_path, over, needle):
    with pytest.raises(DualmicError, match=needle) as err:
        write_general_fir(tmp_path / "x.sofa", _export(data, **over))
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_rooms_table_must_match(data, tmp_path):
    with pytest.raises(DualmicError, match="rooms table has 2 rooms"):
        _export(data, rooms=Rooms.from_frame(data["frame"].iloc[:2], MICS))
    with pytest.raises(DualmicError, match="lacks column"):
        Rooms.from_frame(data["frame"].drop(columns="rt60"), MICS)
    with pytest.raises(DualmicError, match="room index 3"):
        write_single_room_srir(tmp_path / "x.sofa", _export(data), 3)
    with pytest.raises(DualmicError, match="must end in .sofa"):
        write_general_fir(tmp_path / "x.nc", _export(data))


def test_failed_write_leaves_nothing(data, tmp_path, monkeypatch):
    (tmp_path / "x.sofa").write_text("old")

    def broken(filename, sofa, compression=4):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sofar, "write_sofa", broken)
    with pytest.raises(DualmicError, match=r"cannot write .*x\.sofa: disk on fire"):
        write_general_fir(tmp_path / "x.sofa", _export(data))
    assert [p.name for p in tmp_path.iterdir()] == ["x.sofa"]
    assert (tmp_path / "x.sofa").read_text() == "old"


def test_date_defaults(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert dsofa.resolve_date() == "1970-01-01 00:00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(DualmicError, match="SOURCE_DATE_EPOCH"):
        dsofa.resolve_date()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert len(dsofa.resolve_date()) == 19
    assert dsofa.resolve_date(DATE) == DATE


def test_params_comment(tiny_params):
    tiny_params = tiny_params.model_copy(
        update={"features": tiny_params.features.model_copy(update={"channels": ("ipd", "logmag")})}
    )
    text = dsofa.params_comment(tiny_params)
    assert text.startswith('params {"features":') and '"labels":{"angle":"lateral"' in text
    assert "\n" not in text and '"model"' not in text
    assert "onset_threshold_db" not in text  # no onset channels for it to act on
    onset = tiny_params.model_copy(
        update={"features": tiny_params.features.model_copy(update={"channels": ("ipd", "onset")})}
    )
    assert '"onset_threshold_db":0.0' in dsofa.params_comment(onset)


def test_sofa_info_summarises_an_export(files, capfd):
    text = sofa_info(files["general"])
    assert "GeneralFIR 1.0" in text and "M = 6, R = 2, N = 64" in text
    assert "sampling rate: 16000 hertz" in text
    assert "SourcePosition (cartesian, metre): x " in text and "ListenerPosition" in text
    assert "TrueAngle (M) 6 degree" in text and "RoomDimensions (M, C) 6x3 metre" in text
    assert "verify: ok" in text and f"comment: dualmic {__version__}" in text
    single = sofa_info(files["single"])
    assert "SingleRoomSRIR 1.0" in single and "room type shoebox" in single and "M = 2" in single
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # nothing of sofar's own printing or warnings


def test_sofa_info_reads_a_file_without_the_sofa_suffix(files, tmp_path):
    other = tmp_path / "copy.nc"
    other.write_bytes(files["general"].read_bytes())
    assert "GeneralFIR" in sofa_info(other)


def _bad_files(root, good):
    text = root / "notes.sofa"
    text.write_text("this is not a SOFA file\n")
    truncated = root / "truncated.sofa"
    raw = good.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    plain = root / "plain.sofa"
    with netCDF4.Dataset(plain, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("v", "f8", ("x",))[:] = [1.0, 2.0, 3.0]
        ds.title = "some netCDF data"
    return {
        "missing": (root / "nope.sofa", "no such file"),
        "text": (text, "cannot be read as SOFA"),
        "truncated": (truncated, "cannot be read as SOFA"),
        "plain netCDF": (plain, "not SOFA: it has no SOFAConventions"),
        "folder": (root, "is a folder"),
    }


@pytest.mark.parametrize("case", ["missing", "text", "truncated", "plain netCDF", "folder"])
def test_sofa_info_errors_are_one_line(files, tmp_path, capfd, case):
    path, needle = _bad_files(tmp_path, files["general"])[case]
    with pytest.raises(DualmicError) as err:
        sofa_info(path)
    message = str(err.value)
    assert "\n" not in message and needle in message and str(path) in message
    out, err_text = capfd.readouterr()
    assert out == "" and err_text == ""  # no HDF5 diagnostics or sofar warnings on the terminal


def test_sofa_info_error_through_user_errors_is_one_stderr_line(files, tmp_path):
    path, _ = _bad_files(tmp_path, files["general"])["truncated"]
    code = (
        "import sys\nfrom dualmic.core.errors import user_errors\nfrom dualmic.sofa.info import sofa_info\n"
        "with user_errors():\n    print(sofa_info(sys.argv[1]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}")


def test_damaged_data_chunk_is_an_error(files, tmp_path):
    raw = bytearray(files["general"].read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 256] = bytes(256)
    path = tmp_path / "damaged.sofa"
    path.write_bytes(bytes(raw))
    try:
        text = sofa_info(path)
    except DualmicError as err:
        assert "\n" not in str(err) and str(path) in str(err)
    else:  # zeroed bytes that happen to hit nothing sofar reads are fine too
        assert "GeneralFIR" in text


def test_rooms_from_frame_round_trip_matches_export_geometry(data):
    """The export reads geometry through Rooms.from_frame, the one reader of rooms.csv."""
    again = Rooms.from_frame(data["frame"], np.array(MICS))
    np.testing.assert_allclose(again.mic_pos, data["rooms"].mic_pos)
    np.testing.assert_array_equal(again.angles("lateral"), data["true"])
    ex = _export(data)
    np.testing.assert_array_equal(ex.src, data["rooms"].src_pos)
    np.testing.assert_array_equal(ex.center, data["rooms"].array_center)


def test_sofa_info_reports_failed_verification_and_unknown_conventions(files, tmp_path):
    bad = tmp_path / "bad.sofa"
    bad.write_bytes(files["general"].read_bytes())
    with netCDF4.Dataset(bad, "a") as ds:
        ds.RoomType = "cave"  # not a SOFA room type
    text = sofa_info(bad)
    assert "room type cave" in text and "verify: FAILS" in text
    with netCDF4.Dataset(bad, "a") as ds:
        ds.SOFAConventions = "NoSuchConvention"
    with pytest.raises(DualmicError, match="sofar cannot read it") as err:
        sofa_info(bad)
    assert "\n" not in str(err.value)


def test_binaural_rooms_use_the_sofa_head_frame_and_name_their_hrtf_file(data, tmp_path):
    """A room of ears (simulate.array.kind hrtf): SingleRoomSRIR that verifies, listener view = the
    head's front, receivers = the ears in SOFA's head frame (left at +y), the HRTF file named."""
    ears = ((-0.09, 0.0, 0.0), (0.09, 0.0, 0.0))
    hrtf = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"
    ex = _export(data, rooms=Rooms.from_frame(data["frame"], ears), mic_offsets=ears, hrtf_file=hrtf)
    sofa = _read(write_single_room_srir(tmp_path / "room_0000.sofa", ex, 0))
    sofa.verify()
    assert sofa.GLOBAL_SOFAConventions == "SingleRoomSRIR"
    np.testing.assert_allclose(np.asarray(sofa.ReceiverPosition).reshape(2, 3), [[0, 0.09, 0], [0, -0.09, 0]])
    rot = np.radians(data["rooms"].array_rot_deg[0])
    front = [-np.sin(rot), np.cos(rot), 0.0]  # the array frame's y axis in room coordinates
    np.testing.assert_allclose(np.asarray(sofa.ListenerView).reshape(3), front, atol=1e-12)
    assert "MIT_KEMAR_normal_pinna.sofa" in sofa.GLOBAL_ListenerDescription
    assert "left ear = mic 0" in sofa.GLOBAL_ReceiverDescription
    general = _read(write_general_fir(tmp_path / "eval_rirs.sofa", ex))
    general.verify()
    assert hrtf in general.GLOBAL_ListenerDescription
