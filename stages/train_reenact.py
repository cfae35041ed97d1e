"""Stage `train_reenact`: the reenactment GAN (Sec III, thesis 3.5), one process or many under
torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.config import load_params
from glg.errors import one_line_errors
from glg.train.reenactor import train_reenact
from stages._cli import Checkpoints, Metrics, Params, Prepared

app = typer.Typer(add_completion=False)


@app.command()
@one_line_errors
def main(
    prepared: Prepared = Path("data/prepared"),
    lgan: Annotated[Path, typer.Option(help="trained landmark generator from train_lgan")] = Path(
        "data/lgan"),
    out: Annotated[Path, typer.Option(help="folder for the trained reenactor")] = Path(
        "data/reenact"),
    checkpoints: Checkpoints = Path("data/checkpoints/reenact"),
    metrics: Metrics = Path("metrics/train_reenact"),
    params: Params = Path("params.yaml"),
) -> None:
    """Train the reenactor on self-reenactment pairs, centrally or federated (`train.mode`);
    resume from the last good checkpoint."""
    model, loss = load_params("model", params), load_params("loss", params)
    config, federated = load_params("train", params), load_params("federated", params)
    summary = train_reenact(prepared, lgan, out, checkpoints, metrics, model, loss, config,
                            federated, say=typer.echo).summary
    val = summary.get("val", {})
    if val.get("l1") is not None:
        typer.echo(f"train_reenact: validation L1 {val['l1']:.4f} (step 0 {val['l1_step_0']:.4f}, "
                   f"source copied {val['l1_source_copied']:.4f}) -> {out}")


if __name__ == "__main__":
    app()
