"""The `glg` command: what researchers run beside the DVC stages (installed with the package).

Each command imports what it runs when it runs, so `glg report` starts without loading torch.
"""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Face reenactment by Generative Landmark Guidance: tools beside the "
                       "DVC pipeline (`dvc repro` runs the stages).")


@app.callback()
def main() -> None:
    """Tools beside the DVC pipeline."""
