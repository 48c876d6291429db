"""Mics another distance apart than the model's: does stretching the recording's time axis
(``dualmic predict --mic-distance D``) let one model read them?

A free-field recording of mics d' apart, stretched in time by k = d / d' (the model's distance
over the recording's), is the recording of the same scene scaled by k in every length: every
delay is k times longer, so the inter-mic delays are those of mics d apart and the angles are
the same. What the model has not heard is the rest of the scaling: talkers' pitch moved by 1/k,
RT60 by k, the room k times larger. This benchmark measures what that costs.

Renders ``--n-rooms`` rooms per spacing and condition with pyroomacoustics' image-source
method (ISM; rooms of the params' distribution, their own seeds, English espeak-ng talkers the
model never trained on), at ``--rate`` Hz as a recorder would write them, and localises each
file with the model through the ``dualmic predict`` path (:func:`dualmic.recording.stretch_audio`
then :func:`dualmic.predict.predict_sources`): as it is (no ``--mic-distance``) and stretched.
SRP-PHAT is told the true spacing and the count. Conditions: ``two`` talkers, ``one`` talker
(RT60 0.1-0.7 s, the params' SIR).

    .venv/bin/python benchmarks/mic_spacing.py --model models/model.pt        # ~15 min on 2 cores
    .venv/bin/python benchmarks/mic_spacing.py --spacings 0.05,0.2 --n-rooms 10 --json spacing.json

Needs the ``espeak-ng`` program (Debian: apt-get install espeak-ng).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import typer
from common import json_option, machine_info, params_option, utc_now, write_json
from generalisation import espeak_corpus, image

from dualmic.core.errors import DualmicError, user_errors
from dualmic.core.labels import LabelCoding
from dualmic.core.params import load_params
from dualmic.learn.decoding import decode_known_count
from dualmic.predict import load_predict_model, model_features, predict_sources, recording_windows
from dualmic.recording import stretch_audio
from dualmic.scoring.baselines import srp_phat_angles
from dualmic.sim.batches import room_spec
from dualmic.sim.ism import ism_rirs
from dualmic.sim.rooms import sample_rooms

app = typer.Typer(add_completion=False)

CONDITIONS = {"two": 2, "one": 1}  # name -> talkers
SEED = 91000  # spacing i, condition j: rooms from seed SEED + 10 i + j (no split or conditions seed)


def _mae(pred: list[np.ndarray], true: list[np.ndarray]) -> float | None:
    if not pred:
        return None
    return float(np.mean(np.concatenate([np.abs(np.sort(a) - t) for a, t in zip(pred, true, strict=True)])))


def render(p, spacing: float, talkers: int, seed: int, n_rooms: int, rate: int, corpus) -> tuple[list, list]:
    """``n_rooms`` ISM recordings (2, n) at ``rate`` of mics ``spacing`` apart, and their true
    lateral angles (sorted)."""
    sim = p.simulate
    spec = replace(
        room_spec(sim), mic_offsets=((-spacing / 2, 0.0, 0.0), (spacing / 2, 0.0, 0.0)), noise_sources=0
    )
    rooms = sample_rooms(spec, seed, 0, n_rooms)
    taps = int(np.ceil(spec.rt60_range[1] * rate))
    rirs = ism_rirs(rooms, rate, taps, sim.speed_of_sound)
    lateral = rooms.to_frame()[[f"src{k}_lateral_deg" for k in range(2)]].to_numpy()
    rng = np.random.default_rng(seed)
    n = int(round(p.features.duration_s * rate))
    mixes, truth = [], []
    for b in range(n_rooms):
        picks = rng.choice(len(corpus), size=talkers, replace=False)
        images = [image(np.resize(corpus[c], n + taps - 1), rirs[b, k], n) for k, c in enumerate(picks)]
        images = [x / (x.std() + 1e-8) for x in images]
        mix = images[0]
        if talkers == 2:
            mix = mix + 10 ** (rng.uniform(*p.features.sir_db) / 20) * images[1]
        mixes.append((0.5 * mix / np.abs(mix).max()).astype(np.float32))
        truth.append(np.sort(lateral[b, :talkers]))
    return mixes, truth


@app.command()
def main(
    model_path: Path = typer.Option(Path("models/model.pt"), "--model", help="model file"),
    spacings: str = typer.Option("0.04,0.05,0.07,0.1,0.14,0.2,0.25", help="mic distances in metres"),
    n_rooms: int = typer.Option(30, min=1, help="rooms per spacing and condition"),
    rate: int = typer.Option(32000, min=8000, help="sample rate of the rendered recordings (Hz)"),
    params_path: Path = params_option(),
    json_out: Path | None = json_option(),
) -> None:
    with user_errors():
        t0 = time.perf_counter()
        p = load_params(params_path)
        try:
            distances = [float(s) for s in spacings.split(",")]
        except ValueError:
            raise DualmicError(
                f"--spacings {spacings!r}: give mic distances in metres, e.g. 0.05,0.2"
            ) from None
        if not all(0 < d < 1 for d in distances):
            raise DualmicError(f"--spacings {spacings!r}: every distance must lie between 0 and 1 m")
        model, meta = load_predict_model(model_path)
        cfg = model_features(meta)
        coding = LabelCoding.from_meta(meta, model.cfg.n_classes)
        with tempfile.TemporaryDirectory() as tmp:
            corpus = espeak_corpus(Path(tmp), rate)
        results: dict = {"date": utc_now(), "machine": machine_info(), "model": str(model_path), "rate": rate}
        results["model_mic_distance_m"] = cfg.mic_distance_m
        print(
            "| mics apart | talkers | as is: count / MAE told | stretched: count / MAE own count / "
            "MAE told | SRP-PHAT told |"
        )
        print("|---|---|---|---|---|")
        for i, d in enumerate(distances):
            for j, (cond, talkers) in enumerate(CONDITIONS.items()):
                mixes, truth = render(p, d, talkers, SEED + 10 * i + j, n_rooms, rate, corpus)
                row = {}
                for way, stretch in (("as_is", 1.0), ("stretched", cfg.mic_distance_m / d)):
                    found, told = [], []
                    for mix in mixes:
                        audio = stretch_audio(mix, rate, cfg.sample_rate, stretch)
                        found.append(np.array([a for a, _ in predict_sources(audio, model, meta)]))
                        logp = recording_windows(audio, model, meta)[0]
                        angles = decode_known_count(logp[None], np.array([talkers]), coding)[0]
                        told.append(angles[np.isfinite(angles)])
                    right = [k for k, f in enumerate(found) if len(f) == talkers]
                    row[f"{way}.count_acc"] = len(right) / len(mixes)
                    row[f"{way}.mae_deg"] = _mae([found[k] for k in right], [truth[k] for k in right])
                    row[f"{way}.mae_told_deg"] = _mae(told, truth)
                srp = srp_phat_angles(
                    np.stack(mixes), d, rate, 2 * cfg.n_fft * rate // cfg.sample_rate, talkers
                )
                row["srp_phat.mae_deg"] = _mae(list(srp), truth)
                for k, v in row.items():
                    results[f"{d:g}.{cond}.{k}"] = v
                own = "-" if row["stretched.mae_deg"] is None else f"{row['stretched.mae_deg']:.2f}"
                as_is = f"{row['as_is.count_acc']:.3f} / {row['as_is.mae_told_deg']:.2f}"
                print(
                    f"| {d:g} m | {talkers} | {as_is} | {row['stretched.count_acc']:.3f} / {own} / "
                    f"{row['stretched.mae_told_deg']:.2f} | {row['srp_phat.mae_deg']:.2f} |",
                    flush=True,
                )
        results["seconds"] = time.perf_counter() - t0
        print(
            f"{n_rooms} rooms per row, files at {rate} Hz, model {model_path} (mics "
            f"{cfg.mic_distance_m:g} m apart); {results['seconds']:.0f} s"
        )
        if json_out:
            write_json(json_out, results)


if __name__ == "__main__":
    app()
