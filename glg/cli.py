"""The `glg` command: what researchers run beside the DVC stages (installed with the package).

Each command imports what it runs when it runs, so `glg report` starts without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glg.errors import one_line_errors

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Face reenactment by Generative Landmark Guidance: tools beside the "
                       "DVC pipeline (`dvc repro` runs the stages).")


@app.callback()
def main() -> None:
    """Tools beside the DVC pipeline."""


@app.command()
@one_line_errors
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

    if summary:
        typer.echo(reporting.summary(metrics))
        return
    path = reporting.write_report(reporting.exp_show(exp_json), out, metrics)
    typer.echo(f"report: {path}")


@app.command("reenact")
@one_line_errors
def reenact_command(
    source: Annotated[Path, typer.Argument(help="photo (or video: its first frame with a face)")],
    driving: Annotated[Path, typer.Argument(help="driving video, or a folder of images")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output video (.mp4, H.264)")],
    checkpoint: Annotated[Path, typer.Option(help="trained reenactor: folder or reenactor.pt")
                          ] = Path("data/reenact"),
    lgan: Annotated[Path, typer.Option(help="trained landmark generator: folder or lgan.pt")
                    ] = Path("data/lgan"),
    landmarks: Annotated[str | None, typer.Option(
        help="guiding landmarks: driving, lst or lgan [default: the checkpoint's]")] = None,
    identity: Annotated[str | None, typer.Option(
        help="the trained-on person the source shows (their learned embedding and statistics)")
                        ] = None,
    side_by_side: Annotated[bool, typer.Option(help="frames of source | driving | output")
                            ] = False,
    paste_back: Annotated[bool, typer.Option(
        help="the output blended into the source's full frame")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    batch: Annotated[int, typer.Option(help="frames per forward pass")] = 8,
    params: Annotated[Path, typer.Option(help="params file: extract and annotate sections")
                      ] = Path("params.yaml"),
) -> None:
    """Animate the face in SOURCE with the head motion and expressions of DRIVING."""
    from glg.inference import reenact

    done = reenact(source, driving, out, checkpoint=checkpoint, lgan=lgan, landmarks=landmarks,
                   identity=identity, side_by_side=side_by_side, paste_back=paste_back,
                   device=device, batch=batch, params=params,
                   warn=lambda line: typer.echo(line, err=True))
    held = f", {done.held} without a face held the last good landmarks" if done.held else ""
    note = f" (asked for another: {done.note})" if done.note else ""
    typer.echo(f"reenact: {done.frames} frames in {done.seconds:.1f} s, "
               f"{done.frames_per_s:.1f} frames/s on {done.device}{held}; landmarks: "
               f"{done.landmarks}{note} -> {done.out}")
