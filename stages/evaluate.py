"""Stage `evaluate`: the paper's five metrics and first-order-model's per scenario, with the
sanity rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.config import load_params
from glg.errors import GlgError, one_line_errors
from glg.evaluate import evaluate
from stages._cli import GROUND_TRUTH, Frames, GroundTruth, Params, Prepared, ground_truth_path

app = typer.Typer(add_completion=False)


def parse_extras(extras: list[str]) -> dict[str, Path]:
    """NAME=PREPARED_DIR options as a mapping, in the order given."""
    parsed = {}
    for given in extras:
        name, sep, folder = given.partition("=")
        if not sep or not name or not folder or name in parsed:
            raise GlgError(f"--extra {given}: expected NAME=PREPARED_DIR, each NAME once")
        parsed[name] = Path(folder)
    return parsed


@app.command()
@one_line_errors
def main(
    prepared: Prepared = Path("data/prepared"),
    reenact: Annotated[Path, typer.Option(help="trained reenactor from train_reenact")] = Path(
        "data/reenact"),
    lgan: Annotated[Path, typer.Option(help="trained landmark generator from train_lgan")] = Path(
        "data/lgan"),
    out: Annotated[Path, typer.Option(help="folder for the per-pair table")] = Path(
        "data/evaluate"),
    metrics: Annotated[Path, typer.Option(help="metrics per scenario, JSON")] = Path(
        "metrics/evaluate.json"),
    sanity: Annotated[Path, typer.Option(help="sanity rows per scenario, JSON")] = Path(
        "metrics/evaluate_sanity.json"),
    figures: Annotated[Path, typer.Option(help="folder for sample grids and distributions")] = Path(
        "metrics/evaluate"),
    extra: Annotated[list[str], typer.Option(
        help="NAME=PREPARED_DIR: also score that dataset's unseen pairs, under NAME")] = [],
    ground_truth: GroundTruth = GROUND_TRUTH,
    frames: Frames = Path("data/frames"),
    params: Params = Path("params.yaml"),
) -> None:
    """Score the trained reenactor on every scenario's fixed pairs into metrics/evaluate.json."""
    config = load_params("evaluate", params)
    annotator = load_params("annotate", params).backend
    results = evaluate(prepared, reenact, lgan, out, metrics, sanity, figures, config, annotator,
                       extras=parse_extras(extra), ground_truth=ground_truth_path(ground_truth),
                       frames_dir=frames, say=typer.echo)
    for scenario, row in results.items():
        if scenario != "backends" and "pairs" in row:
            typer.echo(f"evaluate: {scenario}: " + ", ".join(
                f"{k} {'null' if row.get(k) is None else format(row[k], '.4g')}"
                for k in ("csim", "ssim", "psnr", "prmse", "aucon", "no_face", "pairs")
                if k in row))


if __name__ == "__main__":
    app()
