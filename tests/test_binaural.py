"""Binaural rooms from a measured head (simulate.array.kind: hrtf): physics, not shapes.

The head is the MIT KEMAR measurement Debian's libmysofa1 ships (``make hrtf-deps``).
"""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio

from dualmic.core.errors import DualmicError
from dualmic.core.params import load_params
from dualmic.sim.acoustics import rt60
from dualmic.sim.batches import fra_config, head, room_spec
from dualmic.sim.binaural import binaural_rirs, direct_spectra
from dualmic.sim.fra import image_draws
from dualmic.sim.hrtf import array_to_sofa_frame, load_hrtf, sofa_to_array_frame
from dualmic.sim.rooms import sample_rooms
from dualmic.spectral import spectral_loss

REPO = Path(__file__).resolve().parents[1]
KEMAR = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
FS = 16000
N_OUT = 2048
pytestmark = pytest.mark.skipif(not KEMAR.is_file(), reason="MIT KEMAR HRIRs not installed (make hrtf-deps)")


@pytest.fixture(scope="module")
def kemar():
    return load_hrtf(str(KEMAR), FS)


@pytest.fixture(scope="module")
def sim():
    base = load_params(REPO / "params.yaml").simulate
    return base.model_copy(
        update={
            "array": base.array.model_copy(update={"kind": "hrtf", "sofa": str(KEMAR)}),
            "mic_offsets": ((-0.09, 0.0, 0.0), (0.09, 0.0, 0.0)),
            "rt60_range": (0.2, 1.0),
        }
    )


def _direct(kemar, direction, distance=2.0):
    """Rendered direct path (2, N_OUT) from an array-frame direction, times its distance."""
    d = torch.as_tensor(np.asarray(direction, dtype=np.float32) * distance / np.linalg.norm(direction))
    cfg = replace(fra_config(load_params(REPO / "params.yaml").simulate), n_taps=N_OUT)
    spec = direct_spectra(kemar, d[None], cfg, N_OUT)[0]
    return torch.fft.irfft(spec, n=N_OUT).numpy() * distance


def _horizontal(lateral_deg: float) -> np.ndarray:
    """Array-frame unit vector at the head's height, in front, ``lateral_deg`` from the right ear."""
    t = np.radians(lateral_deg)
    return np.array([np.cos(t), np.sin(t), 0.0])


def test_axes_and_channels_follow_the_sofa_receivers():
    front_sofa, left_sofa = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    assert np.allclose(sofa_to_array_frame(front_sofa), [0, 1, 0])  # front is the array's y
    assert np.allclose(sofa_to_array_frame(left_sofa), [-1, 0, 0])  # the left ear is mic 0 (-x)
    v = np.random.default_rng(0).normal(size=(5, 3))
    assert np.allclose(array_to_sofa_frame(sofa_to_array_frame(v)), v)


def test_receivers_are_the_measured_ears(kemar):
    assert kemar.ir.shape[:2] == (710, 2) and kemar.sample_rate == FS
    np.testing.assert_allclose(kemar.ear_offsets, [[-0.09, 0, 0], [0.09, 0, 0]], atol=1e-9)
    assert np.allclose(np.linalg.norm(kemar.directions, axis=-1), 1)


def test_direct_path_reproduces_the_measured_hrir(kemar):
    """A direct path rendered by dualmic has the spectrum of the measured HRIR of its direction,
    resampled to 16 kHz by another resampler (torchaudio), within 1 dB of log-spectral distance."""
    import sofar

    raw = sofar.read_sofa(str(KEMAR), verify=False, verbose=False)
    ir44 = torch.as_tensor(np.asarray(raw.Data_IR), dtype=torch.float64)
    ref = torchaudio.functional.resample(ir44, 44100, FS)
    ref = ref / ref.pow(2).sum(-1).mean().sqrt()  # the same diffuse-field level as dualmic's
    freq = np.fft.rfftfreq(N_OUT, 1 / FS)
    band = (freq >= 100) & (freq <= 6500)  # inside the simulator's high-pass and anti-alias edges
    for lateral, elevation in [(30, 0), (90, 0), (150, 20), (60, -30), (0, 0)]:
        e = np.radians(elevation)
        direction = _horizontal(lateral) * np.cos(e) + np.array([0, 0, np.sin(e)])
        k = int(kemar.nearest(direction))
        rendered = np.abs(np.fft.rfft(_direct(kemar, direction), axis=-1))[:, band]
        measured = np.abs(np.fft.rfft(ref[k].numpy(), n=N_OUT, axis=-1))[:, band]
        lsd = float(spectral_loss(rendered, measured, metric="lsd", input_scale="linear"))
        assert lsd < 1.0, f"lateral {lateral}, elevation {elevation}: LSD {lsd:.2f} dB"


@pytest.fixture(scope="module")
def sphere(tmp_path_factory):
    """The rigid sphere of benchmarks/sphere_head.py (radius 8.75 cm), written and read back."""
    path = tmp_path_factory.mktemp("sphere") / "sphere.sofa"
    script = REPO / "benchmarks" / "sphere_head.py"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO / 'benchmarks'}"}
    subprocess.run([sys.executable, str(script), str(path)], check=True, env=env, capture_output=True)
    return load_hrtf(str(path), FS)


@pytest.mark.parametrize("head", ["kemar", "sphere"])
def test_itd_follows_woodworth_and_its_sign_follows_the_side(head, request):
    """The interaural time difference (peak of the cross-correlation, 8x upsampled) is within 60 us
    of Woodworth's a/c (theta + sin theta) for the head's radius, and the nearer ear leads: for the
    measured KEMAR and for the analytic rigid sphere (benchmarks/sphere_head.py)."""
    from scipy.signal import resample_poly

    kemar = request.getfixturevalue(head)
    a, c = kemar.head_radius_m, 343.0
    for lateral in range(0, 181, 15):
        up = resample_poly(_direct(kemar, _horizontal(lateral)), 8, 1, axis=-1)
        xc = np.correlate(up[0], up[1], "full")
        itd_us = (np.argmax(xc) - (up.shape[-1] - 1)) / (8 * FS) * 1e6  # > 0: the right ear leads
        theta = np.radians(90 - lateral)  # from the median plane towards the right ear
        woodworth = a / c * (abs(theta) + np.sin(abs(theta))) * np.sign(theta) * 1e6
        assert abs(itd_us - woodworth) < 60, (
            f"lateral {lateral}: ITD {itd_us:.0f} us, Woodworth {woodworth:.0f}"
        )
        if lateral < 75:
            assert itd_us > 100  # right side: mic 1 (right ear) first
        if lateral > 105:
            assert itd_us < -100


@pytest.mark.parametrize("head", ["kemar", "sphere"])
def test_ild_grows_with_frequency_for_lateral_sources(head, request):
    kemar = request.getfixturevalue(head)
    freq = np.fft.rfftfreq(N_OUT, 1 / FS)
    bands = [(200, 500), (1000, 2000), (3000, 6000)]
    for lateral, near in [(0, 1), (180, 0)]:
        power = np.abs(np.fft.rfft(_direct(kemar, _horizontal(lateral + (10 if lateral == 0 else -10))))) ** 2
        ild = [
            10
            * np.log10(
                power[near, (freq >= lo) & (freq < hi)].sum()
                / power[1 - near, (freq >= lo) & (freq < hi)].sum()
            )
            for lo, hi in bands
        ]
        assert 0 < ild[0] < ild[1] < ild[2], f"lateral {lateral}: ILD per band {np.round(ild, 1)} dB"
        assert ild[2] > {"kemar": 10, "sphere": 6}[head]  # a sphere's bright spot near its axis: less


def test_binaural_rt60_matches_target_like_free_field(sim):
    hrtf = head(sim)
    seed = sim.splits["eval"].seed
    rooms = sample_rooms(room_spec(sim), seed, 0, 16)
    cfg = fra_config(sim)
    rirs = binaural_rirs(rooms, image_draws(seed, 0, 16, 2, cfg.n_images), cfg, hrtf).numpy()
    assert rirs.shape == (16, 2, 2, cfg.n_taps) and np.isfinite(rirs).all()
    measured = np.array([[rt60(rirs[b, s, e], FS) for s in range(2) for e in range(2)] for b in range(16)])
    rel = np.abs(measured / rooms.rt60[:, None] - 1)
    assert np.median(rel) < 0.10 and np.percentile(rel, 90) < 0.20, f"median T30 error {np.median(rel):.3f}"


def test_room_rir_starts_with_the_direct_hrir_and_is_deterministic(sim):
    hrtf = head(sim)
    seed = sim.splits["eval"].seed
    rooms = sample_rooms(room_spec(sim), seed, 0, 6)
    cfg = fra_config(sim)
    draws = image_draws(seed, 0, 6, 2, cfg.n_images)
    rirs = binaural_rirs(rooms, draws, cfg, hrtf).numpy()
    assert np.array_equal(binaural_rirs(rooms, draws, cfg, hrtf).numpy(), rirs)
    part = binaural_rirs(sample_rooms(room_spec(sim), seed, 2, 3), draws[2:5], cfg, hrtf).numpy()
    np.testing.assert_allclose(part, rirs[2:5], rtol=0, atol=1e-6)
    # the nearer ear by the room's geometry is the louder in the first 3 ms after the direct sound
    lateral = rooms.angles("lateral")
    for b in range(6):
        for s in range(2):
            if abs(lateral[b, s] - 90) < 20:
                continue
            onset = int(np.argmax(np.abs(rirs[b, s]).max(0) > 0.3 * np.abs(rirs[b, s]).max()))
            early = (rirs[b, s, :, max(onset - 8, 0) : onset + 48] ** 2).sum(-1)
            assert (early[1] > early[0]) == (lateral[b, s] < 90)


def test_mic_offsets_must_be_the_ears(sim):
    wrong = sim.model_copy(update={"mic_offsets": ((-0.05, 0.0, 0.0), (0.05, 0.0, 0.0))})
    with pytest.raises(DualmicError, match=r"not the ears of .*set simulate.mic_offsets=\[\[-0.09"):
        head(wrong)


def _write_sofa(path, convention="SimpleFreeFieldHRIR", n_dirs=24, rate=44100.0):
    import sofar

    sofa = sofar.Sofa(convention)
    rng = np.random.default_rng(0)
    sofa.Data_IR = rng.normal(size=(n_dirs, 2, 64))
    sofa.Data_SamplingRate = rate
    az = np.linspace(0, 360, n_dirs, endpoint=False)
    sofa.SourcePosition = np.stack([az, np.zeros(n_dirs), np.full(n_dirs, 1.2)], -1)
    ears = np.array([[0, 0.09, 0], [0, -0.09, 0]])
    sofa.ReceiverPosition = ears[:, :, None] if convention == "SimpleFreeFieldHRIR" else ears
    sofa.Data_Delay = np.zeros((1, 2))
    sofar.write_sofa(str(path), sofa, compression=0)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "is not a readable SOFA file"),
        ("missing", "does not exist"),
        ("convention", "has convention GeneralFIR; expected SimpleFreeFieldHRIR"),
        ("few", "has 4 directions; at least 8 are needed"),
        ("low_rate", "is sampled at 8000 Hz; dualmic resamples whole-Hz rates of at least"),
        ("odd_rate", "is sampled at 44100.5 Hz"),
    ],
)
def test_bad_sofa_files_are_one_clear_error(tmp_path, kind, message):
    path = tmp_path / f"{kind}.sofa"
    if kind == "text":
        path.write_text("not a sofa file\n")
    elif kind == "convention":
        _write_sofa(path, convention="GeneralFIR")
    elif kind == "few":
        _write_sofa(path, n_dirs=4)
    elif kind == "low_rate":
        _write_sofa(path, rate=8000.0)
    elif kind == "odd_rate":
        _write_sofa(path, rate=44100.5)
    with pytest.raises(DualmicError, match=message) as err:
        load_hrtf(str(path), FS)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_any_simple_free_field_file_is_read(tmp_path):
    hrtf = load_hrtf(str(_write_sofa(tmp_path / "ok.sofa")), FS)
    assert hrtf.ir.shape == (24, 2, 24) and hrtf.ir.dtype == np.float32  # 64 taps at 44.1 kHz -> 24
    assert np.isclose(np.mean(np.sum(hrtf.ir.astype(np.float64) ** 2, -1)), 1, atol=1e-5)
    # azimuth 90 (SOFA: left) is the array frame's -x
    assert np.allclose(hrtf.directions[6], [-1, 0, 0], atol=1e-9)


def test_ism_with_the_same_measured_head_agrees_on_the_direct_sound(kemar):
    """pyroomacoustics' ISM with the KEMAR file as measured ear directivities and dualmic's binaural
    FRA-RIR give the same interaural level and time differences of the direct sound."""
    from dualmic.sim.fra import FraConfig
    from dualmic.sim.ism import ism_rirs
    from dualmic.sim.rooms import RoomSpec

    ears = ((-0.09, 0.0, 0.0), (0.09, 0.0, 0.0))
    spec = RoomSpec((4.0, 4.0, 2.5), (6.0, 5.0, 3.0), (0.2, 0.3), (1.0, 2.5), 0.5, ears, True, 2)
    rooms = sample_rooms(spec, 11, 0, 2)
    ism = ism_rirs(rooms, FS, 2400, 343.0, kemar)
    fra = binaural_rirs(rooms, image_draws(11, 0, 2, 2, 2048), FraConfig(FS, 2400), kemar).numpy()
    arrival = np.linalg.norm(rooms.src_pos - rooms.array_center[:, None], axis=-1) / 343.0 * FS
    for b in range(2):
        for s in range(2):
            w = slice(int(arrival[b, s]) - 20, int(arrival[b, s]) + 40)  # before the first reflection
            ild = [10 * np.log10((x[0, w] ** 2).sum() / (x[1, w] ** 2).sum()) for x in (ism[b, s], fra[b, s])]
            itd = [np.argmax(np.correlate(x[0, w], x[1, w], "full")) for x in (ism[b, s], fra[b, s])]
            assert abs(ild[0] - ild[1]) < 1.5, (
                f"room {b} source {s}: ILD ISM {ild[0]:.1f}, FRA {ild[1]:.1f} dB"
            )
            assert abs(itd[0] - itd[1]) <= 1


def test_directions_off_the_measured_grid_keep_their_lateral_angle(kemar):
    """The KEMAR has no direction below -40 deg elevation; a source there is rendered through a
    measured direction on (nearly) its own cone of confusion, so its interaural cues match its
    lateral label, and a measured direction renders through itself."""
    from dualmic.core.labels import lateral_deg

    assert (kemar.nearest(kemar.directions) == np.arange(len(kemar.directions))).all()
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    err = np.abs(lateral_deg(v) - lateral_deg(kemar.directions[kemar.nearest(v)]))
    below = np.degrees(np.arcsin(v[:, 2])) < -40
    assert below.mean() > 0.15 and err[below].max() < 8 and np.mean(err) < 1.5
    plain = np.abs(lateral_deg(v) - lateral_deg(kemar.directions[np.argmax(v @ kemar.directions.T, axis=1)]))
    assert plain[below].mean() > 5  # what plain nearest-neighbour choice would do
