"""Tests of dualmic.data.sources: speech-like synthetic sources, folder sources, chunked generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dualmic.core.errors import DualmicError
from dualmic.data import sources
from dualmic.data.sources import FolderSources, source_signals, synthetic_speech

FS = 16000
SEEDS = [0, 1, 2, 3, 4]


def _speech(seed: int, n: int = 3 * FS, fs: int = FS) -> np.ndarray:
    return synthetic_speech(np.random.default_rng(seed), n, fs)


def _white(n: int = 3 * FS) -> np.ndarray:
    return np.random.default_rng(123).standard_normal(n).astype(np.float32)


def _quiet_fraction(x: np.ndarray, fs: int = FS) -> float:
    """Fraction of 20 ms frames more than 30 dB below the loudest frame."""
    size = int(0.02 * fs)
    energy = np.mean(x[: len(x) // size * size].reshape(-1, size) ** 2, axis=1)
    return float(np.mean(energy < energy.max() * 1e-3))


def _tilt_db(x: np.ndarray, fs: int = FS) -> float:
    """Energy below 1 kHz over energy in 4-8 kHz, in dB."""
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / fs)
    low = power[freqs < 1000].sum()
    high = power[(freqs >= 4000) & (freqs < 8000)].sum()
    return float(10 * np.log10(low / high))


def _pitch_autocorr(x: np.ndarray, fs: int = FS, n_frames: int = 5) -> float:
    """Median over the loudest 40 ms frames of the max normalised autocorrelation at 80-300 Hz."""
    size = int(0.04 * fs)
    frames = x[: len(x) // size * size].reshape(-1, size).astype(np.float64)
    loudest = frames[np.argsort(np.sum(frames**2, axis=1))[-n_frames:]]
    peaks = []
    for frame in loudest - loudest.mean(axis=1, keepdims=True):
        best = 0.0
        for lag in range(fs // 300, fs // 80 + 1):
            a, b = frame[:-lag], frame[lag:]
            best = max(best, float(a @ b / np.sqrt((a @ a) * (b @ b) + 1e-20)))
        peaks.append(best)
    return float(np.median(peaks))


def _dominant_hz(x: np.ndarray, fs: int = FS) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / fs)[np.argmax(spectrum)])


# ---------------------------------------------------------------- synthetic speech


def test_synthetic_is_deterministic_and_seed_dependent():
    assert np.array_equal(_speech(5), _speech(5))
    assert not np.allclose(_speech(5), _speech(6))


@pytest.mark.parametrize("fs", [8000, 16000, 22050, 48000])
@pytest.mark.parametrize("seconds", [None, 0.01, 1.0])
def test_synthetic_shapes_dtype_finite(fs, seconds):
    for n in [1, 2, 257] if seconds is None else [int(seconds * fs)]:
        x = _speech(3, n, fs)
        assert x.shape == (n,) and x.dtype == np.float32
        assert np.all(np.isfinite(x))


def test_synthetic_level_is_normalised():
    x = _speech(0)
    rms = np.sqrt(np.mean(x**2))
    assert 0.3 < rms <= 1.0  # unit RMS over the active part, silences pull the overall RMS down
    assert np.abs(x).max() < 20


@pytest.mark.parametrize("seed", SEEDS)
def test_synthetic_has_silent_stretches(seed):
    assert _quiet_fraction(_speech(seed)) > 0.15


@pytest.mark.parametrize("seed", SEEDS)
def test_synthetic_has_speech_spectral_tilt(seed):
    assert _tilt_db(_speech(seed)) > 6.0


@pytest.mark.parametrize("seed", SEEDS)
def test_synthetic_loud_frames_are_pitched(seed):
    assert _pitch_autocorr(_speech(seed)) > 0.5


def test_white_noise_fails_the_speech_checks():
    noise = _white()
    assert _quiet_fraction(noise) <= 0.15
    assert _tilt_db(noise) <= 6.0
    assert _pitch_autocorr(noise) <= 0.5


# ---------------------------------------------------------------- folder sources


def _tone(hz: float, seconds: float, fs: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * fs)) / fs)).astype(np.float32)


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """a_speech.wav (22.05 kHz), b_tone2500.flac (22.05 kHz), sub/c_short.WAV (16 kHz stereo,
    0.1 s of 1 kHz), tone440.wav (8 kHz, 1 s), plus a text file that must be ignored."""
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a_speech.wav", synthetic_speech(np.random.default_rng(9), 44100, 22050) / 8, 22050)
    sf.write(folder / "b_tone2500.flac", _tone(2500, 2.0, 22050), 22050)
    short = _tone(1000, 0.1, FS)
    sf.write(folder / "sub" / "c_short.WAV", np.stack([short, np.zeros_like(short)], 1), FS)
    sf.write(folder / "tone440.wav", _tone(440, 1.0, 8000), 8000)
    (folder / "notes.txt").write_text("not audio")
    return folder


def _only(src: FolderSources, name: str) -> set[int]:
    """An exclude set that leaves just the file called ``name``."""
    return {i for i, p in enumerate(src.files) if p.name != name}


def test_folder_finds_files_recursively_in_sorted_order(audio_dir):
    src = FolderSources(audio_dir, FS)
    rel = [p.relative_to(audio_dir).as_posix() for p in src.files]
    assert rel == ["a_speech.wav", "b_tone2500.flac", "sub/c_short.WAV", "tone440.wav"]
    assert len(src) == 4


def test_folder_resamples_and_keeps_the_tone(audio_dir):
    src = FolderSources(audio_dir, FS)
    x, index = src.excerpt(np.random.default_rng(0), 8000, exclude=_only(src, "tone440.wav"))
    assert src.files[index].name == "tone440.wav"
    assert x.shape == (8000,) and x.dtype == np.float32
    assert abs(_dominant_hz(x) - 440) < 4
    assert len(src._load(index)) == FS  # 1 s at 8 kHz -> 16000 samples
    y, index = src.excerpt(np.random.default_rng(0), 8000, exclude=_only(src, "b_tone2500.flac"))
    assert abs(len(src._load(index)) - 2 * FS) <= 1
    assert abs(_dominant_hz(y) - 2500) < 4


def test_folder_tiles_short_files_and_averages_channels(audio_dir):
    src = FolderSources(audio_dir, FS)
    x, _ = src.excerpt(np.random.default_rng(1), 5000, exclude=_only(src, "c_short.WAV"))
    assert x.shape == (5000,)
    np.testing.assert_array_equal(x[:3400], x[1600:5000])  # period = the 1600-sample file
    assert np.abs(x).max() == pytest.approx(0.25, abs=1e-3)  # mean of (tone 0.5, silence)


def test_folder_excerpt_is_deterministic(audio_dir):
    a = FolderSources(audio_dir, FS).excerpt(np.random.default_rng(3), 4000)
    b = FolderSources(audio_dir, FS).excerpt(np.random.default_rng(3), 4000)
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_folder_cache_is_bounded(audio_dir, monkeypatch):
    monkeypatch.setattr(sources, "_CACHE_FILES", 2)
    src = FolderSources(audio_dir, FS)
    for i in range(4):
        src._load(i)
    assert list(src._cache) == [2, 3]


def _which_file(x: np.ndarray) -> str:
    hz = _dominant_hz(x)
    for name, tone in [("tone440", 440), ("short", 1000), ("tone2500", 2500)]:
        if abs(hz - tone) < 10:
            return name
    return "speech"


def test_sources_of_a_room_come_from_different_files(audio_dir):
    out = source_signals("folder", str(audio_dir), 1, 7, 0, 6, 3, 4000, FS)
    assert out.shape == (6, 3, 4000) and out.dtype == np.float32
    for room in out:
        assert len({_which_file(x) for x in room}) == 3
    more = source_signals("folder", str(audio_dir), 1, 7, 0, 2, 6, 4000, FS)  # > files: reuse
    assert np.all(np.isfinite(more))


# ---------------------------------------------------------------- source_signals


@pytest.mark.parametrize("kind", ["synthetic", "folder"])
def test_source_signals_do_not_depend_on_chunking(kind, audio_dir):
    folder = str(audio_dir) if kind == "folder" else None
    whole = source_signals(kind, folder, 1, 20231, 0, 5, 2, 3000, FS)
    parts = [source_signals(kind, folder, 1, 20231, s, c, 2, 3000, FS) for s, c in [(0, 2), (2, 3)]]
    np.testing.assert_array_equal(whole, np.concatenate(parts))
    assert whole.shape == (5, 2, 3000) and whole.dtype == np.float32
    other_split = source_signals(kind, folder, 1, 4242, 0, 5, 2, 3000, FS)
    assert not np.array_equal(whole, other_split)


def test_synthetic_source_signals_use_room_and_source_seeds():
    out = source_signals("synthetic", None, 1, 2, 3, 2, 2, 1600, FS)
    expected = synthetic_speech(np.random.default_rng([1, 2, 4, 1]), 1600, FS)
    np.testing.assert_array_equal(out[1, 1], expected)
    assert not np.array_equal(out[0, 0], out[0, 1])


# ---------------------------------------------------------------- errors


def _one_line_error(fn, *needles: str) -> None:
    with pytest.raises(DualmicError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_missing_folder_is_a_user_error(tmp_path):
    missing = tmp_path / "nope"
    _one_line_error(lambda: FolderSources(missing, FS), str(missing))
    _one_line_error(lambda: source_signals("folder", str(missing), 1, 2, 0, 1, 1, 10, FS), str(missing))


def test_folder_without_audio_is_a_user_error(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    _one_line_error(lambda: FolderSources(tmp_path, FS), str(tmp_path), "no .wav or .flac")


def test_unreadable_file_is_a_user_error_naming_it(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not a wav file at all" * 10)
    src = FolderSources(tmp_path, FS)
    _one_line_error(lambda: src.excerpt(np.random.default_rng(0), 100), str(bad))


def test_bad_kind_and_missing_folder_setting_are_user_errors():
    _one_line_error(lambda: source_signals("noise", None, 1, 2, 0, 1, 1, 10, FS), "noise")
    _one_line_error(lambda: source_signals("folder", None, 1, 2, 0, 1, 1, 10, FS), "folder")
