"""DVC stage export: the eval rooms as SOFA files (see dualmic.pipeline.export)."""

from pathlib import Path

import typer

from dualmic.core.errors import user_errors
from dualmic.pipeline import export

app = typer.Typer(add_completion=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    rirs_dir: Path = typer.Option(Path("data/rirs"), help="simulate stage output folder (eval/)"),
    features_dir: Path = typer.Option(Path("data/features"), help="features stage output folder (eval/)"),
    model: Path = typer.Option(Path("models/model.pt"), help="trained model"),
    out: Path = typer.Option(Path("export"), help="output folder (replaced as a whole)"),
    n_room_files: int | None = typer.Option(
        None, help="eval rooms written as single-room SOFA files (default: params export.n_room_files)"
    ),
    date_created: str | None = typer.Option(
        None,
        help="GLOBAL:DateCreated, UTC 'YYYY-MM-DD hh:mm:ss' (default: params export.date_created, "
        "else SOURCE_DATE_EPOCH, else now); a fixed date makes the files bit-identical across runs",
    ),
) -> None:
    """Write the eval split's RIRs, geometry, true and predicted angles as SOFA files."""
    with user_errors():
        n_rooms, n_files = export.run(params, rirs_dir, features_dir, model, out, n_room_files, date_created)
        typer.echo(f"export: {out / 'eval_rirs.sofa'} ({n_rooms} rooms) and {n_files} room file(s)", err=True)


if __name__ == "__main__":
    app()
