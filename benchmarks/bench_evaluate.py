"""Speed of the evaluate stage's scoring (thesis 4.2) on the demo's prepared pairs and trained
reenactor (run `dvc repro train_reenact` first): pairs/s, and the share of time per step, against
the naive per-pair loop measured in the same run.

  stage    `glg.evaluate.scoring.score_pairs` as the stage runs it: `evaluate.batch` pairs a
           model forward, sources and driving frames read once per prepared row (the keyed
           cache of `glg.evaluate.face_reading.FaceReader`), dlib's ResNet run by torch in batches
  naive    the same code one pair at a time with the cache off: every pair's source, driving
           frame and output are read and embedded afresh (the reference)

Both score the model row and the two sanity rows (driving as output, source as output), as the
stage does. Shares come from a profiled third run of the stage's way (cProfile's cumulative
times of the functions doing each step; profiling slows Python a little, not the C++ and torch
kernels that take the time). One process, `evaluate.threads` torch threads, on this machine's
cores, shared with other work: figures are provisional.

    python benchmarks/bench_evaluate.py [--pairs N] [--reenact DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sys
import time
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glg.config import load_params  # noqa: E402
from glg.data import EvaluationPairs  # noqa: E402
from glg.evaluate.face_id import make_embedder  # noqa: E402
from glg.evaluate.face_reading import FaceReader  # noqa: E402
from glg.evaluate.scoring import clip_neutrals_of, score_pairs, subset  # noqa: E402
from glg.store.networks import load_landmark_generator, load_reenactor  # noqa: E402

PREPARED, REENACT, LGAN = ROOT / "data/prepared", ROOT / "data/reenact", ROOT / "data/lgan"
# step -> (file suffix, function) whose cumulative profiled time is that step's
STEPS = {
    "model forward": ("glg/models/__init__.py", "forward"),
    "pair loading (heatmaps, parts)": ("glg/data.py", "pairs_batch"),
    "face detection, 68 points, pose (PRMSE, AUCON)": ("glg/evaluate/face_reading.py",
                                                        "_dlib_faces"),
    "face embeddings (CSIM)": ("glg/evaluate/face_id.py", "embed"),
    "AUs from the neutrals (AUCON)": ("glg/evaluate/face_reading.py", "_collect"),
    "SSIM": ("glg/metrics/images.py", "ssim"),
    "PSNR": ("glg/metrics/images.py", "psnr"),
    "upscaling for reading": ("glg/evaluate/scoring.py", "resize"),
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Uncached(FaceReader):
    """A FaceReader that forgets keys: every image is read, as a per-pair loop would."""

    def read(self, images, clips, keys=None):
        return super().read(images, clips, None)


def run(reader_type: type, pairs: dict, model, config, embedder,
        batch: int) -> tuple[float, float, int, int]:
    """Score every scenario's pairs as the stage does, one reader for the prepared set; (wall
    seconds, CPU seconds, images read, outputs with a face)."""
    frames = next(iter(pairs.values()))[0].frames
    reader = reader_type("dlib", embedder, clip_neutrals_of(frames))
    start, cpu, found = time.perf_counter(), cpu_seconds(), 0
    for scenario, (dataset, indices) in pairs.items():
        scores = score_pairs(dataset, indices, model, reader, config.read_size, batch,
                             torch.device("cpu"), scenario == "self", config.grid_rows)
        found += int(scores.per_pair.query("output == 'model'")["face_found"].sum())
    return time.perf_counter() - start, cpu_seconds() - cpu, reader.images_read, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32, help="pairs per scenario")
    parser.add_argument("--reenact", type=Path, default=REENACT, help="trained reenactor folder")
    args = parser.parse_args()
    config = load_params("evaluate", ROOT / "params.yaml")
    torch.set_num_threads(config.threads or torch.get_num_threads())
    cv2.setNumThreads(1)
    model = load_reenactor(args.reenact)
    lgan = (load_landmark_generator(LGAN, PREPARED)
            if model.config.landmark_mode == "lgan" else None)
    embedder = make_embedder("dlib")
    pairs = {}
    for scenario in ("self", "unseen", "known"):
        dataset = EvaluationPairs(PREPARED, scenario, model.config.landmark_mode, lgan)
        pairs[scenario] = (dataset, subset(len(dataset), args.pairs))
    n = sum(len(i) for _, i in pairs.values())
    FaceReader("dlib")  # dlib's models loaded once before timing

    stage_s, stage_cpu, stage_read, found = run(FaceReader, pairs, model, config, embedder,
                                                config.batch)
    naive_s, naive_cpu, naive_read, _ = run(Uncached, pairs, model, config, embedder, 1)
    profile = cProfile.Profile()
    profile.enable()
    profiled_s, *_ = run(FaceReader, pairs, model, config, embedder, config.batch)
    profile.disable()

    print(f"evaluate scoring: {n} pairs ({args.pairs} per scenario, self/unseen/known) at "
          f"{model.size} px, faces read at {config.read_size} px, model "
          f"{model.config.backbone}/{model.config.landmark_mode}; {torch.get_num_threads()} "
          f"torch thread(s), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"  outputs with a face: {found} of {n}")
    print(f"  {'variant':<30} {'seconds':>8} {'pairs/s':>8} {'CPU-s':>8} {'pairs/CPU-s':>12} "
          f"{'images read':>12} {'x naive (CPU)':>14}")
    for label, seconds, cpu, read in (
            (f"stage (batch {config.batch}, cached)", stage_s, stage_cpu, stage_read),
            ("naive (per pair, no cache)", naive_s, naive_cpu, naive_read)):
        print(f"  {label:<30} {seconds:8.2f} {n / seconds:8.2f} {cpu:8.2f} {n / cpu:12.2f} "
              f"{read:12d} {naive_cpu / cpu:14.2f}")
    stats = pstats.Stats(profile).stats
    shares = {name: sum(v[3] for (file, _, func), v in stats.items()
                        if file.endswith(suffix) and func == function)
              for name, (suffix, function) in STEPS.items()}
    shares["the rest (metric arithmetic, decoding, bookkeeping)"] = profiled_s - sum(
        shares.values())
    print(f"  share of the stage's time (profiled run, {profiled_s:.1f} s):")
    for name, seconds in shares.items():
        print(f"    {name:<52} {100 * seconds / profiled_s:5.1f}%")


if __name__ == "__main__":
    main()
