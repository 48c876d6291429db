"""Does the model count talkers the same way whatever the voices?

The conditions test's talkers are espeak-ng voices (a formant synthesiser). This renders the same
condition rooms (``conditions.seed``) twice: once with those talkers and once with recorded
voices, clips of the speech bank (``data/speech``, every ``--stride``-th clip), and reports the
model's count accuracy, the counts it finds and its MAE told the count, per condition, for each.
The bank's voices are training talkers (its rooms are not), so the recorded-voice figures say how
the count depends on the kind of voice, not how it does on unseen voices. ``--gains-db`` also
scores every mixture at other levels (a recording is scaled to unit RMS over its whole length, so
where its talkers speak it sits above or below the unit-RMS training windows).

Sources are positions. ``--voices`` adds two variants of the espeak-ng talkers that test whether
the model counts positions or voices: ``espeak-overlap`` (each talker's clip with the next
talker's clip added: two voices from one position, as from a loudspeaker, still one source) and
``espeak-gated`` (each clip silenced for 0.4 s after every 0.4 s of speech: sparser speech, the
same positions).

    .venv/bin/python benchmarks/talker_counts.py --model models/model.pt --gains-db=-10,0,10
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import typer
from common import json_option, machine_info, params_option, set_threads, threads_option, utc_now, write_json

from dualmic.core.errors import DualmicError, user_errors
from dualmic.core.labels import LabelCoding, angle_difference, label_period, source_counts
from dualmic.core.params import load_params
from dualmic.data.espeak import TalkerPool
from dualmic.data.features import FeatureConfig, features_from_audio
from dualmic.data.pool import speech_clips
from dualmic.learn.decoding import decode_angles, decode_known_count
from dualmic.learn.inference import pooled_log_probs
from dualmic.learn.model_file import check_model, load_model
from dualmic.scoring.condition_mixtures import render_condition, talker_pool
from dualmic.scoring.conditions import CONDITIONS

DEFAULT_CONDITIONS = "single_talker,clean,close_talkers,diffuse_snr10,rt60_1.0-1.5"


class BankPool(TalkerPool):
    """Talkers read from the speech bank's clips (or any clips) instead of synthesised by espeak-ng."""

    def __init__(self, clips: list[np.ndarray], names: list[str]):
        self.specs, self.clips = names, clips


VOICES = ("espeak", "recorded", "espeak-overlap", "espeak-gated")
GATE_S = 0.4  # espeak-gated: seconds of speech, then as many of silence


def overlapped(pool: TalkerPool) -> BankPool:
    """Each talker's clip plus the next talker's (repeated to its length): two voices, one place."""
    clips = pool.clips
    out = [c + np.resize(clips[(k + 1) % len(clips)], len(c)) for k, c in enumerate(clips)]
    return BankPool(
        out, [f"{a}+{b}" for a, b in zip(pool.specs, pool.specs[1:] + pool.specs[:1], strict=True)]
    )


def gated(pool: TalkerPool, sample_rate: int) -> BankPool:
    """Each talker's clip silenced for ``GATE_S`` after every ``GATE_S`` of speech."""
    on = int(round(GATE_S * sample_rate))
    return BankPool([c * ((np.arange(len(c)) // on) % 2 == 0) for c in pool.clips], list(pool.specs))


def main(
    model_path: Path = typer.Option(Path("models/model.pt"), "--model"),
    params_path: Path = params_option(),
    bank: Path = typer.Option(Path("data/speech"), help="speech bank folder (index.csv, clips/)"),
    stride: int = typer.Option(7, min=1, help="every stride-th clip of the bank is a talker"),
    n_talkers: int = typer.Option(60, min=2, help="recorded-voice talkers"),
    conditions: str = typer.Option(DEFAULT_CONDITIONS, help="comma-separated condition names"),
    gains_db: str = typer.Option("0", help="comma-separated levels (dB) each mixture is scored at"),
    voices: str = typer.Option(
        "espeak,recorded", help=f"comma-separated talker kinds from {', '.join(VOICES)}"
    ),
    threads: int | None = threads_option(),
    json_out: Path | None = json_option(),
) -> None:
    with user_errors():
        set_threads(threads)
        talker_counts(
            model_path, params_path, bank, stride, n_talkers, conditions, gains_db, voices, json_out
        )


def talker_counts(
    model_path: Path,
    params_path: Path,
    bank: Path,
    stride: int,
    n_talkers: int,
    names: str,
    gains_db: str,
    voices: str,
    json_out: Path | None,
) -> None:
    p = load_params(params_path)
    try:
        gains = [float(g) for g in gains_db.split(",") if g.strip()]
    except ValueError:
        raise DualmicError(f"--gains-db {gains_db!r}: give comma-separated numbers (dB)") from None
    kinds = [v.strip() for v in voices.split(",") if v.strip()]
    bad = [v for v in kinds if v not in VOICES]
    if bad or not kinds:
        raise DualmicError(f"--voices {voices!r}: choose from {', '.join(VOICES)}")
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in CONDITIONS]
    if unknown:
        raise DualmicError(f"--conditions: unknown {unknown}; choose from {list(CONDITIONS)}")
    net, meta = load_model(model_path)
    check_model(model_path, net, meta, p)
    coding = LabelCoding.from_params(p)
    if not coding.counting:
        raise DualmicError(f"{model_path} does not count talkers (labels.counting is false)")
    fs = p.simulate.sample_rate
    pools: dict[str, TalkerPool] = {}
    if any(k.startswith("espeak") for k in kinds):
        espeak = talker_pool(p)
        made = {"espeak": espeak, "espeak-overlap": overlapped(espeak), "espeak-gated": gated(espeak, fs)}
        pools.update((k, made[k]) for k in kinds if k in made)
    if "recorded" in kinds:
        index = bank / "index.csv"
        if not index.is_file():
            raise DualmicError(f"{index} not found; build the speech bank first (dvc repro speech)")
        names = list(pd.read_csv(index)["file"])[::stride][:n_talkers]
        if len(names) < 2:
            raise DualmicError(f"{bank} gives {len(names)} talker(s) at stride {stride}; need 2 or more")
        clips = speech_clips(bank, fs, int(round(p.speech.clip_s * fs)))[::stride][:n_talkers]
        pools["recorded"] = BankPool(clips, names)
    pools = {k: pools[k] for k in kinds}
    results: dict = {
        "date": utc_now(),
        "machine": machine_info(),
        "model": str(model_path),
        "n_rooms": p.conditions.n_rooms,
        "voices": kinds,
    }
    if "recorded" in pools:
        results["recorded_talkers"] = len(pools["recorded"])
    for name in chosen:
        for kind, pool in pools.items():
            rendered = render_condition(CONDITIONS[name], p, pool)
            true = source_counts(rendered.angles)
            mixture = torch.from_numpy(np.asarray(rendered.mixture, dtype=np.float32))
            for gain in gains:
                feats = features_from_audio(mixture * 10 ** (gain / 20), FeatureConfig.from_params(p))
                logp = pooled_log_probs(net, feats, p.hop_frames)
                found = source_counts(decode_angles(logp, coding))
                pred = decode_known_count(logp, true, coding)
                err = np.abs(angle_difference(pred, rendered.angles, label_period(p.labels.angle)))
                key = f"{name}.{kind}" + (f".{gain:+g}dB" if gain else "")
                results[f"{key}.count_acc"] = float(np.mean(found == true))
                results[f"{key}.found"] = np.bincount(found, minlength=p.simulate.n_sources + 1).tolist()
                results[f"{key}.mae_known_count_deg"] = float(np.nanmean(err))
    print(json.dumps(results, indent=2))
    if json_out:
        write_json(json_out, results)


if __name__ == "__main__":
    typer.run(main)
