"""Tests of dualmic.core.files: atomic publishing, streamed .npy, round trips, one-line input errors."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from dualmic.core.errors import DualmicError
from dualmic.core.files import (
    atomic_path,
    load_npy,
    npy_appender,
    save_csv,
    save_json,
    save_npy,
)
from dualmic.sim.rooms import Rooms


class Boom(RuntimeError):
    pass


def _one_line_error(fn, *needles: str) -> str:
    with pytest.raises(DualmicError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ---------------------------------------------------------------- atomic_path


def test_atomic_path_publishes_only_on_success(tmp_path):
    final = tmp_path / "sub" / "out.txt"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        tmp.write_text("done")
        assert not final.exists()  # nothing visible under the final name until the block ends
    assert final.read_text() == "done"
    assert sorted(p.name for p in final.parent.iterdir()) == ["out.txt"]


def test_atomic_path_leaves_nothing_when_the_block_raises(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(Boom), atomic_path(final) as tmp:
        tmp.write_text("half")
        assert tmp.exists()
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(Boom), atomic_path(final) as tmp:
        tmp.write_text("new")
        raise Boom
    assert final.read_text() == "old"
    assert list(tmp_path.iterdir()) == [final]


def test_atomic_path_replaces_an_existing_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with atomic_path(final) as tmp:
        tmp.write_text("new")
    assert final.read_text() == "new"
    assert list(tmp_path.iterdir()) == [final]


@pytest.mark.parametrize(
    "write",
    [
        lambda p: save_npy(p, np.arange(3)),
        lambda p: save_json(p, {"a": 1}),
        lambda p: save_csv(p, pd.DataFrame({"a": [1]})),
    ],
    ids=["npy", "json", "csv"],
)
def test_published_files_have_normal_modes(tmp_path, umask_022, write):
    final = tmp_path / "out"
    write(final)
    assert stat.S_IMODE(final.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_published_mode_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        save_json(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o600


# ---------------------------------------------------------------- npy_appender


def test_npy_appender_streams_rows_and_writes_the_bytes_of_np_save(tmp_path):
    final = tmp_path / "deep" / "rirs.npy"
    data = np.random.default_rng(0).standard_normal((7, 2, 3, 5)).astype(np.float32)
    with npy_appender(final, data.shape, "float16") as append:
        for start in range(0, 7, 3):
            append(data[start : start + 3])  # cast to float16 as np.ndarray.astype does
        assert not final.exists()
    back = load_npy(final)
    assert back.dtype == np.float16 and back.shape == data.shape
    np.testing.assert_array_equal(back, data.astype(np.float16))
    np.save(tmp_path / "reference.npy", data.astype(np.float16))
    assert final.read_bytes() == (tmp_path / "reference.npy").read_bytes()
    assert [p.name for p in final.parent.iterdir()] == ["rirs.npy"]


def test_npy_appender_leaves_nothing_when_interrupted_or_short(tmp_path):
    final = tmp_path / "features.npy"
    with pytest.raises(Boom), npy_appender(final, (4, 3), "float16") as append:
        append(np.ones((2, 3)))
        raise Boom
    with pytest.raises(ValueError, match="2 of 4 rows"), npy_appender(final, (4, 3), "float16") as append:
        append(np.ones((2, 3)))
    with pytest.raises(ValueError, match="rows of shape"), npy_appender(final, (4, 3), "float16") as append:
        append(np.ones((2, 4)))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- round trips


def test_save_npy_round_trip(tmp_path):
    labels = np.array([[3, 7], [0, 35]], dtype=np.int64)
    save_npy(tmp_path / "labels.npy", labels)
    back = np.load(tmp_path / "labels.npy")
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, labels)


def test_save_json_round_trip_sorted_and_pretty(tmp_path):
    payload = {"zeta": [1, 2.5, None], "alpha": {"b": "x", "a": True}}
    path = tmp_path / "metrics.json"
    save_json(path, payload)
    text = path.read_text()
    assert json.loads(text) == payload
    assert text.endswith("}\n") and text.index('"alpha"') < text.index('"zeta"')
    assert '\n  "alpha": {\n    "a": true,' in text  # indent 2, keys sorted at every level


def test_save_csv_round_trip(tmp_path):
    frame = pd.DataFrame(
        {
            "room": [0, 1, 2],
            "rt60": [0.1, 1 / 3, 0.7000000001],
            "src0_lateral_deg": [0.0, 179.99999, 45.123456789],
            "method": ["fra", "ism", "fra"],
        }
    )
    path = tmp_path / "rooms.csv"
    save_csv(path, frame)
    assert path.read_text().splitlines()[0] == "room,rt60,src0_lateral_deg,method"  # no index
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, frame, check_exact=False, rtol=1e-8, atol=0)  # %.9g


# ---------------------------------------------------------------- bad inputs


def test_load_npy_missing_file(tmp_path):
    missing = tmp_path / "rirs" / "train" / "rirs.npy"
    _one_line_error(lambda: load_npy(missing), str(missing), "missing input")


@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "read"])
def test_load_npy_truncated_file(tmp_path, mmap):
    path = tmp_path / "rirs.npy"
    np.save(path, np.ones((16, 2, 2, 100), dtype=np.float32))
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    _one_line_error(lambda: load_npy(path, mmap=mmap), str(path), "corrupt input")


def test_load_npy_not_an_npy_file(tmp_path):
    path = tmp_path / "rirs.npy"
    path.write_bytes(b"definitely not numpy" * 20)
    _one_line_error(lambda: load_npy(path), str(path), "corrupt input")


MICS = [[-0.05, 0.0, 0.0], [0.05, 0.0, 0.0]]


def _rooms_frame(n: int) -> pd.DataFrame:
    cols = dict.fromkeys(["room_x", "room_y", "room_z", "rt60", "array_x", "array_y", "array_z"], [4.0] * n)
    cols.update(rt60=[0.3] * n, array_rot_deg=[0.0] * n, src0_x=[1.0] * n, src0_y=[2.0] * n, src0_z=[1.5] * n)
    cols["src0_lateral_deg"] = [10.0 + i for i in range(n)]
    return pd.DataFrame(cols)


def test_rooms_read_checks_the_row_count(tmp_path):
    path = tmp_path / "rooms.csv"
    save_csv(path, _rooms_frame(3))
    rooms = Rooms.read(path, MICS, 3)
    assert len(rooms) == 3 and rooms.n_sources == 1
    np.testing.assert_array_equal(rooms.angles("lateral")[:, 0], [10.0, 11.0, 12.0])  # as stored
    _one_line_error(lambda: Rooms.read(path, MICS, 4), str(path), "has 3 rooms", "has 4")


def test_rooms_read_missing_empty_and_incomplete(tmp_path):
    missing = tmp_path / "rooms.csv"
    _one_line_error(lambda: Rooms.read(missing, MICS), str(missing), "missing input")
    missing.write_text("")
    _one_line_error(lambda: Rooms.read(missing, MICS), str(missing), "corrupt input")
    save_csv(missing, _rooms_frame(2).drop(columns="rt60"))
    _one_line_error(lambda: Rooms.read(missing, MICS), str(missing), "lacks column(s) rt60")


def test_writing_under_a_read_only_folder_is_a_user_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        target = folder / "metrics.json"
        _one_line_error(lambda: save_json(target, {"a": 1}), str(target), "permission denied")
        _one_line_error(lambda: save_npy(folder / "sub" / "x.npy", np.zeros(2)), "permission")
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []


def test_writing_below_a_file_is_a_user_error(tmp_path):
    """A path component that is a file, not a folder (fails for root too)."""
    blocker = tmp_path / "data"
    blocker.write_text("a file where a folder should be")
    target = blocker / "features" / "x.npy"
    _one_line_error(lambda: save_npy(target, np.zeros(2)), f"cannot write {target}")
    with pytest.raises(DualmicError):
        with npy_appender(blocker / "y.npy", (2,), "float32"):
            pass
    assert blocker.read_text() == "a file where a folder should be"


def test_permission_error_becomes_a_user_error(tmp_path, monkeypatch):
    """The read-only case without relying on permissions (root ignores them)."""

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("dualmic.core.files.tempfile.mkstemp", deny)
    target = tmp_path / "metrics.json"
    _one_line_error(lambda: save_json(target, {}), f"cannot write {target}: permission denied")
    assert list(tmp_path.iterdir()) == []
