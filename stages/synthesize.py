"""DVC stage `synthesize`: the built-in demo dataset, clips with exact ground truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from glg.config import load_params
from glg.errors import one_line_errors
from glg.synthesize import synthesize
from stages._cli import Params

app = typer.Typer(add_completion=False)


@app.command()
@one_line_errors
def main(
    out: Annotated[Path, typer.Option(help="folder for <identity>/<clip>.mp4 + ground truth")],
    params: Params = Path("params.yaml"),
) -> None:
    """Render demo talking-head clips from two public-domain portraits."""
    config = load_params("synthesize", params)
    seed = load_params("seed", params)
    start = time.perf_counter()
    truth = synthesize(out, config, seed)
    clips = truth.groupby(["identity", "video"]).ngroups
    typer.echo(f"synthesize: {len(truth)} frames in {clips} clips of {config.identities} "
               f"identities in {time.perf_counter() - start:.1f} s -> {out}")


if __name__ == "__main__":
    app()
