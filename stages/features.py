"""DVC stage features@<split>: mixtures and STFT phase features (see dualmic.pipeline.features)."""

from pathlib import Path

import typer

from dualmic.core.errors import user_errors
from dualmic.pipeline import features

app = typer.Typer(add_completion=False)


@app.command()
def main(
    split: str = typer.Argument(..., help="split name from simulate.splits, e.g. eval"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    rirs_dir: Path = typer.Option(Path("data/rirs"), help="simulate stage output folder"),
    out: Path = typer.Option(Path("data/features"), help="output folder; <out>/<split>/ is written"),
) -> None:
    """Mix and featurise the rooms of one split."""
    with user_errors():
        features.run(split, params, rirs_dir, out)


if __name__ == "__main__":
    app()
