"""The `glg` command: what researchers run beside the DVC stages (installed with the package).

Each command imports what it runs when it runs, so `glg report` starts without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Face reenactment by Generative Landmark Guidance: tools beside the "
                       "DVC pipeline (`dvc repro` runs the stages).")


@app.callback()
def main() -> None:
    """Tools beside the DVC pipeline."""


@app.command()
def report(
    exp_json: Annotated[Path | None, typer.Option(
        help="`dvc exp show --json` saved to a file; default: run it in this repository")] = None,
    out: Annotated[Path, typer.Option(help="folder for report.md and its figure")] = Path(
        "reports"),
    metrics: Annotated[Path, typer.Option(help="the workspace's metrics folder")] = Path(
        "metrics"),
    summary: Annotated[bool, typer.Option(
        "--summary", help="print the scenario x metric table of the workspace's metrics only")
    ] = False,
) -> None:
    """Our runs beside the paper's Tables I-V and thesis Table 4.7, in reports/report.md."""
    from glg import report as reporting
    from glg.errors import GlgError

    try:
        if summary:
            typer.echo(reporting.summary(metrics))
            return
        path = reporting.write_report(reporting.exp_show(exp_json), out, metrics)
    except GlgError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"report: {path}")
