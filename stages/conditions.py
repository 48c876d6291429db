"""DVC stage conditions: model, SRP-PHAT and a constant guess per condition (dualmic.pipeline.conditions)."""

from pathlib import Path

import typer

from dualmic.core.errors import user_errors
from dualmic.pipeline import conditions

app = typer.Typer(add_completion=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    model: Path = typer.Option(Path("models/model.pt"), help="trained model"),
    train_angles: Path = typer.Option(
        Path("data/features/train/angles.npy"), help="train split angles (constant baseline only)"
    ),
    metrics_dir: Path = typer.Option(Path("metrics"), "--metrics", help="folder for conditions.json"),
    plots_dir: Path = typer.Option(Path("metrics/conditions"), "--plots", help="folder for the plot data"),
) -> None:
    """Score the model and the baselines per acoustic condition, on rooms and talkers no split uses."""
    with user_errors():
        scores = conditions.run(params, model, train_angles, metrics_dir, plots_dir)
        for name in (k.removesuffix(".n_rooms") for k in scores if k.endswith(".n_rooms")):
            found = {m: scores.get(f"{name}.{m}.mae_deg") for m in ("model", "srp_phat", "constant")}
            shown = ", ".join(f"{m} {v:.2f}" for m, v in found.items() if v is not None)
            typer.echo(f"{name}: MAE (deg) {shown}", err=True)


if __name__ == "__main__":
    app()
