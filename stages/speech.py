"""DVC stage speech: talker clips of recorded words (see dualmic.pipeline.speech)."""

from pathlib import Path

import typer

from dualmic.core.errors import user_errors
from dualmic.pipeline import speech

app = typer.Typer(add_completion=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    out: Path = typer.Option(Path("data/speech"), help="output folder of the speech bank"),
) -> None:
    """Build the speech bank from the ktuberling-data and klettres-data recordings."""
    with user_errors():
        speech.run(params, out)


if __name__ == "__main__":
    app()
