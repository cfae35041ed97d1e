"""Stage `annotate`: landmarks, head pose and AUs for every extracted frame."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.annotate import annotate
from glg.config import load_params
from glg.errors import one_line_errors
from stages._cli import GROUND_TRUTH, Frames, GroundTruth, Params, ground_truth_path

app = typer.Typer(add_completion=False)


@app.command()
@one_line_errors
def main(
    frames: Frames = Path("data/frames"),
    out: Annotated[Path, typer.Option(help="annotation dataset folder")] = Path(
        "data/annotations"),
    metrics: Annotated[Path, typer.Option(help="accuracy and counts, JSON")] = Path(
        "metrics/annotate.json"),
    ground_truth: GroundTruth = GROUND_TRUTH,
    params: Params = Path("params.yaml"),
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Annotate every stored frame into data/annotations and score against ground truth."""
    config = load_params("annotate", params)
    annotate(frames, out, metrics, config, ground_truth=ground_truth_path(ground_truth),
             progress=progress)


if __name__ == "__main__":
    app()
