"""The ``dualmic`` command: user-facing tools beside the DVC stages."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dualmic import __version__
from dualmic.core.errors import DualmicError, user_errors
from dualmic.core.params import load_params

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Two-microphone sound source localisation."
)


@app.command("check-params")
def check_params(params: Path = typer.Argument(Path("params.yaml"), help="params file")) -> None:
    """Validate a params file and print it with every default filled in."""
    with user_errors():
        p = load_params(params)
        typer.echo(json.dumps(p.model_dump(mode="json"), indent=2))
        sim = p.simulate
        typer.echo(
            f"ok: {', '.join(f'{k} {v.n_rooms} rooms' for k, v in sim.splits.items())}; "
            f"{sim.n_taps} taps at {sim.sample_rate} Hz; labels {p.labels.angle}",
            err=True,
        )


_LABEL_HELP = {
    "lateral": "lateral: angle to the mic axis, mic 0 -> mic 1 along +x",
    "azimuth360": "azimuth360: full circle, 0 = mic 1 (right ear), 90 = front, 180 = mic 0, 270 = back",
    "azimuth": "azimuth: horizontal azimuth from the mic axis, front/back folded",
}

_PREDICT_HELP = (
    "Count the talkers of two-channel recordings (0, 1 or 2 with a counting model) and print "
    "their angles in degrees, one line per recording (several files or folders of them: the "
    "model is loaded once, every file is checked before any is answered for, and each line "
    "starts with its file).\n\n"
    "Channel order matters: channel 0 is mic 0 at -x, channel 1 is mic 1 at +x (x runs from "
    "mic 0 to mic 1). A lateral angle is the angle to the mic axis: 0 deg on the mic-1 side, "
    "90 deg broadside, 180 deg on the mic-0 side; front/back and elevation are not observable "
    "with two mics. Two ears on a head: channel 0 the left ear, channel 1 the right, the angle "
    "to the interaural axis (the default model trained on a head's rooms too; no --mic-distance). "
    "Swapped channels mirror every angle (a -> 180 - a).\n\n"
    "Angles are sorted ascending, read between the 5 deg classes (--decode peak) or "
    "their centres (argmax), each with a confidence 0..1. --mirror also scores the swapped "
    "channels and averages the two answers (twice the time). A talker heard in part of the "
    "recording only (talkers who take turns) is reported too unless --no-turns. --presence sets "
    "how sure the model must be before it reports a talker (0.5; lower misses fewer second "
    "talkers and invents more); --n-sources K gives K angles when you know the count; --channels "
    "A,B reads two channels of a file of more; --mic-distance D reads mics 0.5 to 2 x the "
    "model's distance apart (the recording stretched in time to match); --segment S answers "
    "every S seconds on its own line. Any sample "
    "rate is resampled to the model's; at least 0.5 s is needed; recordings longer than the "
    "model window are scored in windows and pooled."
)


@app.command(help=_PREDICT_HELP)
def predict(
    recordings: list[Path] = typer.Argument(
        ...,
        help="two-channel wav/flac/ogg files (channel 0 = mic 0 at -x, channel 1 = mic 1 at +x), "
        "or folders of them",
        show_default=False,
        metavar="RECORDING",
    ),
    model: Path = typer.Option(Path("models/model.pt"), "--model", help="model written by the train stage"),
    as_json: bool = typer.Option(
        False,
        "--json",
        help=(
            'print one JSON line per recording: {"n_sources": k, "angles_deg": \\[..k], '
            '"confidence": \\[..k], "label": "lateral"}, with "file" first when there are several'
        ),
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    decode: str = typer.Option(
        "peak", "--decode", help="peak (angles between the classes) | argmax (class centres)"
    ),
    mirror: bool = typer.Option(
        False,
        "--mirror/--no-mirror",
        help="also score the swapped channels (the mirrored scene) and average (evaluate.mirror)",
    ),
    mic_distance: float | None = typer.Option(
        None,
        "--mic-distance",
        help="metres between your two mics (or ears), when not the model's: the recording's time axis "
        "is stretched by model distance / yours, so its delays are those of the model's mics (0.5 to 2 "
        "x the model's distance)",
    ),
    turns: bool = typer.Option(
        True,
        "--turns/--no-turns",
        help="also report a talker heard in part of the recording only, as when talkers take turns "
        "(evaluate.turns)",
    ),
    presence: float = typer.Option(
        0.5,
        "--presence",
        help="how sure (0..1, exclusive) a slot must be that it holds a talker to report it "
        "(evaluate.presence): lower finds more second talkers and invents more",
    ),
    channels: str | None = typer.Option(
        None,
        "--channels",
        help="A,B: read channel A of each file as mic 0 and channel B as mic 1 (channels count "
        "from 0), for files of more than two channels",
    ),
    segment: float | None = typer.Option(
        None,
        "--segment",
        help="seconds: answer for each segment of this length (>= 0.5) in turn, as a recording of "
        "its own, one line each with its start and end (talkers who move or change)",
    ),
    highpass_hz: float = typer.Option(
        80.0,
        "--highpass",
        help="Hz: a zero-phase high-pass below the voice takes out rumble and mains hum before the "
        "model listens (0 = off)",
    ),
    n_sources: int | None = typer.Option(
        None,
        "--n-sources",
        help="the number of talkers, when you know it: that many angles, the model's most sure "
        "slots (no counting; --turns and --presence do not apply)",
    ),
) -> None:
    """Localise the sources of a two-channel recording (help: _PREDICT_HELP)."""
    with user_errors():
        if device not in ("auto", "cpu", "cuda"):
            raise DualmicError(f"--device {device!r}: expected auto, cpu or cuda")
        if decode not in ("peak", "argmax"):
            raise DualmicError(f"--decode {decode!r}: expected peak or argmax")
        if not 0.0 < presence < 1.0:
            raise DualmicError(f"--presence {presence:g}: expected a probability between 0 and 1 (exclusive)")
        if n_sources is not None and n_sources < 0:
            raise DualmicError(f"--n-sources {n_sources}: expected 0 or more talkers")
        # torch is imported only by the commands that need it
        from dualmic.core.device import resolve_device
        from dualmic.predict import (
            delay_warning,
            load_predict_model,
            mic_distance_stretch,
            model_features,
            predict_segments,
            predict_sources,
        )
        from dualmic.recording import (
            MIN_DURATION_S,
            check_recording,
            clipping_warning,
            highpass_filter,
            load_recording,
            parse_channels,
            recording_paths,
            stretch_audio,
        )

        if segment is not None and not segment >= MIN_DURATION_S:
            raise DualmicError(
                f"--segment {segment:g}: give seconds per segment, at least {MIN_DURATION_S:g}"
            )

        picked = parse_channels(channels)
        paths = recording_paths(recordings)
        if len(paths) > 1:  # every recording is checked before any is answered for (one is as read)
            for path in paths:
                check_recording(path, picked)
        dev = resolve_device(device)
        net, meta = load_predict_model(model, dev)
        stretch = 1.0 if mic_distance is None else mic_distance_stretch(meta, mic_distance)
        label, rate = str(meta["label"]), model_features(meta).sample_rate
        highpass_filter(highpass_hz, rate)  # a cut-off the model's rate cannot take: one error line first
        several = len(paths) > 1 or any(r.is_dir() for r in recordings)  # lines name their file
        options = dict(
            decode=decode,
            mirror=mirror,
            turns=turns,
            presence=presence,
            n_sources=n_sources,
            highpass_hz=highpass_hz,
        )
        for path in paths:
            samples, file_rate = load_recording(path, picked)
            audio = stretch_audio(samples.T, file_rate, rate, stretch)
            for warning in (clipping_warning(samples), delay_warning(audio, meta)):
                if warning:
                    typer.echo(f"warning: {path}: {warning}", err=True)
            if segment is None:
                sources = predict_sources(audio, net, meta, dev, **options)
                typer.echo(_answer(path if several else None, sources, label, as_json))
                continue
            for start, end, sources in predict_segments(audio, net, meta, segment, stretch, dev, **options):
                typer.echo(_answer(path if several else None, sources, label, as_json, (start, end)))


def _answer(
    path: Path | None,
    sources: list[tuple[float, float]],
    label: str,
    as_json: bool,
    span: tuple[float, float] | None = None,
) -> str:
    """One line of ``dualmic predict`` output; ``path`` names the recording when there are several,
    ``span`` the segment's start and end in seconds (``--segment``)."""
    angles, confidence = [a for a, _ in sources], [c for _, c in sources]
    if as_json:
        answer = {"n_sources": len(angles), "angles_deg": angles, "confidence": confidence, "label": label}
        if span is not None:
            answer = {"start_s": span[0], "end_s": span[1], **answer}
        return json.dumps(answer if path is None else {"file": str(path), **answer})
    if not sources:
        text = "no source"
    else:
        count = "1 source" if len(sources) == 1 else f"{len(sources)} sources"
        shown = ", ".join(f"{a:g} deg (confidence {c:.2f})" for a, c in sources)
        text = f"{count}: {shown} ({_LABEL_HELP.get(label, label)})"
    if span is not None:
        text = f"{span[0]:g}-{span[1]:g} s: {text}"
    return text if path is None else f"{path}: {text}"


@app.command("sofa-info")
def sofa_info_command(
    path: Path = typer.Argument(..., help="a SOFA file, e.g. export/eval_rirs.sofa"),
) -> None:
    """Summarise a SOFA file: convention, dimensions, sampling rate, positions, extra variables."""
    with user_errors():
        from dualmic.sofa.info import sofa_info  # sofar and netCDF4 load only for this command

        typer.echo(sofa_info(path))


@app.command()
def version() -> None:
    """Print the dualmic version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
