"""Stage `prepare`: splits, fixed evaluation pairs, part sizes, identity statistics and the
pre-resized frame shards the training loader reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.config import load_params
from glg.errors import one_line_errors
from glg.prepare import prepare
from stages._cli import Annotations, Frames, Params

app = typer.Typer(add_completion=False)


@app.command()
@one_line_errors
def main(
    frames: Frames = Path("data/frames"),
    annotations: Annotations = Path("data/annotations"),
    out: Annotated[Path, typer.Option(help="folder to write")] = Path("data/prepared"),
    params: Params = Path("params.yaml"),
    unseen_only: Annotated[bool, typer.Option(
        "--unseen-only", help="every person unseen: write only unseen pairs (a second dataset, "
                              "scored as the paper scores CelebV)")] = False,
) -> None:
    """Fix the splits, pairs, part sizes and statistics every experiment reads (Sec IV-A)."""
    config = load_params("prepare", params)
    seed = load_params("seed", params)
    summary = prepare(frames, annotations, out, config, seed, unseen_only)
    for note in summary["notes"]:
        typer.echo(f"prepare: note: {note}", err=True)
    frames_, pairs = summary["frames"], summary["pairs"]
    typer.echo("prepare: frames " + ", ".join(f"{k} {v}" for k, v in frames_.items())
               + "; pairs " + ", ".join(f"{k} {v}" for k, v in pairs.items()) + f" -> {out}")


if __name__ == "__main__":
    app()
