"""Recordings from another simulator, as a user would bring them: the conditions of real rooms
rendered by pyroomacoustics' image-source method (ISM), written as two-channel wav files, and
localised by ``dualmic predict`` itself.

``render`` writes a folder of recordings and their true lateral angles (``truth.json``) once;
``score`` runs one or more model files over the same files (the CLI, as a user runs it: its own
count, resampling of the 48-kHz files included) and SRP-PHAT told the count, and prints count
accuracy and MAE per condition. No training split, the conditions test or the model has seen
these rooms (their own seeds), their talkers (English espeak-ng voices) or their noise fields.

Conditions (``--n-rooms`` rooms each, two talkers unless said; RT60 0.1-0.7 s unless said):

* ``clean``;
* ``diffuse_like``: eight pink-noise point sources at other positions of the room, through its
  own RIRs, summed at 5-15 dB SNR (the usual way to approximate a diffuse field in a simulator);
* ``rt60_0.8-1.2``: RT60 drawn in 0.8-1.2 s;
* ``mismatch``: per-mic gain +-3 dB, first-order tilt +-0.3 and all-pass +-0.05, white sensor
  noise at 30 dB SNR;
* ``one_talker``: a single talker;
* ``rate48k``: clean, the file written at 48 kHz (predict resamples it);
* ``narrowband``: clean, both talkers recorded at 8 kHz (resampled to 8 kHz and back before
  their RIRs: nothing above 4 kHz, as telephone speech or an old 8-kHz corpus);
* ``binaural``: clean, heard by the ears of the measured head of ``simulate.array.sofa`` (MIT
  KEMAR) through pyroomacoustics' measured directivities instead of two free-field mics
  (SRP-PHAT is told the ears' distance);
* ``binaural_one``: the same with a single talker.

    .venv/bin/python benchmarks/ism_recordings.py render /tmp/ism_recs          # ~6 min on 2 cores
    .venv/bin/python benchmarks/ism_recordings.py render /tmp/ism_recs --only narrowband  # add one
    .venv/bin/python benchmarks/ism_recordings.py score /tmp/ism_recs --model models/model.pt \\
        [--model other/model.pt ...] [--presence 0.4] [--json ism_recordings.json]

Needs the ``espeak-ng`` program (Debian: apt-get install espeak-ng).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
import typer
from common import json_option, machine_info, params_option, utc_now, write_json
from generalisation import espeak_corpus, image

from dualmic.core.errors import DualmicError, user_errors
from dualmic.core.labels import LabelCoding
from dualmic.core.params import load_params
from dualmic.data.perturb import add_at_snr, colored_noise, mic_mismatch
from dualmic.learn.decoding import decode_known_count
from dualmic.predict import load_predict_model, recording_windows
from dualmic.recording import HIGHPASS_HZ, read_recording
from dualmic.scoring.baselines import srp_phat_angles
from dualmic.sim.batches import heard_by_head, mixed_head, room_spec
from dualmic.sim.ism import ism_rirs
from dualmic.sim.rooms import Rooms, sample_rooms

app = typer.Typer(add_completion=False)

# name -> (RT60 range in s, talkers, noise point sources, mismatched mics, file rate in Hz,
# talkers' recording rate in Hz, heard by the head's ears); condition i draws from seed SEED + i,
# so a condition added at the end leaves the others' files as they were
CONDITIONS = {
    "clean": ((0.1, 0.7), 2, 0, False, None, None, False),
    "diffuse_like": ((0.1, 0.7), 2, 8, False, None, None, False),
    "rt60_0.8-1.2": ((0.8, 1.2), 2, 0, False, None, None, False),
    "mismatch": ((0.1, 0.7), 2, 0, True, None, None, False),
    "one_talker": ((0.1, 0.7), 1, 0, False, None, None, False),
    "rate48k": ((0.1, 0.7), 2, 0, False, 48000, None, False),
    "narrowband": ((0.1, 0.7), 2, 0, False, None, 8000, False),
    "binaural": ((0.1, 0.7), 2, 0, False, None, None, True),
    "binaural_one": ((0.1, 0.7), 1, 0, False, None, None, True),
}
SEED = 90000  # condition i draws its rooms from seed SEED + i: no split or conditions seed


def _condition_of(file: str) -> str:
    """The condition a recording belongs to: its name without ``_NNN.wav``."""
    return file.rsplit("_", 1)[0]


def _images(dry_list: list[np.ndarray], rirs: np.ndarray, n: int) -> np.ndarray:
    """Sum of the dry signals through their RIRs (k, 2, taps): (2, n)."""
    out = np.zeros((2, n))
    for dry, rir in zip(dry_list, rirs, strict=True):
        out += image(dry, rir, n)
    return out


def _band_limited(x: np.ndarray, fs: int, rate: int) -> np.ndarray:
    """``x`` as if recorded at ``rate`` Hz: resampled to it and back to ``fs`` (same length)."""
    low = AF.resample(torch.from_numpy(x.astype(np.float32)), fs, rate)
    return AF.resample(low, rate, fs).numpy()[: len(x)].astype(np.float64)


@app.command()
def render(
    folder: Path = typer.Argument(..., help="folder for the wav files and truth.json"),
    n_rooms: int = typer.Option(30, help="rooms per condition"),
    only: list[str] = typer.Option(
        [], "--only", help="render these conditions only (kept with the others in FOLDER)"
    ),
    params_path: Path = params_option(),
) -> None:
    """Render the recordings of every condition (or of --only ones) into FOLDER."""
    with user_errors():
        p = load_params(params_path)
        sim, fs = p.simulate, p.simulate.sample_rate
        if len(sim.mic_offsets) != 2 or sim.array.kind != "free_field":
            raise DualmicError("render needs a free-field pair (simulate.array.kind free_field)")
        unknown = sorted(set(only) - set(CONDITIONS))
        if unknown:
            raise DualmicError(f"--only {', '.join(unknown)}: expected one of {', '.join(CONDITIONS)}")
        n = int(round(p.features.duration_s * fs))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            corpus = espeak_corpus(Path(tmp), fs)
        truth = {}
        if only and (folder / "truth.json").is_file():
            old = json.loads((folder / "truth.json").read_text())
            truth = {f: a for f, a in old.items() if _condition_of(f) not in only}
        for i, (name, (rt60, talkers, noises, mismatch, rate, talker_rate, head)) in enumerate(
            CONDITIONS.items()
        ):
            if only and name not in only:
                continue
            spec = replace(room_spec(sim), rt60_range=rt60, noise_sources=noises)
            ears = mixed_head(sim) if head else None
            if head:
                spec = heard_by_head(spec, sim)
            rooms = sample_rooms(spec, SEED + i, 0, n_rooms)
            src = rooms.src_pos if noises == 0 else np.concatenate([rooms.src_pos, rooms.noise_pos], 1)
            placed = Rooms(
                rooms.room_dim, rooms.rt60, rooms.array_center, rooms.array_rot_deg, rooms.mic_pos, src
            )
            taps = int(np.ceil(rt60[1] * fs))
            rirs = ism_rirs(placed, fs, taps, sim.speed_of_sound, ears)
            lateral = rooms.to_frame()[[f"src{k}_lateral_deg" for k in range(2)]].to_numpy()
            rng = np.random.default_rng([SEED, i])
            for b in range(n_rooms):
                picks = rng.choice(len(corpus), size=talkers, replace=False)
                dry = [np.resize(corpus[c], n + taps - 1) for c in picks]
                if talker_rate is not None:  # nothing left above talker_rate / 2
                    dry = [_band_limited(x, fs, talker_rate) for x in dry]
                images = [_images([x], rirs[b, k : k + 1], n) for k, x in enumerate(dry)]
                images = [x / (x.std() + 1e-8) for x in images]
                mix = images[0]
                if talkers == 2:
                    mix = mix + 10 ** (rng.uniform(*p.features.sir_db) / 20) * images[1]
                if noises:
                    dry = [colored_noise(rng, 1, n + taps - 1, "pink")[0] for _ in range(noises)]
                    mix = add_at_snr(mix, _images(dry, rirs[b, 2:], n), rng.uniform(5.0, 15.0))
                if mismatch:
                    mix = mic_mismatch(
                        mix, rng.uniform(-3, 3, 2), rng.uniform(-0.3, 0.3, 2), rng.uniform(-0.05, 0.05, 2)
                    )
                    mix = add_at_snr(mix, rng.standard_normal((2, n)), 30.0)
                mix = 0.5 * mix / np.abs(mix).max()
                if rate is not None:
                    mix = AF.resample(torch.from_numpy(mix.astype(np.float32)), fs, rate).numpy()
                file = f"{name}_{b:03d}.wav"
                sf.write(folder / file, mix.T.astype(np.float32), rate or fs, subtype="FLOAT")
                truth[file] = sorted(float(a) for a in lateral[b, :talkers])
            print(f"{name}: {n_rooms} rooms", flush=True)
        (folder / "truth.json").write_text(json.dumps(truth, indent=1))


def _cli_answers(folder: Path, model: Path, presence: float) -> dict[str, list[float]]:
    """``dualmic predict --json --presence P`` over the folder: file name -> angles found."""
    cmd = [sys.executable, "-m", "dualmic.cli", "predict", str(folder), "--model", str(model), "--json"]
    cmd += ["--presence", str(presence)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise DualmicError(f"dualmic predict --model {model} failed: {last}")
    return {Path(r["file"]).name: r["angles_deg"] for r in map(json.loads, run.stdout.splitlines())}


def _mae(pred: list[np.ndarray], true: list[np.ndarray]) -> float:
    return float(np.mean(np.concatenate([np.abs(a - t) for a, t in zip(pred, true, strict=True)])))


@app.command()
def score(
    folder: Path = typer.Argument(..., help="folder written by render"),
    models: list[Path] = typer.Option([Path("models/model.pt")], "--model", help="model file(s)"),
    presence: float = typer.Option(0.5, help="predict --presence: how sure a slot must be to count a talker"),
    params_path: Path = params_option(),
    json_out: Path | None = json_option(),
) -> None:
    """Localise FOLDER's recordings with each model (and SRP-PHAT); print the scores."""
    with user_errors():
        p = load_params(params_path)
        if not (folder / "truth.json").is_file():
            raise DualmicError(f"{folder}/truth.json not found: run `render {folder}` first")
        truth = {k: np.asarray(v) for k, v in json.loads((folder / "truth.json").read_text()).items()}
        files = sorted(truth)
        conditions = [c for c in CONDITIONS if any(_condition_of(f) == c for f in files)]  # those rendered
        fs = p.simulate.sample_rate
        audio = {f: read_recording(folder / f, fs) for f in files}
        results: dict = {
            "date": utc_now(),
            "machine": machine_info(),
            "files": len(files),
            "presence": presence,
        }
        table: dict[str, dict[str, str]] = {}
        for m, path in enumerate(models):
            found = _cli_answers(folder, path, presence)
            model, meta = load_predict_model(path)
            coding = LabelCoding.from_meta(meta, model.cfg.n_classes)
            told = {}
            for f in files:
                logp = recording_windows(audio[f], model, meta, highpass_hz=HIGHPASS_HZ)[0]  # as predict
                angles = decode_known_count(logp[None], np.array([len(truth[f])]), coding)[0]
                told[f] = np.sort(angles[np.isfinite(angles)])
            for cond in conditions:
                rows = [f for f in files if _condition_of(f) == cond]
                right = [f for f in rows if len(found[f]) == len(truth[f])]
                key = f"{cond}.model{m}"
                results[f"{key}.count_acc"] = len(right) / len(rows)
                results[f"{key}.mae_deg"] = (
                    _mae([np.sort(found[f]) for f in right], [truth[f] for f in right]) if right else None
                )
                results[f"{key}.mae_told_deg"] = _mae([told[f] for f in rows], [truth[f] for f in rows])
                table.setdefault(cond, {})[f"model {m}"] = (
                    f"{results[f'{key}.count_acc']:.3f} / {results[f'{key}.mae_told_deg']:.2f}"
                )
            results[f"model{m}"] = str(path)
        for cond in conditions:
            rows = [f for f in files if _condition_of(f) == cond]
            distance = p.simulate.mic_distance_m
            if CONDITIONS[cond][6]:  # the head's ears
                ears = mixed_head(p.simulate).ear_offsets
                distance = float(np.linalg.norm(ears[1] - ears[0]))
            srp = [
                srp_phat_angles(audio[f][None], distance, fs, p.features.n_fft, n_sources=len(truth[f]))[0]
                for f in rows
            ]
            results[f"{cond}.srp_phat.mae_deg"] = _mae([np.sort(a) for a in srp], [truth[f] for f in rows])
            table[cond]["SRP-PHAT"] = f"{results[f'{cond}.srp_phat.mae_deg']:.2f}"
        heads = [f"model {m}" for m in range(len(models))] + ["SRP-PHAT"]
        print("| condition | " + " | ".join(heads) + " |")
        print("|---" * (len(heads) + 1) + "|")
        for cond, row in table.items():
            print(f"| `{cond}` | " + " | ".join(row[h] for h in heads) + " |")
        print(
            f"models: count accuracy (own count, --presence {presence:g}) / MAE told the count (deg); "
            "SRP-PHAT told the count"
        )
        for m, path in enumerate(models):
            print(f"model {m}: {path}")
        if json_out:
            write_json(json_out, results)


if __name__ == "__main__":
    app()
