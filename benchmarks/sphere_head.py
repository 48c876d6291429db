"""A head dualmic never trained on: the rigid sphere, written as a SimpleFreeFieldHRIR SOFA file.

The sound field on a rigid sphere of radius a under a plane wave is known exactly (Rayleigh's
series; the spherical head model of Brown & Duda): with θ the angle between an ear's outward
normal and the direction towards the source and μ = ka,

    H(μ, θ) = (i / μ²) Σ_m (2m + 1) (−i)^m P_m(cos θ) / h_m'(μ)      (time factor e^{−iωt})

relative to the free-field pressure at the sphere's centre. Its conjugate is the response under
numpy's e^{+iωt}. The ears sit at ±90° on the interaural axis; no pinna, no torso. A model
trained on the MIT KEMAR dummy head that localises talkers heard through this head has learnt
interaural cues, not one measurement.

    .venv/bin/python benchmarks/sphere_head.py /tmp/sphere.sofa [--radius 0.0875] [--rate 44100]

Then any stage that takes ``simulate.array.sofa`` reads it, e.g. the conditions test's binaural
condition with a params copy whose ``simulate.array.sofa`` is the file (README: Two ears).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from scipy.special import eval_legendre, spherical_jn, spherical_yn

from dualmic.core.errors import DualmicError, user_errors
from dualmic.sofa.layout import write_atomic

app = typer.Typer(add_completion=False)

C = 343.0  # m/s
N_TAPS = 512
LEAD = 64  # taps before the arrival at the centre (the near ear's lead is a / c, < 20 taps)


def sphere_response(cos_theta: np.ndarray, ka: np.ndarray, terms: int) -> np.ndarray:
    """H(ka, θ) (..., F) of the rigid sphere at the surface, e^{+iωt} convention; H = 1 at ka = 0."""
    out = np.zeros((*cos_theta.shape, len(ka)), dtype=np.complex128)
    x = np.where(ka > 0, ka, 1.0)  # ka = 0 is set below
    for m in range(terms):
        dh = spherical_jn(m, x, derivative=True) + 1j * spherical_yn(m, x, derivative=True)
        coef = (2 * m + 1) * (-1j) ** m / dh  # (F,)
        out += eval_legendre(m, cos_theta)[..., None] * coef
    out *= 1j / x**2
    out = np.conj(out)
    out[..., ka == 0] = 1.0
    return out


def sphere_hrirs(directions: np.ndarray, radius: float, rate: int) -> np.ndarray:
    """HRIRs (D, 2, N_TAPS) for unit source directions (D, 3) in SOFA's frame (x front, y left):
    ear 0 = left (+y), ear 1 = right (−y); the arrival at the centre at tap LEAD."""
    freq = np.fft.rfftfreq(N_TAPS, 1 / rate)
    ka = 2 * np.pi * freq * radius / C
    terms = int(np.ceil(ka.max())) + 30
    ears = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    cos_theta = directions @ ears.T  # (D, 2)
    spec = sphere_response(cos_theta, ka, terms) * np.exp(-2j * np.pi * freq * LEAD / rate)
    ir = np.fft.irfft(spec, n=N_TAPS)
    fade = np.ones(N_TAPS)
    fade[-64:] = 0.5 * (1 + np.cos(np.linspace(0, np.pi, 64)))  # the series' tail wraps: taper it
    return ir * fade


def grid() -> np.ndarray:
    """(D, 3) azimuth / elevation / distance (degrees, metres) like the MIT KEMAR's: elevations
    -40 to 90 degrees in 10-degree rings, azimuths spaced about 5 degrees along each ring."""
    rows = []
    for el in range(-40, 91, 10):
        n = max(1, int(round(72 * np.cos(np.radians(el)))))
        rows += [(az, float(el), 1.4) for az in np.arange(n) * 360.0 / n]
    return np.array(rows)


@app.command()
def main(
    out: Path = typer.Argument(..., help="SOFA file to write"),
    radius: float = typer.Option(0.0875, help="sphere radius in metres (the ears are 2x apart)"),
    rate: int = typer.Option(44100, help="sample rate in Hz"),
) -> None:
    """Write the rigid-sphere head's HRIRs as a SimpleFreeFieldHRIR file."""
    with user_errors():
        if not 0.03 <= radius <= 0.2:
            raise DualmicError(f"--radius {radius:g}: give a head radius in metres, 0.03 to 0.2")
        if rate < 16000:
            raise DualmicError(f"--rate {rate}: give at least 16000 Hz")
        import sofar  # noqa: PLC0415

        pos = grid()
        az, el = np.radians(pos[:, 0]), np.radians(pos[:, 1])
        unit = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
        sofa = sofar.Sofa("SimpleFreeFieldHRIR")
        sofa.Data_IR = sphere_hrirs(unit, radius, rate)
        sofa.Data_SamplingRate = float(rate)
        sofa.SourcePosition = pos
        sofa.ReceiverPosition = np.array([[0.0, radius, 0.0], [0.0, -radius, 0.0]])[..., None]
        sofa.GLOBAL_Title = f"rigid sphere, radius {radius:g} m, ears at +-90 degrees"
        sofa.GLOBAL_Comment = "analytic (Rayleigh series), written by benchmarks/sphere_head.py"
        write_atomic(out, sofa)
        print(f"{out}: {len(pos)} directions, radius {radius:g} m, {rate} Hz")


if __name__ == "__main__":
    app()
