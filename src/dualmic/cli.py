"""The ``dualmic`` command: user-facing tools beside the DVC stages."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dualmic import __version__
from dualmic.errors import user_errors
from dualmic.params import load_params

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


@app.command()
def version() -> None:
    """Print the dualmic version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
