"""The one exception family stages and commands turn into a one-line message and a non-zero exit
(`one_line_errors`)."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path


class GlgError(Exception):
    """Bad input or params: the message names the file or key and what was expected."""


class ConfigError(GlgError, ValueError):
    """A params.yaml key is unknown or its value is not allowed."""


@contextlib.contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Turn a failure to parse `path` inside the block (a truncated or foreign file: Arrow's,
    numpy's and the OS's errors) into one line naming the file and what it should have been."""
    try:
        yield
    except GlgError:
        raise
    except (OSError, ValueError, EOFError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise GlgError(f"{path}: not a readable {what} ({reason})") from None


def error_line(err: Exception) -> str:
    """`error: <message>` for bad input (a `GlgError`); for an `OSError` (a read-only or full
    disk, a file where a folder should be) `error: <file>: <reason>`."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"error: {err.filename}: {err.strerror}"
    return f"error: {err}"


def one_line_errors(command: Callable) -> Callable:
    """Turn a `GlgError` or `OSError` raised by a stage or `glg` command into its `error_line`
    on stderr and exit code 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (GlgError, OSError) as err:
            print(error_line(err), file=sys.stderr, flush=True)
            sys.exit(1)

    return wrapper
