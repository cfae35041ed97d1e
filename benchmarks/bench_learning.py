"""Does the reenactor learn? Its learning curve on the demo data, scored by the evaluate stage.

    python benchmarks/bench_learning.py [--minutes 60] [--recipes demo,paper] [--first 25]
                                        [--workdir DIR]

Builds the demo data with the stages themselves (synthesize .. train_lgan, params.yaml's
settings) in a temporary folder, then for each recipe trains the reenactor with the
train_reenact stage for its share of `--minutes` of training wall time, stopping at steps that
double from `--first` (each run resumes the last), and scores every stop with the evaluate
stage: the validation L1 against the source copied and the untrained model (train_reenact's
own), and the self scenario's SSIM, PSNR, PRMSE, AUCON and faces found, with the known
scenario's PRMSE; beside them the sanity rows of the same pairs (source as output, driving as
output), measured in the same run. Recipes:
- `demo`: params.yaml as it is (the demo's choices, each labelled there beside the paper's);
- `paper`: the same with the paper's values (or the values it implies) for every choice the
  demo makes that the paper fixes: `PAPER` below.
The training budget counts the train_reenact processes' wall time (start-up included), not the
scoring. Prints one table per recipe and, with `--markdown FILE`, writes them as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# The paper's recipe where the demo's differs: the generator draws the whole image (Sec III-C),
# the flow is the estimator's alone (Sec III-A), no warp term (Sec III-D has five), the
# generator's full width (glg/config/sections.py); data, steps and batch stay the demo's, so only
# the recipe differs.
PAPER = {"model": {"output": "generated", "flow_prior": "none", "generator_channels": 64},
         "loss": {"warp": 0.0}}
METRICS = ("ssim", "psnr", "prmse", "aucon")


def stage(name: str, *args: str, env: dict | None = None) -> float:
    """Run `python -m stages.<name> args` from the repository root; its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", f"stages.{name}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench_learning: stage {name} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def write_params(path: Path, base: dict, changes: dict) -> Path:
    params = json.loads(json.dumps(base))  # a deep copy
    for section, values in changes.items():
        params[section] = {**params[section], **values}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def build_data(work: Path, params: Path) -> None:
    """The demo data and landmark GAN, made by the stages as `dvc repro` makes them."""
    p = ["--params", str(params)]
    stage("synthesize", "--out", str(work / "synthetic"), *p)
    stage("extract", "--videos", str(work / "synthetic"), "--out", str(work / "frames"),
          "--no-progress", *p)
    stage("annotate", "--frames", str(work / "frames"), "--out", str(work / "annotations"),
          "--metrics", str(work / "annotate.json"), "--ground-truth",
          str(work / "synthetic/ground_truth.parquet"), "--no-progress", *p)
    stage("prepare", "--frames", str(work / "frames"), "--annotations",
          str(work / "annotations"), "--out", str(work / "prepared"), *p)
    stage("train_lgan", "--prepared", str(work / "prepared"), "--annotations",
          str(work / "annotations"), "--out", str(work / "lgan"), "--checkpoints",
          str(work / "checkpoints/lgan"), "--metrics", str(work / "metrics/train_lgan"), *p)


def curve(work: Path, name: str, base: dict, changes: dict, seconds: float,
          first: int) -> tuple[list[dict], dict]:
    """Train recipe `name` for about `seconds`, scoring at steps first, 2 first, 4 first, ...
    and at the last step the budget allows; (one row per stop, the sanity rows)."""
    run = work / name
    run.mkdir()
    rows, spent, steps, sanity = [], 0.0, first, {}
    while True:
        params = write_params(run / "params.yaml", base, {**changes, "train": {
            **base["train"], **changes.get("train", {}), "steps": steps,
            "checkpoint_every": steps, "sample_every": steps}})
        p = ["--params", str(params)]
        spent += stage("train_reenact", "--prepared", str(work / "prepared"), "--lgan",
                       str(work / "lgan"), "--out", str(run / "reenact"), "--checkpoints",
                       str(run / "checkpoints"), "--metrics", str(run / "metrics"), *p)
        stage("evaluate", "--prepared", str(work / "prepared"), "--reenact", str(run / "reenact"),
              "--lgan", str(work / "lgan"), "--out", str(run / "evaluate"), "--metrics",
              str(run / "evaluate.json"), "--sanity", str(run / "sanity.json"), "--figures",
              str(run / f"figures-{steps}"), "--ground-truth", "none", "--frames",
              str(work / "frames"), *p)
        trained = json.loads((run / "metrics/metrics.json").read_text())
        scores = json.loads((run / "evaluate.json").read_text())
        sanity = json.loads((run / "sanity.json").read_text())
        val = trained["val"]
        rows.append({"step": steps, "minutes": spent / 60, "val_l1": val["l1"],
                     "copy_l1": val["l1_source_copied"], "step_0_l1": val["l1_step_0"],
                     "self": scores["self"],
                     "known_prmse": scores["known"]["prmse"]})
        print(f"bench_learning: {name} step {steps}: {spent / 60:.1f} min, validation L1 "
              f"{val['l1']:.4f} ({val['l1'] / val['l1_source_copied']:.2f}x the source copied)",
              flush=True)
        rate = steps / spent  # steps per second so far, start-ups included
        left = seconds - spent
        if left < 60 or rate * left < 0.25 * steps:
            return rows, sanity
        steps = min(2 * steps, steps + int(rate * left))


def table(name: str, rows: list[dict], sanity: dict) -> str:
    """The curve as Markdown, the sanity rows of the same pairs under it."""
    faces = lambda r: f"{r['pairs'] - r['no_face']}/{r['pairs']}"  # noqa: E731
    lines = [f"**{name}**", "",
             "| step | train min | val L1 | x source copied | self SSIM | self PSNR | "
             "self PRMSE | self AUCON | faces | known PRMSE |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| 0 (untrained) | 0 | {rows[0]['step_0_l1']:.4f} | "
             f"{rows[0]['step_0_l1'] / rows[0]['copy_l1']:.2f} |" + " |" * 6]
    for r in rows:
        s = r["self"]
        lines.append(f"| {r['step']} | {r['minutes']:.1f} | {r['val_l1']:.4f} | "
                     f"{r['val_l1'] / r['copy_l1']:.2f} | "
                     + " | ".join(fmt(s.get(k)) for k in METRICS)
                     + f" | {faces(s)} | {fmt(r['known_prmse'])} |")
    for row in ("source_as_output", "driving_as_output"):
        s, known = sanity["self"][row], sanity["known"][row]
        copy = f"{rows[-1]['copy_l1']:.4f}" if row == "source_as_output" else "0"
        lines.append(f"| *{row.replace('_', ' ')}* | | {copy} | "
                     f"{'1.00' if row == 'source_as_output' else '0'} | "
                     + " | ".join(fmt(s.get(k)) for k in METRICS)
                     + f" | {faces(s)} | {fmt(known.get('prmse'))} |")
    return "\n".join(lines)


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="training wall time of all recipes together")
    parser.add_argument("--recipes", default="demo,paper", help="demo, paper or both")
    parser.add_argument("--first", type=int, default=25, help="the first scored step")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: temporary)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    if not set(recipes) <= {"demo", "paper"}:
        parser.error(f"--recipes: demo, paper or both, got {args.recipes}")
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    with tempfile.TemporaryDirectory() as temporary:
        work = args.workdir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build_data(work, write_params(work / "params.yaml", base, {}))
        print(f"bench_learning: demo data and landmark GAN in "
              f"{time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs, "
              f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.1f}",
              flush=True)
        tables = []
        for name in recipes:
            rows, sanity = curve(work, name, base, {} if name == "demo" else PAPER,
                                 60 * args.minutes / len(recipes), args.first)
            tables.append(table(name, rows, sanity))
            print(tables[-1], flush=True)
    if args.markdown:
        args.markdown.write_text("\n\n".join(tables) + "\n")


if __name__ == "__main__":
    main()
