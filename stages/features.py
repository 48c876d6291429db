"""DVC stage features@<split>: mixtures of the split's rooms and the model's input features.

Reads data/rirs/<split>/{rirs.npy,rooms.csv}; writes data/features/<split>/:
features.npy (n, C, F, T) float16, labels.npy (n, S) int64 classes, angles.npy (n, S) float32
degrees (both sorted ascending, of the ``labels.angle`` angle), and mix.npy (n, 2, samples)
float32 for the splits in ``features.keep_mix``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import _paths  # noqa: F401, I001  (first: this repo's src/ before any installed dualmic)
import typer

from dualmic.dataset import feature_batches, feature_config, split_labels
from dualmic.errors import DualmicError, user_errors
from dualmic.io import load_npy, load_rooms, npy_writer, save_npy
from dualmic.params import load_params
from dualmic.progress import progress_bar

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
        p = load_params(params)
        if split not in p.simulate.splits:
            raise DualmicError(f"unknown split {split!r}; simulate.splits has {', '.join(p.simulate.splits)}")
        rirs = load_npy(rirs_dir / split / "rirs.npy")
        rooms = load_rooms(rirs_dir / split / "rooms.csv", len(rirs))
        angles, classes = split_labels(p, rooms)
        cfg = feature_config(p)
        n_samples = int(round(p.features.duration_s * p.simulate.sample_rate))
        n_rooms = len(rirs)
        shape = (n_rooms, cfg.n_channels, cfg.n_freq, cfg.n_frames(n_samples))
        dest = out / split
        with contextlib.ExitStack() as stack:
            feats = stack.enter_context(npy_writer(dest / "features.npy", shape, "float16"))
            mix = None
            if split in p.features.keep_mix:
                mix = stack.enter_context(npy_writer(dest / "mix.npy", (n_rooms, 2, n_samples), "float32"))
            bar = stack.enter_context(progress_bar(f"features {split}", n_rooms))
            for batch in feature_batches(p, split, rirs):
                stop = batch.start + len(batch.features)
                feats[batch.start : stop] = batch.features
                if mix is not None:
                    mix[batch.start : stop] = batch.mixture
                bar(len(batch.features))
            save_npy(dest / "labels.npy", classes)
            save_npy(dest / "angles.npy", angles)


if __name__ == "__main__":
    app()
