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
    scores: Annotated[Path | None, typer.Option(
        help="folder of glg score results, one per method [default: ./scores when present]")
    ] = None,
) -> None:
    """Our runs beside the paper's Tables I-V and thesis Table 4.7, in reports/report.md."""
    from glg import report as reporting
    from glg.errors import GlgError
    from glg.report.extra import SCORES, external_runs
    from glg.report.extra import summary as summary_table

    if summary:
        typer.echo(summary_table(metrics))
        return
    if scores is not None and not scores.is_dir():
        raise GlgError(f"{scores}: no such folder of glg score results")
    path = reporting.write_report(reporting.exp_show(exp_json), out, metrics,
                                  external_runs(scores or SCORES))
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


pairs_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="The fixed evaluation pairs, for methods outside glg.")
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("export")
@one_line_errors
def export_command(
    out: Annotated[Path, typer.Argument(help="folder to write: frames/, pairs.csv, ...")],
    scenario: Annotated[str, typer.Option(help="self, unseen or known")],
    prepared: Annotated[Path, typer.Option(help="prepared data holding the pairs")] = Path(
        "data/prepared"),
    size: Annotated[int, typer.Option(help="side of the PNG frames, px; 0: the prepared side")
                    ] = 0,
    pairs: Annotated[int | None, typer.Option(
        help="pairs spread over the list, as evaluate picks them; 0: all [default: "
             "evaluate.pairs]")] = None,
    params: Annotated[Path, typer.Option(help="params file: evaluate section")] = Path(
        "params.yaml"),
) -> None:
    """Write a scenario's pairs as PNG frames and pairs.csv, for any method to reenact."""
    from glg.config import load_params
    from glg.evaluate.exported import export_pairs

    cap = load_params("evaluate", params).pairs if pairs is None else pairs
    count = export_pairs(prepared, scenario, out, size, cap)
    typer.echo(f"pairs export: {count} {scenario} pairs -> {out} (write <pair_id>.png per row "
               "of pairs.csv, then glg score)")


@app.command("score")
@one_line_errors
def score_command(
    outputs: Annotated[Path, typer.Argument(help="folder of the method's <pair id>.png")],
    pairs: Annotated[Path, typer.Option(help="prepared folder, or one glg pairs export wrote")],
    scenario: Annotated[str, typer.Option(help="self, unseen or known")],
    method: Annotated[str, typer.Option(help="the method's name, as the report shows it")],
    out: Annotated[Path | None, typer.Option(help="result folder [default: scores/METHOD]")
                   ] = None,
    params: Annotated[Path, typer.Option(help="params file: evaluate and annotate sections")
                      ] = Path("params.yaml"),
) -> None:
    """Score any method's outputs of the fixed pairs with the evaluate stage's metrics."""
    from glg.config import load_params
    from glg.evaluate.external import score

    config = load_params("evaluate", params)
    annotator = load_params("annotate", params).backend
    row = score(outputs, pairs, scenario, method, out or Path("scores") / method, config,
                annotator, say=lambda line: typer.echo(line, err=True))
    typer.echo(f"score: {method} {scenario}: " + ", ".join(
        f"{k} {'null' if row.get(k) is None else format(row[k], '.4g')}"
        for k in ("csim", "ssim", "psnr", "prmse", "aucon", "l1", "lpips", "akd", "aed",
                  "no_face", "missing", "pairs") if k in row))
