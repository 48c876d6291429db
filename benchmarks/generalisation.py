"""Does a model trained on synthetic speech-like sources in FRA-RIR rooms hold up on real
(synthesised) speech in rooms from another simulator?

Renders ``--n-rooms`` fresh rooms (a seed no split uses) with the same geometry distribution,
through pyroomacoustics' image-source method (ISM) and through dualmic's FRA-RIR, with English
speech from espeak-ng (several voices, pitches and rates), writes each mixture as a two-channel
wav, and localises it with the same code path as ``dualmic predict`` (and the CLI itself on a
few files, to check they agree). Reports MAE against the lateral labels, next to SRP-PHAT on the
same mixtures.

    .venv/bin/python benchmarks/generalisation.py --model models/model.pt --n-rooms 100

Needs the ``espeak-ng`` program (Debian: apt-get install espeak-ng).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
import typer
from common import json_option, machine_info, params_option, utc_now, write_json

from dualmic.core.errors import DualmicError, user_errors
from dualmic.core.labels import LabelCoding
from dualmic.core.params import load_params
from dualmic.learn.decoding import decode_angles, decode_known_count
from dualmic.learn.model_file import load_model
from dualmic.predict import recording_windows
from dualmic.scoring.baselines import srp_phat_angles
from dualmic.sim.batches import fra_config, room_spec
from dualmic.sim.fra import fra_rirs, image_draws
from dualmic.sim.ism import ism_rirs
from dualmic.sim.rooms import sample_rooms

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A large size in stockings is hard to sell, but the small ones go quickly.",
    "The birch canoe slid on the smooth planks while the wind blew from the east.",
    "Glue the sheet to the dark blue background and let it dry overnight.",
    "It is easy to tell the depth of a well by dropping a stone into it.",
    "These days a chicken leg is a rare dish, said the old cook with a smile.",
    "Rice is often served in round bowls at the little place down the street.",
    "The juice of lemons makes fine punch when it is mixed with cold water.",
    "Four hours of steady work faced us before we could finally rest.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+f2", "en-us+m3", "en-gb-scotland", "en-us+f4", "en-029"]


def espeak_corpus(workdir: Path, sample_rate: int) -> list[np.ndarray]:
    """Every sentence in every voice, at ``sample_rate``, unit RMS."""
    if shutil.which("espeak-ng") is None:
        raise DualmicError("espeak-ng not found: apt-get install espeak-ng")
    out = []
    for v, voice in enumerate(VOICES):
        for s, text in enumerate(SENTENCES):
            path = workdir / f"{v}_{s}.wav"
            pitch, rate = 30 + 8 * ((v + s) % 5), 140 + 10 * ((v * 3 + s) % 4)
            subprocess.run(
                ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(path), text],
                check=True,
            )
            x, fs = sf.read(path, dtype="float32")
            x = AF.resample(torch.from_numpy(x), fs, sample_rate).numpy()
            out.append(x / (x.std() + 1e-8))
    return out


def image(dry: np.ndarray, source_rirs: np.ndarray, n_samples: int) -> np.ndarray:
    """A dry signal through one source's RIRs (2, taps): its first ``n_samples`` at the two mics
    (2, n_samples), from the first sample every tap reaches (the valid part of the convolution)."""
    return np.stack([np.convolve(dry, source_rirs[m], mode="valid")[:n_samples] for m in range(2)])


def render(
    rirs: np.ndarray, corpus: list[np.ndarray], rng: np.random.Generator, n_samples: int, sir_db
) -> np.ndarray:
    """Two different utterances per room through its RIRs: (B, 2, n_samples) unit-RMS mixtures."""
    mixes = np.zeros((len(rirs), 2, n_samples), dtype=np.float32)
    for b, room_rirs in enumerate(rirs):
        picks = rng.choice(len(corpus), size=2, replace=False)
        images = []
        for k, idx in enumerate(picks):
            dry = np.resize(corpus[idx], n_samples + room_rirs.shape[-1])  # tile short utterances
            img = image(dry, room_rirs[k], n_samples)
            images.append(img / (img.std() + 1e-8))
        gain = 10 ** (rng.uniform(*sir_db) / 20)
        mix = images[0] + gain * images[1]
        mixes[b] = mix / (mix.std() + 1e-8)
    return mixes


def mae(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    err = np.abs(np.sort(pred, 1) - np.sort(true, 1))
    return float(err.mean()), float((err <= 10).mean())


def main(
    model_path: Path = typer.Option(Path("models/model.pt"), "--model"),
    params_path: Path = params_option(),
    n_rooms: int = typer.Option(100),
    seed: int = typer.Option(777, help="room seed; must differ from every split's seed"),
    cli_checks: int = typer.Option(3, help="mixtures also run through the dualmic predict CLI"),
    json_out: Path | None = json_option(),
) -> None:
    with user_errors():
        generalisation(model_path, params_path, n_rooms, seed, cli_checks, json_out)


def generalisation(
    model_path: Path, params_path: Path, n_rooms: int, seed: int, cli_checks: int, json_out: Path | None
) -> None:
    """Render, localise and score; print the results (and write them to ``json_out``)."""
    p = load_params(params_path)
    sim = p.simulate
    if seed in {s.seed for s in sim.splits.values()}:
        raise DualmicError(f"seed {seed} is a split seed; pick another")
    model, meta = load_model(model_path)
    fs, n_samples = sim.sample_rate, int(round(p.features.duration_s * sim.sample_rate))
    rooms = sample_rooms(room_spec(sim), seed, 0, n_rooms)
    true = np.sort(rooms.to_frame()[[f"src{k}_lateral_deg" for k in range(2)]].to_numpy(), 1)
    results = {
        "date": utc_now(),
        "machine": machine_info(),
        "n_rooms": n_rooms,
        "seed": seed,
        "label": meta["label"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        corpus = espeak_corpus(Path(tmp), fs)
        rirs = {
            "ism": ism_rirs(rooms, fs, sim.n_taps, sim.speed_of_sound),
            "fra": fra_rirs(
                rooms, image_draws(seed, 0, n_rooms, 2, sim.fra.n_images), fra_config(sim)
            ).numpy(),
        }
        for name, room_rirs in rirs.items():
            mixes = render(room_rirs, corpus, np.random.default_rng(seed), n_samples, p.features.sir_db)
            # every room has two talkers: the model is scored told the count (as SRP-PHAT is),
            # and a counting model's own count is scored apart
            coding = LabelCoding.from_meta(meta, model.cfg.n_classes)
            logp = np.stack([recording_windows(m, model, meta, "cpu")[0] for m in mixes])
            found = [a[np.isfinite(a)] for a in decode_angles(logp, coding)]  # as predict finds them
            pred = decode_known_count(logp, np.full(len(mixes), 2), coding)
            srp = srp_phat_angles(mixes, meta["mic_distance_m"], fs, p.features.n_fft)
            results[f"{name}.model.mae_deg"], results[f"{name}.model.acc_10deg"] = mae(pred, true)
            results[f"{name}.model.count_acc"] = float(np.mean([len(f) == 2 for f in found]))
            results[f"{name}.srp_phat.mae_deg"], results[f"{name}.srp_phat.acc_10deg"] = mae(srp, true)
            for b in range(min(cli_checks, n_rooms)):
                wav = Path(tmp) / f"{name}_{b}.wav"
                sf.write(wav, mixes[b].T, fs, subtype="FLOAT")  # unit-RMS audio would clip as PCM
                cmd = [
                    sys.executable,
                    "-m",
                    "dualmic.cli",
                    "predict",
                    str(wav),
                    "--model",
                    str(model_path),
                    "--json",
                ]
                got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                # predict prints angles to 0.01 deg
                assert np.allclose(got["angles_deg"], found[b], atol=0.006), (got, found[b])
    print(json.dumps(results, indent=2))
    if json_out:
        write_json(json_out, results)


if __name__ == "__main__":
    typer.run(main)
