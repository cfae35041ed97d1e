"""Stage `train_lgan`: the landmark conditional GAN (thesis 3.3.2, Eq. 3.4), validated against
the identity's mean shape."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.config import load_params
from glg.errors import one_line_errors
from glg.train.lgan import train_lgan
from stages._cli import Annotations, Checkpoints, Metrics, Params, Prepared

app = typer.Typer(add_completion=False)


@app.command()
@one_line_errors
def main(
    prepared: Prepared = Path("data/prepared"),
    annotations: Annotations = Path("data/annotations"),
    out: Annotated[Path, typer.Option(help="folder for the trained generator")] = Path("data/lgan"),
    checkpoints: Checkpoints = Path("data/checkpoints/lgan"),
    metrics: Metrics = Path("metrics/train_lgan"),
    params: Params = Path("params.yaml"),
) -> None:
    """Train g(identity, pose, AUs) -> 68 landmarks; resume from the last good checkpoint."""
    config = load_params("lgan", params)
    seed = load_params("seed", params)
    summary = train_lgan(prepared, annotations, out, checkpoints, metrics, config, seed,
                         say=typer.echo).summary
    known = summary["val"].get("known")
    if known:
        typer.echo(f"train_lgan: held-out NME {known['lgan']['nme']:.4f} (identity mean shape "
                   f"{known['mean_shape']['nme']:.4f}) -> {out}")


if __name__ == "__main__":
    app()
