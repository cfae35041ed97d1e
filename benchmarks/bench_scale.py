"""Every data stage at 1x, 4x and 16x the demo: time, memory and disk, their growth, and what
they project for VoxCeleb1 and CelebV.

    python benchmarks/bench_scale.py [--scales 1 4 16] [--engine local|ray] [--keep DIR]

Scale k is the demo with k times the identities (6k people x 3 clips x 3 s at 25 fps, 1,350k
frames); every other setting is params.yaml's. Each stage runs as the pipeline runs it, its
own process from the CLI, measured by `_measure.measure`: wall seconds, CPU seconds and peak
RSS of its whole process tree (workers included), and the size of what it writes. The
training loader's set-up (`TrainingPairs` and its first batch) is timed at each scale too.
The same run then measures the ratios against the limits: extract against ffmpeg's
decode-only rate on the real clips (`bench_extract.py`) and annotate's frames/s per core
against the naive detect + predict loop (`bench_annotate.py`) and against extract.
About 4 minutes on 2 cores; `--scales 1 4` leaves out the 16x (most of the time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _measure import measure  # noqa: E402

from glg.store.writers import ROW_GROUP_ROWS  # noqa: E402

STAGES = ("synthesize", "extract", "annotate", "prepare")
OUTPUT = {"synthesize": "synthetic", "extract": "frames", "annotate": "annotations",
          "prepare": "prepared"}
DEMO_IDENTITIES = 6
BUFFER_ROWS = ROW_GROUP_ROWS  # the largest row buffer a stage fills (annotate.shard_rows: 50,000)
# What is projected: (name, frames (low, high), note)
TARGETS = [
    ("VoxCeleb1", (20e6, 30e6), "1,251 people, ~150k utterance clips of 130-200 frames at "
     "25 fps, each under extract.max_frames (250)"),
    ("CelebV", (200e3, 200e3), "5 people x ~40k frames; long videos cut into clips of <= 250 "
     "frames beforehand (extract.max_frames keeps only the first 250 of a longer clip)"),
]
CLUSTER_CORES = (2, 16, 64)


def stage_command(stage: str, work: Path) -> list[str]:
    params = ["--params", str(work / "params.yaml")]
    quiet = ["--no-progress"] if stage in ("extract", "annotate") else []
    paths = {
        "synthesize": ["--out", work / "synthetic"],
        "extract": ["--videos", work / "synthetic", "--out", work / "frames"],
        "annotate": ["--frames", work / "frames", "--out", work / "annotations", "--metrics",
                     work / "annotate.json", "--ground-truth",
                     work / "synthetic" / "ground_truth.parquet"],
        "prepare": ["--frames", work / "frames", "--annotations", work / "annotations",
                    "--out", work / "prepared"],
    }[stage]
    return [sys.executable, "-m", f"stages.{stage}", *map(str, paths), *params, *quiet]


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def run_scale(scale: int, work: Path, engine: str) -> dict:
    """Every stage at one scale; {stage: (Measured, output MiB)}, frames and loader set-up."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["synthesize"]["identities"] = DEMO_IDENTITIES * scale
    raw["extract"]["engine"] = raw["annotate"]["engine"] = raw["prepare"]["engine"] = engine
    work.mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    rows = {}
    for stage in STAGES:
        rows[stage] = (measure(stage_command(stage, work)), folder_mib(work / OUTPUT[stage]))
    frames = json.loads((work / "annotate.json").read_text())["frames"]
    loader = measure_loader(work / "prepared")
    return {"stages": rows, "frames": frames, "loader": loader}


def measure_loader(prepared: Path) -> dict:
    """The loader's set-up in a fresh process (this script with --loader-setup)."""
    out = prepared.parent / "loader.json"
    measured = measure([sys.executable, __file__, "--loader-setup", str(prepared), str(out)])
    return json.loads(out.read_text()) | {"peak_mib": measured.peak_mib}


def loader_setup(prepared: Path, out: Path) -> None:
    """Time `TrainingPairs` and its first batch of 32 (one process, then 2 workers)."""
    import torch

    from glg.data import TrainingPairs, iterate_pairs

    torch.set_num_threads(1)
    started = time.perf_counter()
    dataset = TrainingPairs(prepared, seed=0)
    opened = time.perf_counter()
    next(iterate_pairs(dataset, 32, 0, seed=0))
    first = time.perf_counter()
    next(iterate_pairs(dataset, 32, 2, seed=0))
    workers = time.perf_counter()
    out.write_text(json.dumps({"open_s": opened - started, "first_batch_s": first - opened,
                               "first_batch_2_workers_s": workers - first,
                               "training_frames": len(dataset)}))


# --- printing ----------------------------------------------------------------------------------


def print_table(results: dict[int, dict]) -> None:
    print(f"\n{'stage':<11}{'scale':>6}{'frames':>8}{'wall s':>8}{'CPU s':>8}{'own CPU s':>10}"
          f"{'CPU ms/fr':>10}{'peak MiB':>10}{'out MiB':>9}{'KiB/fr':>8}  (own: the stage's "
          f"process without its workers)")
    for stage in STAGES:
        for scale, result in results.items():
            m, mib = result["stages"][stage]
            n = result["frames"]
            print(f"{stage:<11}{scale:>5}x{n:>8}{m.seconds:>8.1f}{m.cpu_seconds:>8.1f}"
                  f"{m.own_cpu_seconds:>10.1f}{1e3 * m.cpu_seconds / n:>10.2f}"
                  f"{m.peak_mib:>10.0f}{mib:>9.1f}{mib * 1024 / n:>8.1f}")
    print(f"\n{'loader set-up':<15}{'scale':>6}{'train frames':>13}{'open s':>8}"
          f"{'batch 1 s':>10}{'2 workers s':>12}{'peak MiB':>9}  (summed RSS: the DataLoader "
          f"workers' shared pages counted in each)")
    for scale, result in results.items():
        lo = result["loader"]
        print(f"{'TrainingPairs':<15}{scale:>5}x{lo['training_frames']:>13}{lo['open_s']:>8.2f}"
              f"{lo['first_batch_s']:>10.2f}{lo['first_batch_2_workers_s']:>12.2f}"
              f"{lo['peak_mib']:>9.0f}")


def print_growth(results: dict[int, dict]) -> None:
    scales = sorted(results)
    steps = list(zip(scales, scales[1:]))
    if not steps:
        return
    heads = "".join(f"{f'{kind} {b}x/{a}x':>14}" for kind in ("time", "CPU", "memory")
                    for a, b in steps)
    print(f"\ngrowth (data x{' then x'.join(str(b // a) for a, b in steps)}: linear time and "
          f"constant memory are the goal; CPU time is the figure other load disturbs least)")
    print(f"{'stage':<11}{heads}")
    for stage in STAGES:
        cells = [results[b]["stages"][stage][0][field] / results[a]["stages"][stage][0][field]
                 for field in (1, 2, 0) for a, b in steps]
        print(f"{stage:<11}" + "".join(f"{c:>14.2f}" for c in cells))
    loader = [results[b]["loader"]["open_s"] / results[a]["loader"]["open_s"] for a, b in steps]
    print(f"{'loader open':<11}" + "".join(f"{c:>14.2f}" for c in loader))


def projected_peak(results: dict[int, dict], stage: str, frames: float) -> float:
    """Peak MiB at `frames`: the largest scale's, grown as between the last two scales until
    the row buffers are full (`BUFFER_ROWS` frames), constant after."""
    rows = [(results[k]["frames"], results[k]["stages"][stage][0].peak_mib)
            for k in sorted(results)]
    n1, peak = rows[-1]
    if len(rows) == 1:
        return peak
    n0, peak0 = rows[-2]
    slope = max(0.0, (peak - peak0) / (n1 - n0))
    return peak + slope * max(0.0, min(frames, BUFFER_ROWS) - n1)


def per_frame_costs(results: dict[int, dict],
                    own: bool = False) -> dict[str, tuple[float, float]]:
    """Per stage, CPU seconds = fixed + per_frame x frames, least squares over two or more
    scales: of the whole process tree, or (`own`) of the stage's own process alone."""
    frames = np.array([r["frames"] for r in results.values()], float)
    costs = {}
    for stage in STAGES:
        cpu = np.array([getattr(r["stages"][stage][0], "own_cpu_seconds" if own else
                                "cpu_seconds") for r in results.values()])
        per_frame, fixed = np.polyfit(frames, cpu, 1)
        costs[stage] = (max(fixed, 0.0), per_frame)
    return costs


def print_projection(results: dict[int, dict]) -> None:
    if len(results) < 2:
        print("\nprojection: needs two scales or more (per-frame costs are fitted over them)")
        return
    largest = results[max(results)]
    costs, own = per_frame_costs(results), per_frame_costs(results, own=True)
    print("\nprojection, assuming:")
    for line in [
        "CPU s = fixed + per frame x frames, fitted over the scales measured here, on this "
        f"machine's cores ({os.cpu_count()}, shared: see the load average)",
        "source frames of 256 px as the demo's (the 512 px real clips cost more per frame to "
        "extract: see the ratio below), clips of the demo's 75 frames (annotate's one face "
        "descriptor per clip, ~0.08 s, is counted per frame: longer clips cost less)",
        "each stage spreads its clips over all cores (local workers or Ray actors, one per "
        "core, clips independent) while its own process reads, selects and writes in clip "
        "order: wall = the larger of the whole CPU over the cores and the stage process's own "
        "CPU (fitted the same way), which no number of cores shortens",
        "peak memory: a constant plus the clip in hand (clips of <= extract.max_frames = 250 "
        "frames) plus row buffers that fill up to annotate.shard_rows (50,000) and Parquet row "
        f"groups ({BUFFER_ROWS:,} rows): extrapolated linearly from the last two scales up to "
        f"{BUFFER_ROWS:,} frames, constant after",
        "disk per frame as the demo's synthetic faces (real faces compress differently); "
        "DVC's cache links outputs, so they are not stored twice",
    ]:
        print(f"  - {line}")
    print("per-frame CPU: " + ", ".join(
        f"{s} {1e3 * costs[s][1]:.2f} ms (+{costs[s][0]:.1f} s fixed; its own process "
        f"{1e3 * own[s][1]:.2f} ms)" for s in STAGES[1:]))
    for name, (low, high), note in TARGETS:
        print(f"\n{name}: {note}")
        print(f"{'stage':<10}{'CPU':>14}" + "".join(f"{f'wall, {c} cores':>18}"
                                                  for c in CLUSTER_CORES)
              + f"{'peak MiB':>10}{'disk GiB':>12}")
        for stage in STAGES[1:]:
            (fixed, per_frame), (own_fixed, own_per_frame) = costs[stage], own[stage]
            cpu = [fixed + per_frame * n for n in (low, high)]
            serial = [own_fixed + own_per_frame * n for n in (low, high)]
            walls = [[max(s / c, t) for s, t in zip(cpu, serial)] for c in CLUSTER_CORES]
            mib = largest["stages"][stage][1]
            disk = [mib / largest["frames"] * n / 1024 for n in (low, high)]
            print(f"{stage:<10}{duration(cpu):>14}" + "".join(f"{duration(w):>18}" for w in walls)
                  + f"{projected_peak(results, stage, high):>10.0f}{span(disk):>12}")


def span(values: list[float], unit: str = "") -> str:
    low, high = values
    fmt = (lambda v: f"{v:,.0f}") if high >= 100 else (lambda v: f"{v:.1f}")
    return (fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)}-{fmt(high)}") + unit


def duration(seconds: list[float]) -> str:
    """A (low, high) span of seconds in hours, or minutes below two hours."""
    if max(seconds) >= 7200:
        return span([s / 3600 for s in seconds], " h")
    return span([s / 60 for s in seconds], " min")


def print_ratios(results: dict[int, dict]) -> None:
    """extract against ffmpeg on the real clips; annotate per core against the naive loop and
    against extract, on this run's 1x frames."""
    import bench_annotate
    import bench_extract

    print()
    bench_extract.decode_ratio(1, rounds=3)
    smallest = results[min(results)]
    n = smallest["frames"]
    per_core = {s: n / smallest["stages"][s][0].cpu_seconds for s in ("extract", "annotate")}
    naive = bench_annotate.naive_rate(smallest["work"] / "frames")
    print(f"annotate ({min(results)}x, the stage's whole process tree): "
          f"{per_core['annotate']:.0f} frames per CPU-s, {per_core['annotate'] / naive:.2f}x the "
          f"naive detect + predict loop ({naive:.0f} frames per CPU-s, one process), "
          f"{per_core['annotate'] / per_core['extract']:.2f}x extract's rate "
          f"({per_core['extract']:.0f} frames per CPU-s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="extract's and annotate's engine (ray: a Ray instance per stage)")
    parser.add_argument("--keep", type=Path, help="keep the data in this folder")
    parser.add_argument("--loader-setup", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loader_setup:
        return loader_setup(*args.loader_setup)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench_scale: scales {args.scales}, engine {args.engine}, {os.cpu_count()} cores, "
          f"load average {load} at the start")
    results = {}
    try:
        for scale in args.scales:
            started = time.perf_counter()
            results[scale] = run_scale(scale, root / f"{scale}x", args.engine)
            results[scale]["work"] = root / f"{scale}x"
            print(f"{scale}x done in {time.perf_counter() - started:.0f} s, load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
        print_table(results)
        print_growth(results)
        print_projection(results)
        print_ratios(results)
        print(f"\nload average at the end: "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
