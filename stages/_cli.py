"""What every stage shares: one-line errors and a non-zero exit instead of a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer

from glg.errors import GlgError


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
