"""What every stage shares: one-line errors (bad input, or a disk that is read-only, full or has
a file where a folder should be) and a non-zero exit instead of a traceback
(`glg.errors.one_line_errors`), and the typer options for the paths DVC tracks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Params = Annotated[Path, typer.Option(help="params file")]
Frames = Annotated[Path, typer.Option(help="frame store written by extract")]
Annotations = Annotated[Path, typer.Option(help="annotation dataset from annotate")]
Prepared = Annotated[Path, typer.Option(help="prepared frames, pairs and statistics from prepare")]
Checkpoints = Annotated[Path, typer.Option(help="checkpoint folder, resumed from when it matches")]
Metrics = Annotated[Path, typer.Option(help="dvclive folder: curves, images and metrics.json")]
GroundTruth = Annotated[Path, typer.Option(
    help="synthesizer's ground truth; none: no truth (real faces); a path not there is said")]
GROUND_TRUTH = Path("data/synthetic/ground_truth.parquet")


def ground_truth_path(value: Path) -> Path | None:
    """--ground-truth's value, None for the word `none`: data without truth, unlike a path that
    is not there, which the stages say."""
    return None if str(value) == "none" else value
