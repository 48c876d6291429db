"""Atomic, streamed writing of stage outputs.

Every output is written under a temporary name in the destination folder and renamed into
place only when complete, so a killed stage never leaves a file that DVC or a later stage
would take as finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from dualmic.core.errors import DualmicError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file is removed if the block raises (or is interrupted).
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except PermissionError as err:
        raise DualmicError(f"cannot write {final}: permission denied") from err
    except OSError as err:
        raise DualmicError(f"cannot write {final}: {err.strerror}") from err
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files get normal modes
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` whole.

    On failure the temporary folder is removed and an existing ``path`` stays as it was.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise DualmicError(f"cannot write {final}: it exists and is not a folder")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except PermissionError as err:
        raise DualmicError(f"cannot write {final}: permission denied") from err
    except OSError as err:
        raise DualmicError(f"cannot write {final}: {err.strerror}") from err
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        old = None
        if final.exists():  # move the previous folder aside, put it back if the swap fails
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None:
                os.replace(old / final.name, final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write one array atomically as .npy."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def save_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a table atomically as CSV (full float precision, no index)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")


def save_json(path: str | os.PathLike, payload: dict) -> None:
    """Write a JSON document atomically, pretty-printed with sorted keys."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def npy_appender(path: str | os.PathLike, shape: tuple[int, ...], dtype) -> Iterator:
    """Stream a large array to disk in row order: yield ``append(rows)``, publish the file
    atomically once all ``shape[0]`` rows are in (a file left short is never published).

    Plain sequential writes: faster than filling a memmap, whose every page is faulted in, and
    the rows written do not stay in the process's resident memory as a memmap's pages do.
    The bytes are those of ``np.save`` of the whole array.
    """
    dtype = np.dtype(dtype)
    written = 0

    def append(rows: np.ndarray) -> None:
        nonlocal written
        rows = np.ascontiguousarray(rows, dtype=dtype)
        if rows.shape[1:] != tuple(shape[1:]) or written + len(rows) > shape[0]:
            raise ValueError(f"{path}: rows of shape {rows.shape} after {written} of {shape}")
        f.write(rows.data)
        written += len(rows)

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
        np.lib.format.write_array_header_1_0(f, header)
        yield append
        if written != shape[0]:
            raise ValueError(f"{path}: {written} of {shape[0]} rows written")


def load_npy(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """Read a .npy written by a stage; a missing or damaged file is a :class:`DualmicError`."""
    p = Path(path)
    if not p.is_file():
        raise DualmicError(f"missing input {p}: run the stage that produces it (dvc repro)")
    try:
        return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DualmicError(f"corrupt input {p}: {err}; delete it and re-run dvc repro") from err


def save_torch(path: str | os.PathLike, payload) -> None:
    """``torch.save`` atomically and byte-for-byte reproducibly.

    Saved to memory first: torch names the archive inside the file after the file, and the
    temporary file's random name would otherwise make identical payloads differ.
    """
    import io as _io

    import torch

    buffer = _io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
