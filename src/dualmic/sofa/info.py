"""``dualmic sofa-info``: what a SOFA file holds, at a glance, or one clear error line."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dualmic.core.errors import DualmicError, one_line
from dualmic.sofa.layout import load_sofar


@contextlib.contextmanager
def _as_sofa_name(path: Path) -> Iterator[Path]:
    """``path`` itself if it ends in .sofa, else a temporary .sofa link to it (sofar reads only *.sofa)."""
    if path.suffix == ".sofa":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dualmic-sofa-") as tmp:
        link = Path(tmp) / "file.sofa"
        link.symlink_to(path.resolve())
        yield link


def _ranges(values: np.ndarray, names: tuple[str, str, str]) -> str:
    values = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    return ", ".join(f"{n} {values[:, j].min():.3g}..{values[:, j].max():.3g}" for j, n in enumerate(names))


def _position_line(sofa, ds, name: str) -> str | None:
    if name not in ds.variables:
        return None
    kind = str(getattr(sofa, f"{name}_Type", "?"))
    units = str(getattr(sofa, f"{name}_Units", "?"))
    names = ("azimuth", "elevation", "radius") if kind == "spherical" else ("x", "y", "z")
    return f"{name} ({kind}, {units}): {_ranges(ds.variables[name][:], names)}"


def sofa_info(path: str | os.PathLike) -> str:
    """A human summary of a SOFA file; anything unreadable is a one-line :class:`DualmicError`."""
    p = Path(path)
    if p.is_dir():
        raise DualmicError(f"{p} is a folder; give a .sofa file")
    if not p.is_file():
        raise DualmicError(f"{p}: no such file")
    sofar = load_sofar()
    import netCDF4

    lines: list[str] = []
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        with _as_sofa_name(p) as name:
            try:
                ds = netCDF4.Dataset(name, "r")
            except Exception as err:  # noqa: BLE001  (netCDF raises OSError, RuntimeError, ...)
                why = getattr(err, "strerror", None) or one_line(err, 80)
                raise DualmicError(
                    f"{p} cannot be read as SOFA (netCDF-4/HDF5): {why}; is it damaged, truncated or "
                    "another format?"
                ) from None
            try:
                attrs = set(ds.ncattrs())
                if "SOFAConventions" not in attrs:
                    raise DualmicError(
                        f"{p} is a netCDF file but not SOFA: it has no SOFAConventions attribute"
                    )
                try:
                    sofa = sofar.read_sofa(str(name), verify=False, verbose=False)
                except Exception as err:  # noqa: BLE001  (sofar raises many types on bad files)
                    raise DualmicError(
                        f"{p} is damaged or not valid SOFA: sofar cannot read it ({type(err).__name__}: "
                        f"{one_line(err, 100)})"
                    ) from None
                try:
                    issues = sofa.verify(issue_handling="return", mode="read")
                except Exception as err:  # noqa: BLE001
                    issues = f"ERRORS {type(err).__name__}: {err}"
                dims = {d: len(ds.dimensions[d]) for d in ds.dimensions}
                lines.append(str(p))
                lines.append(
                    f"  convention: {sofa.GLOBAL_SOFAConventions} {sofa.GLOBAL_SOFAConventionsVersion} "
                    f"(SOFA {getattr(sofa, 'GLOBAL_Version', '?')}), data type "
                    f"{getattr(sofa, 'GLOBAL_DataType', '?')}, "
                    f"room type {getattr(sofa, 'GLOBAL_RoomType', '?')}"
                )
                shown = [d for d in "MRNECIS" if d in dims] + [d for d in dims if d not in "MRNECIS"]
                lines.append("  dimensions: " + ", ".join(f"{d} = {dims[d]}" for d in shown))
                rate = ds.variables.get("Data.SamplingRate")
                if rate is not None:
                    values = np.unique(np.asarray(rate[:], dtype=np.float64))
                    unit = getattr(rate, "Units", "")
                    lines.append(
                        "  sampling rate: " + ", ".join(f"{v:g}" for v in values) + f" {unit}".rstrip()
                    )
                for var in ("SourcePosition", "ListenerPosition"):
                    line = _position_line(sofa, ds, var)
                    if line:
                        lines.append("  " + line)
                custom = getattr(sofa, "_custom", {}) or {}
                extra = []
                for key, entry in custom.items():
                    if entry.get("type") == "attribute":
                        continue
                    var = ds.variables.get(key.replace("Data_", "Data."))
                    if var is None:
                        continue
                    shape = "x".join(str(s) for s in var.shape)
                    units = getattr(var, "Units", None)
                    extra.append(
                        f"{var.name} ({', '.join(var.dimensions)}) {shape}" + (f" {units}" if units else "")
                    )
                lines.append("  extra variables: " + ("; ".join(extra) if extra else "none"))
                if issues and "ERRORS" in issues:
                    lines.append(
                        "  verify: FAILS (sofar.read_sofa(path, verify=False) then sofa.verify() for details)"
                    )
                elif issues:
                    lines.append("  verify: ok, with warnings")
                else:
                    lines.append("  verify: ok")
                lines.append(f"  title: {one_line(getattr(sofa, 'GLOBAL_Title', '')) or '(none)'}")
                lines.append(f"  comment: {one_line(getattr(sofa, 'GLOBAL_Comment', ''), 200) or '(none)'}")
            finally:
                ds.close()
    return "\n".join(lines)
