"""Stage `prepare`: splits, fixed evaluation pairs, part sizes, identity statistics and the
pre-resized frame shards the training loader reads (issue 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.config import load_params
from glg.prepare import prepare
from stages._cli import one_line_errors

app = typer.Typer(add_completion=False)


@app.command()
@one_line_errors
def main(
    frames: Annotated[Path, typer.Option(help="frame store written by extract")] = Path(
        "data/frames"),
    annotations: Annotated[Path, typer.Option(help="annotation dataset from annotate")] = Path(
        "data/annotations"),
    out: Annotated[Path, typer.Option(help="folder to write")] = Path("data/prepared"),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Fix the splits, pairs, part sizes and statistics every experiment reads (Sec IV-A)."""
    config = load_params("prepare", params)
    seed = load_params("seed", params)
    summary = prepare(frames, annotations, out, config, seed)
    for note in summary["notes"]:
        typer.echo(f"prepare: note: {note}", err=True)
    frames_, pairs = summary["frames"], summary["pairs"]
    typer.echo("prepare: frames " + ", ".join(f"{k} {v}" for k, v in frames_.items())
               + "; pairs " + ", ".join(f"{k} {v}" for k, v in pairs.items()) + f" -> {out}")


if __name__ == "__main__":
    app()
