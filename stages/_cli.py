"""What every stage shares: one-line errors and a non-zero exit instead of a traceback, and the
typer options for the paths DVC tracks."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from glg.errors import GlgError

Params = Annotated[Path, typer.Option(help="params file")]
Frames = Annotated[Path, typer.Option(help="frame store written by extract")]
Annotations = Annotated[Path, typer.Option(help="annotation dataset from annotate")]
Prepared = Annotated[Path, typer.Option(help="prepared frames, pairs and statistics from prepare")]
Checkpoints = Annotated[Path, typer.Option(help="checkpoint folder, resumed from when it matches")]
Metrics = Annotated[Path, typer.Option(help="dvclive folder: curves, images and metrics.json")]


def one_line_errors(command: Callable) -> Callable:
    """Turn a `GlgError` raised by a stage into `error: <message>` on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GlgError as err:
            typer.echo(f"error: {err}", err=True)
            sys.exit(1)

    return wrapper
