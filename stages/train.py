"""DVC stage train: the SSL model (see dualmic.pipeline.train). Multi-GPU:

torchrun --nproc_per_node 4 stages/train.py
"""

from pathlib import Path

import typer

from dualmic.core.errors import user_errors
from dualmic.pipeline import train

app = typer.Typer(add_completion=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    features_dir: Path = typer.Option(Path("data/features/train"), help="train features folder"),
    out: Path = typer.Option(Path("models"), help="folder for model.pt and checkpoint.pt"),
    live_dir: Path = typer.Option(Path("metrics/train"), help="DVCLive log folder"),
    rirs_dir: Path = typer.Option(Path("data/rirs/train"), help="train RIRs (train.mixing: online)"),
    speech_dir: Path = typer.Option(Path("data/speech"), help="speech bank (online.talkers: speech)"),
) -> None:
    """Train the SSL model (single process, or DDP under torchrun)."""
    with user_errors():
        train.run(params, features_dir, out, live_dir, rirs_dir, speech_dir)


if __name__ == "__main__":
    app()
