"""DVC stage `extract`: videos under data.videos -> 256 px face crops in data/frames/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.config import load_params
from glg.errors import one_line_errors
from glg.extract import extract
from stages._cli import Params

app = typer.Typer(add_completion=False)


@app.command()
@one_line_errors
def main(
    videos: Annotated[Path, typer.Option(help="folder of <identity>/[<yt_id>/]<clip>.mp4")],
    out: Annotated[Path, typer.Option(help="frame store to write (shards, manifest, skipped)")],
    params: Params = Path("params.yaml"),
    progress: Annotated[bool, typer.Option(help="progress bar on stderr")] = True,
) -> None:
    """Sample, detect, crop and store every clip's frames."""
    config = load_params("extract", params)
    summary = extract(videos, out, config, progress=progress)
    capped = (f", {summary.capped} stopped at extract.max_frames {config.max_frames}"
              if summary.capped else "")
    typer.echo(f"extract: {summary.stored_frames} frames from {summary.stored_clips} of "
               f"{summary.clips} clips ({summary.skipped} skipped{capped}) in "
               f"{summary.seconds:.2f} s, {summary.source_frames / summary.seconds:.0f} source "
               f"frames/s -> {out}")


if __name__ == "__main__":
    app()
