"""The parts of `benchmarks/gpu_check.sh`, one per call, each leaving one line of result in
`--row` for the script's table: the data, the trainer's step, the loader and a learning run.

    python benchmarks/gpu_check.py data  --out DIR --image-px 224 [--toy]
    python benchmarks/gpu_check.py train --data DIR --row FILE --batch 32 --steps 8
                                         [--compile default|reduce-overhead]
    python benchmarks/gpu_check.py loader --data DIR --row FILE --workers 16 --batches 20
    python benchmarks/gpu_check.py learn --data DIR --row FILE --work DIR --seconds 190
                                         [--step-seconds S] [--toy]

Each part runs on CUDA where there is one (bf16, as `train.precision: auto` does), else on the
CPU in fp32. `data` builds what the others read, as `benchmarks/bench_train.py` does: a
demo-shaped set of photographic frames with known landmarks, prepared by `glg.prepare` (the
synthesize, extract and annotate stages need dlib's models, which a bare GPU machine lacks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from glg.config import PrepareConfig  # noqa: E402
from glg.data import TrainingPairs  # noqa: E402
from glg.prepare import prepare  # noqa: E402
from glg.train.runtime import start_runtime  # noqa: E402

# The toy's data: the tests' tiny set (`tests/_training.py`), 4 people, 2 clips of 6 frames.
TOY_PREPARE = {"unseen_identities": 2, "test_clips": 1, "known_identities": 2, "self_pairs": 6,
               "unseen_pairs": 4, "known_pairs": 4}


def build_data(out: Path, image_px: int, toy: bool) -> str:
    """A prepared set at `image_px` in `out/prepared`, the demo's shape (6 people x 3 clips x 75
    frames of 256 px JPEGs) or the toy's, and the params the other parts read in
    `out/params.yaml`: params.yaml's, or with the tests' tiny networks for the toy."""
    from _prepare_data import write_dataset

    started = time.perf_counter()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if toy:
        from _training import LOSS, MODEL

        params["model"], params["loss"] = {**params["model"], **MODEL}, {**params["loss"], **LOSS}
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if toy:
        frames, annotations = write_dataset(out, identities=4, clips=2, frames=6, side=96)
        config = PrepareConfig(image_px=image_px, **TOY_PREPARE)
    else:
        frames, annotations = write_dataset(out, identities=6, clips=3, frames=75, side=256,
                                            photo=True)
        config = PrepareConfig(image_px=image_px, unseen_identities=2, test_clips=4,
                               workers=min(os.cpu_count() or 1, 16))
    prepare(frames, annotations, out / "prepared", config, seed=0)
    pairs = len(TrainingPairs(out / "prepared", seed=0))
    return (f"{pairs} training pairs at {image_px} px, prepared in "
            f"{time.perf_counter() - started:.0f} s")


def runtime():
    """CUDA in bf16 where there is one, else the CPU in fp32."""
    cuda = torch.cuda.is_available()
    return start_runtime("train", "cuda" if cuda else "cpu", "bf16" if cuda else "fp32")


def train(data: Path, batch: int, steps: int, workers: int, compile_mode: str | None) -> str:
    """Samples/s of the trainer's step with no sync but its own, and on CUDA the share of the
    wall time that kernels ran (`bench_train.unsynced`); peak CUDA memory."""
    from bench_train import unsynced

    where = runtime()
    seconds, share = unsynced(data / "prepared", where, batch, workers, steps, compile_mode,
                              data / "params.yaml")
    size = int(TrainingPairs(data / "prepared", seed=0).frames.image(0).shape[0])
    line = (f"{batch / seconds:.1f} samples/s ({seconds * 1e3:.0f} ms a step) at {size} px, "
            f"batch {batch}, {where.precision}")
    if share is not None:
        line += (f"; GPU busy {share:.0%} of the wall time (goal >= 90%); peak "
                 f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return line


def loader(data: Path, workers: int, batches: int, batch: int) -> str:
    """Pairs/s of `iterate_pairs` to float batches on the training device
    (`bench_loader.loader_rate`), and the main process's CPU per batch."""
    from bench_loader import MAIN_CPU_MS, loader_rate

    device = "cuda" if torch.cuda.is_available() else None
    dataset = TrainingPairs(data / "prepared", seed=0)
    batches = min(batches, len(dataset) // batch - 2)
    rate = loader_rate(dataset, workers, batches, device=device, batch_size=batch)
    return (f"{rate:.0f} pairs/s with {workers} workers to {device or 'cpu'} (batch {batch}, "
            f"{batches} batches); main process {MAIN_CPU_MS['workers', workers]:.1f} ms CPU a "
            "batch")


def learn(data: Path, work: Path, seconds: float, step_seconds: float | None, batch: int,
          toy: bool) -> str:
    """Train the reenactor through its stage for about `seconds` (steps from `step_seconds`,
    the step's measured time) on `data`, guided by the driving's landmarks (the LGAN needs
    dlib's face embeddings); its validation L1 against copying the source."""
    params = yaml.safe_load((data / "params.yaml").read_text())
    steps = 4 if toy else max(20, math.ceil(seconds / (step_seconds or 0.3)))
    params["model"]["landmark_mode"] = "driving"
    params["loss"]["vgg_weights"] = "random"  # what runs offline; same cost as imagenet's
    every = max(1, steps // 10)
    params["train"].update({
        "steps": steps, "batch": batch, "workers": 0 if toy else min(8, os.cpu_count() or 1),
        "log_every": every, "sample_every": max(every, steps // 4), "checkpoint_every": steps,
        "val_pairs": 3 if toy else 64, "device": "auto", "precision": "auto", "compile": False,
        "mode": "central"})
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    metrics = work / "metrics"
    command = [sys.executable, "-m", "stages.train_reenact", "--prepared", str(data / "prepared"),
               "--lgan", str(work / "no-lgan"), "--out", str(work / "reenact"), "--checkpoints",
               str(work / "checkpoints"), "--metrics", str(metrics), "--params",
               str(work / "params.yaml")]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    summary = json.loads((metrics / "metrics.json").read_text())
    val, rate = summary["val"], summary["samples_per_s"]
    trained = steps * batch / rate
    verdict = "learned" if val["l1"] < val["l1_source_copied"] else "NOT below copying the source"
    return (f"{steps} steps of batch {batch} on {summary['device']} ({summary['precision']}): "
            f"{trained:.0f} s ({trained / 60:.1f} min) training at {rate:.1f} samples/s, "
            f"{wall:.0f} s in all; val L1 {val['l1']:.4f} (step 0 {val['l1_step_0']:.4f}, "
            f"source copied {val['l1_source_copied']:.4f}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("data", "train", "loader", "learn"))
    parser.add_argument("--data", type=Path, help="the folder `data` wrote")
    parser.add_argument("--out", type=Path, help="data: the folder to write")
    parser.add_argument("--row", type=Path, help="file for the part's one-line result")
    parser.add_argument("--image-px", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="train: timed steps")
    parser.add_argument("--workers", type=int, default=8, help="loader processes")
    parser.add_argument("--batches", type=int, default=20, help="loader: timed batches")
    parser.add_argument("--compile", choices=("default", "reduce-overhead"),
                        help="train: torch.compile G in this mode")
    parser.add_argument("--work", type=Path, help="learn: folder for the run's outputs")
    parser.add_argument("--seconds", type=float, default=190.0, help="learn: training time")
    parser.add_argument("--step-seconds", type=float, help="learn: a step's measured seconds")
    parser.add_argument("--toy", action="store_true", help="the tests' tiny sizes")
    args = parser.parse_args()
    if args.part == "data":
        line = build_data(args.out, args.image_px, args.toy)
    elif args.part == "train":
        line = train(args.data, args.batch, args.steps, args.workers, args.compile)
    elif args.part == "loader":
        line = loader(args.data, args.workers, args.batches, args.batch)
    else:
        line = learn(args.data, args.work, args.seconds, args.step_seconds, args.batch,
                     args.toy)
    print(line)
    if args.row:
        args.row.write_text(line + "\n")


if __name__ == "__main__":
    main()
