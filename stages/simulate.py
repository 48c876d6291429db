"""DVC stage simulate@<split>: rooms and two-mic RIRs (see dualmic.pipeline.simulate)."""

from pathlib import Path

import typer

from dualmic.core.errors import user_errors
from dualmic.pipeline import simulate

app = typer.Typer(add_completion=False)


@app.command()
def main(
    split: str = typer.Argument(..., help="split name from simulate.splits, e.g. train"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    out: Path = typer.Option(Path("data/rirs"), help="output folder; <out>/<split>/ is written"),
    metrics: Path = typer.Option(Path("metrics"), help="folder of the split's simulate_<split>.json"),
    n_check: int = typer.Option(100, help="rooms whose RIRs are measured for the metrics file"),
) -> None:
    """Simulate the rooms and RIRs of one split."""
    with user_errors():
        simulate.run(split, params, out, metrics, n_check)


if __name__ == "__main__":
    app()
