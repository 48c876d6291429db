"""What the benchmark scripts share: the machine they ran on, params and split checks, the
common command-line options, and writing the result JSON.

The scripts import it as ``from common import ...``: Python puts the folder of the script it
runs (``benchmarks/``) on ``sys.path``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import typer

from dualmic.core.files import atomic_path
from dualmic.core.params import Params, SplitParams, load_params

# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-11-21T19:21:23+00:00``)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device | str = "cpu") -> dict:
    """The machine a benchmark runs on, as every script records it under ``"machine"``.

    Call it after setting the torch thread count. ``device`` is where the timed torch work runs;
    the load average is taken now, so a script that wants the load during its run measures that
    itself (``simulate_speed.py`` adds ``others_cpu_share``).
    """
    device = torch.device(device)
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not available on this platform
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15min": load,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchaudio": _version("torchaudio"),
        "pyroomacoustics": _version("pyroomacoustics"),
        "numpy": np.__version__,
    }


# --------------------------------------------------------------------------- params


def load_split(params_path: Path, split: str) -> tuple[Params, SplitParams]:
    """params.yaml and the params of ``split``.

    A missing or invalid params file, or a split that ``simulate.splits`` does not have, is a
    one-line :class:`~dualmic.core.errors.DualmicError` (run the script inside ``user_errors``).
    """
    params = load_params(params_path)
    return params, params.simulate.split(split)


def set_threads(threads: int | None) -> None:
    """``--threads``: torch's intra-op CPU threads; None keeps torch's choice."""
    if threads is not None:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- options


def params_option():
    return typer.Option(Path("params.yaml"), "--params", help="params file")


def split_option(default: str = "eval"):
    return typer.Option(default, "--split", help="split whose seed draws the rooms")


def threads_option():
    return typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's choice)")


def json_option():
    return typer.Option(None, "--json", help="also write all numbers to this JSON file")


# --------------------------------------------------------------------------- results


def finite_or_none(x):
    """JSON-safe values: NaN and inf floats, at any depth of dicts and lists, become None (null)."""
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite_or_none(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def write_json(path: Path, result: dict, indent: int = 2) -> None:
    """Write a result atomically as JSON (keys in the order the script built them; NaN -> null).

    The file appears complete or not at all: it is written beside ``path`` and renamed into place,
    as :func:`dualmic.core.files.save_json` does (which would sort the keys).
    """
    text = json.dumps(finite_or_none(result), indent=indent, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
