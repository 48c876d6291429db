"""DVC stage evaluate: model, SRP-PHAT and a constant guess on the eval rooms (dualmic.pipeline.evaluate)."""

from pathlib import Path

import typer

from dualmic.core.errors import user_errors
from dualmic.pipeline import evaluate

app = typer.Typer(add_completion=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    features_dir: Path = typer.Option(Path("data/features"), help="features stage output folder"),
    rirs_dir: Path = typer.Option(Path("data/rirs"), help="simulate stage output folder (eval/rooms.csv)"),
    model: Path = typer.Option(Path("models/model.pt"), help="trained model"),
    metrics_dir: Path = typer.Option(Path("metrics"), "--metrics", help="folder for eval.json"),
    plots_dir: Path = typer.Option(Path("metrics/plots"), "--plots", help="folder for the plot data files"),
) -> None:
    """Score the model and the baselines on the eval split."""
    with user_errors():
        scores = evaluate.run(params, features_dir, rirs_dir, model, metrics_dir, plots_dir)
        names = [k.removesuffix(".mae_deg") for k in scores if k.endswith(".mae_deg")]
        typer.echo("eval: " + ", ".join(f"{k} MAE {scores[f'{k}.mae_deg']:.2f} deg" for k in names), err=True)


if __name__ == "__main__":
    app()
