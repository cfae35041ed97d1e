"""Speed of the evaluate stage's scoring (thesis 4.2) on the demo's prepared pairs and trained
reenactor (run `dvc repro train_reenact` first): pairs/s, and the share of time per step, against
the naive per-pair loop measured in the same run.

  stage    `glg.evaluate.scoring.score_pairs` as the stage runs it: `evaluate.batch` pairs a
           model forward, sources and driving frames read once per prepared row (the keyed
           cache of `glg.face_reading.FaceReader`), dlib's ResNet run by torch in batches
  naive    the same code one pair at a time with the cache off: every pair's source, driving
           frame and output are read and embedded afresh (the reference)

Both score the model row and the two sanity rows (driving as output, source as output), as the
stage does. Shares come from a profiled third run of the stage's way (cProfile's cumulative
times of the functions doing each step; profiling slows Python a little, not the C++ and torch
kernels that take the time). One process, `evaluate.threads` torch threads, on this machine's
cores, shared with other work: figures are provisional.

    python benchmarks/bench_evaluate.py [--pairs N]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glg.config import load_params  # noqa: E402
from glg.data import EvaluationPairs  # noqa: E402
from glg.evaluate.scoring import clip_neutrals_of, score_pairs, subset  # noqa: E402
from glg.face_id import make_embedder  # noqa: E402
from glg.face_reading import FaceReader  # noqa: E402
from glg.weights import load_landmark_generator, load_reenactor  # noqa: E402

PREPARED, REENACT, LGAN = ROOT / "data/prepared", ROOT / "data/reenact", ROOT / "data/lgan"
# step -> (file suffix, function) whose cumulative profiled time is that step's
STEPS = {
    "model forward": ("glg/models/__init__.py", "forward"),
    "pair loading (heatmaps, parts)": ("glg/data.py", "pairs_batch"),
    "face detection, 68 points, pose (PRMSE, AUCON)": ("glg/face_reading.py", "_dlib_faces"),
    "face embeddings (CSIM)": ("glg/face_id.py", "embed"),
    "AUs from the neutrals (AUCON)": ("glg/face_reading.py", "_collect"),
    "SSIM": ("glg/metrics/images.py", "ssim"),
    "PSNR": ("glg/metrics/images.py", "psnr"),
    "upscaling for reading": ("glg/evaluate/scoring.py", "resize"),
}


class Uncached(FaceReader):
    """A FaceReader that forgets keys: every image is read, as a per-pair loop would."""

    def read(self, images, clips, keys=None):
        return super().read(images, clips, None)


def run(reader_type: type, pairs: dict, model, config, embedder, batch: int) -> tuple[float, int]:
    """Score every scenario's pairs; (seconds, images read)."""
    start, read = time.perf_counter(), 0
    for scenario, (dataset, indices) in pairs.items():
        reader = reader_type("dlib", embedder, clip_neutrals_of(dataset.frames))
        score_pairs(dataset, indices, model, reader, config.read_size, batch,
                    torch.device("cpu"), scenario == "self", config.grid_rows)
        read += reader.images_read
    return time.perf_counter() - start, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32, help="pairs per scenario")
    args = parser.parse_args()
    config = load_params("evaluate", ROOT / "params.yaml")
    torch.set_num_threads(config.threads or torch.get_num_threads())
    cv2.setNumThreads(1)
    model = load_reenactor(REENACT)
    lgan = load_landmark_generator(LGAN) if model.config.landmark_mode == "lgan" else None
    embedder = make_embedder("dlib")
    pairs = {}
    for scenario in ("self", "unseen", "known"):
        dataset = EvaluationPairs(PREPARED, scenario, model.config.landmark_mode, lgan)
        pairs[scenario] = (dataset, subset(len(dataset), args.pairs))
    n = sum(len(i) for _, i in pairs.values())
    FaceReader("dlib")  # dlib's models loaded once before timing

    stage_s, stage_read = run(FaceReader, pairs, model, config, embedder, config.batch)
    naive_s, naive_read = run(Uncached, pairs, model, config, embedder, 1)
    profile = cProfile.Profile()
    profile.enable()
    profiled_s, _ = run(FaceReader, pairs, model, config, embedder, config.batch)
    profile.disable()

    print(f"evaluate scoring: {n} pairs ({args.pairs} per scenario, self/unseen/known) at "
          f"{model.size} px, faces read at {config.read_size} px, model "
          f"{model.config.backbone}/{model.config.landmark_mode}; {torch.get_num_threads()} "
          f"torch thread(s), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"  {'variant':<30} {'seconds':>8} {'pairs/s':>8} {'images read':>12} {'x naive':>8}")
    for label, seconds, read in ((f"stage (batch {config.batch}, cached)", stage_s, stage_read),
                                 ("naive (per pair, no cache)", naive_s, naive_read)):
        print(f"  {label:<30} {seconds:8.2f} {n / seconds:8.2f} {read:12d} "
              f"{naive_s / seconds:8.2f}")
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
