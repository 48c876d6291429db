"""Tests of the speech bank (dualmic.data.speech, stage speech): talker clips of recorded words.

The tests on made-up packages run anywhere; those on the real recordings need Debian's
ktuberling-data and klettres-data (`make test` installs them) and are skipped without them.
"""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from tests_support import REPO, tiny_raw_params

from dualmic.core.errors import DualmicError
from dualmic.core.params import parse_params
from dualmic.core.schema_conditions import SpeechParams
from dualmic.data import speech
from dualmic.data.sources import FolderSources

FS = 16000
INSTALLED = all(p.root.is_dir() for p in speech.PACKAGES.values())
needs_packages = pytest.mark.skipif(
    not INSTALLED,
    reason="needs Debian's ktuberling-data and klettres-data (make speech-deps, or "
    "apt-get install ktuberling-data klettres-data)",
)


def _word(rng: np.random.Generator, rate: int, lead_s: float = 0.3, click: bool = False) -> np.ndarray:
    """A made-up recorded word: silence (with a faint noise floor), a voiced 0.4-s vowel, silence."""
    t = np.arange(int(0.4 * rate)) / rate
    f0 = rng.uniform(100.0, 220.0)
    vowel = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12) if f0 * h < 0.45 * rate)
    vowel *= np.hanning(len(t)) * 0.3
    x = np.concatenate([np.zeros(int(lead_s * rate)), vowel, np.zeros(int(0.3 * rate))])
    x += 1e-4 * rng.standard_normal(len(x))
    if click:
        x[5] = 0.9
    return x


def _fake_packages(root: Path) -> dict[str, Path]:
    """Two packages laid out as the real ones, with a duplicate folder and a low-rate folder."""
    rng = np.random.default_rng(0)
    kt, kl = root / "ktuberling" / "sounds", root / "klettres"
    for folder, rate, n in (("aa", 22050, 10), ("bb", 44100, 9), ("lo", 8000, 10)):
        (kt / folder).mkdir(parents=True)
        for i in range(n):
            sf.write(kt / folder / f"w{i:02d}.wav", _word(rng, rate, click=i == 0), rate)
    (kt / "aa@latin").mkdir()
    for f in sorted((kt / "aa").iterdir()):  # byte-identical copies, as ktuberling's sr@latin
        (kt / "aa@latin" / f.name).write_bytes(f.read_bytes())
    (kt / "aa.soundtheme").write_text("<language code='aa'/>")
    for sub, rate in (("alpha", 44100), ("syllab", 44100)):
        (kl / "cc_XX" / sub).mkdir(parents=True)
        for i in range(5):
            sf.write(kl / "cc_XX" / sub / f"{sub}{i}.flac", _word(rng, rate), rate)
    (kl / "pics").mkdir()
    (kl / "pics" / "x.png").write_bytes(b"not audio")
    return {"ktuberling": kt, "klettres": kl}


@pytest.fixture(scope="module")
def fake_roots(tmp_path_factory) -> dict[str, Path]:
    return _fake_packages(tmp_path_factory.mktemp("packages"))


def _md5s(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _zero_runs(x: np.ndarray, min_len: int) -> int:
    """Runs of exactly-zero samples at least ``min_len`` long."""
    zero = np.concatenate([[False], x == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return int(np.sum(edges[1::2] - edges[::2] >= min_len))


# ---------------------------------------------------------------- made-up packages


def test_recordings_voices_and_languages_follow_the_layout(fake_roots):
    recs = speech.find_recordings(("ktuberling", "klettres"), 16000, fake_roots)
    folders = {r.folder for r in recs}
    assert folders == {"aa", "bb", "cc_XX"}  # aa@latin: duplicates; lo: 8 kHz < min_file_rate
    assert {r.language for r in recs} == {"aa", "bb", "cc"}
    assert [r.name for r in recs if r.package == "klettres"][:2] == [
        "cc_XX/alpha/alpha0.flac",
        "cc_XX/alpha/alpha1.flac",
    ]
    groups = speech.voices(recs, min_words=10)
    assert list(groups) == ["klettres/cc_XX/44100", "ktuberling/aa/22050"]  # bb has 9 words
    low = speech.find_recordings(("ktuberling",), 8000, fake_roots)
    assert {r.folder for r in low} == {"aa", "bb", "lo"}


def test_a_word_is_trimmed_of_silence_and_clicks_at_unit_level(fake_roots):
    rec = speech.Recording(
        "ktuberling", fake_roots["ktuberling"] / "aa" / "w00.wav", "aa/w00.wav", "aa", 22050
    )
    word = speech.load_word(rec, FS)
    assert word is not None and 0.3 * FS < len(word) < 0.6 * FS  # 0.4-s vowel; 1 s file with a click
    assert np.sqrt(np.mean(word**2)) == pytest.approx(1.0, rel=0.35)


def test_bank_from_made_up_packages(fake_roots, tmp_path):
    params = SpeechParams(n_clips=5, clip_s=2.0, min_voice_words=5, seed=1)
    index = speech.build_bank(params, FS, tmp_path / "bank", fake_roots)
    assert len(index) == 5 and set(index["voice"]) <= {
        "klettres/cc_XX/44100",
        "ktuberling/aa/22050",
        "ktuberling/bb/44100",
    }
    for row in index.itertuples():
        audio, rate = sf.read(tmp_path / "bank" / row.file, dtype="int16")
        assert rate == FS and len(audio) == 2 * FS
        folder = row.voice.split("/")[1]
        assert all(w.startswith(folder + "/") for w in row.words.split(";"))
        assert row.n_words == len(row.words.split(";"))
        assert _zero_runs(audio, int(0.05 * FS) - 2) >= row.n_words  # a pause before every word


def test_a_missing_package_is_one_line_naming_apt(fake_roots, tmp_path):
    roots = dict(fake_roots, klettres=tmp_path / "absent")
    with pytest.raises(DualmicError) as err:
        speech.build_bank(SpeechParams(n_clips=2, clip_s=1.0), FS, tmp_path / "bank", roots)
    message = str(err.value)
    assert "\n" not in message and "apt-get install klettres-data" in message
    assert not (tmp_path / "bank").exists()


def test_no_usable_voice_is_one_line(fake_roots, tmp_path):
    with pytest.raises(DualmicError, match="min_voice_words") as err:
        speech.build_bank(SpeechParams(min_voice_words=500), FS, tmp_path / "bank", fake_roots)
    assert "\n" not in str(err.value) and not (tmp_path / "bank").exists()


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda s: s.update(n_clips=0), "speech.n_clips"),
        (lambda s: s.update(clip_s=0.1), "speech.clip_s"),
        (lambda s: s.update(clip_s="8"), "speech.clip_s"),
        (lambda s: s.update(pause_s=[0.3, 0.05]), "min 0.3 > max 0.05"),
        (lambda s: s.update(pause_s=[0.05, 30.0]), "max pause 30.0 s > 5 s"),
        (lambda s: s.update(packages=["ktuberling", "ktuberling"]), "at most once"),
        (lambda s: s.update(packages=["librispeech"]), "speech.packages"),
        (lambda s: s.update(level_db=-1.0), "speech.level_db"),
        (lambda s: s.update(seed=-1), "speech.seed"),
        (lambda s: s.update(pauses=[0.1, 0.2]), "did you mean speech.pause_s?"),
    ],
)
def test_bad_speech_params_are_one_line(edit, says):
    raw = tiny_raw_params()
    edit(raw["speech"])
    with pytest.raises(DualmicError) as err:
        parse_params(raw)
    assert "\n" not in str(err.value) and says in str(err.value), str(err.value)


def test_params_without_a_speech_section_get_the_defaults():
    raw = copy.deepcopy(tiny_raw_params())
    del raw["speech"]
    assert parse_params(raw).speech == SpeechParams()
    repo = yaml.safe_load((REPO / "params.yaml").read_text())["speech"]
    assert repo == SpeechParams().model_dump(mode="json")  # params.yaml spells out the defaults


# ---------------------------------------------------------------- the real recordings


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    if not INSTALLED:
        pytest.skip("needs Debian's ktuberling-data and klettres-data (make speech-deps)")
    out = tmp_path_factory.mktemp("speech") / "bank"
    return out, speech.build_bank(SpeechParams(n_clips=6, clip_s=3.0, seed=5), FS, out)


@needs_packages
def test_real_bank_is_bit_identical_when_rebuilt(bank, tmp_path):
    out, index = bank
    again = speech.build_bank(SpeechParams(n_clips=6, clip_s=3.0, seed=5), FS, tmp_path / "again")
    pd.testing.assert_frame_equal(index, again)
    assert _md5s(out) == _md5s(tmp_path / "again")
    speech.build_bank(SpeechParams(n_clips=2, clip_s=3.0, seed=6), FS, tmp_path / "other")
    assert _md5s(tmp_path / "other")["clips/clip_00000.flac"] != _md5s(out)["clips/clip_00000.flac"]


@needs_packages
def test_real_clips_have_the_length_rate_and_level_asked_for(bank):
    out, index = bank
    assert list(index["file"]) == [f"clips/clip_{i:05d}.flac" for i in range(6)]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.flac")) == list(index["file"])
    for row in index.itertuples():
        info = sf.info(out / row.file)
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (FS, 3 * FS, 1, "PCM_16")
        audio, _ = sf.read(out / row.file, dtype="int16")
        assert np.abs(audio.astype(np.int32)).max() <= int(0.99 * 32768) + 1  # never clipped
        x = audio / 32768.0
        assert 0.02 < np.sqrt(np.mean(x**2)) <= 0.1  # -20 dBFS over the active part at most
        assert _zero_runs(audio, int(0.05 * FS) - 2) >= row.n_words  # a pause before every word


@needs_packages
def test_real_clips_hold_one_language_and_one_voice(bank):
    _, index = bank
    assert index.columns.tolist() == ["file", "language", "voice", "package", "n_words", "words"]
    for row in index.itertuples():
        package, folder, rate = row.voice.split("/")
        assert row.package == speech.PACKAGES[package].apt
        words = row.words.split(";")
        assert len(words) == row.n_words >= 1
        assert all(w.split("/")[0] == folder for w in words)  # one folder: one language, one voice
        root = speech.PACKAGES[package].root
        assert all(sf.info(root / w).samplerate == int(rate) for w in words)
        assert row.language == folder.split("@")[0].split("_")[0].lower()


@needs_packages
def test_folder_sources_read_the_bank(bank):
    out, index = bank
    folder = FolderSources(out, FS)
    assert len(folder) == len(index)
    excerpt, i = folder.excerpt(np.random.default_rng(0), FS)
    assert excerpt.shape == (FS,) and np.sqrt(np.mean(excerpt**2)) > 0.01 and 0 <= i < len(index)


@needs_packages
@pytest.mark.slow
def test_features_train_on_the_bank_through_the_stages(tmp_path):
    """simulate, speech and features stages with sources.kind folder on data/speech."""
    raw = tiny_raw_params()
    raw["sources"].update(kind="folder", folder="data/speech")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for stage, args in (("simulate", ["train"]), ("speech", []), ("features", ["train"])):
        proc = subprocess.run(
            [sys.executable, str(REPO / "stages" / f"{stage}.py"), *args],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    feats = np.load(tmp_path / "data/features/train/features.npy")
    n_channels = 2 * len(raw["features"]["channels"])
    featurised = np.load(tmp_path / "data/features/train/rooms.npy")  # the validation rooms (online mixing)
    assert feats.shape[:2] == (len(featurised), n_channels) and np.isfinite(feats.astype(np.float32)).all()
    assert len(pd.read_csv(tmp_path / "data/speech/index.csv")) == 4
