"""Speed of `glg score` against the evaluate stage's scoring of the same pairs, in one run: pairs/s
of each, and their ratio (the goal: `glg score` within 1.2x of the stage's time).

  stage    `glg.evaluate.scoring.score_pairs` as the evaluate stage runs it: the reenactor's
           forward, then every metric of the model row and the two sanity rows
  score    `glg.evaluate.external.score` as `glg score` runs it, on the same reenactor's
           outputs written beforehand as `<pair id>.png` (not timed) beside the exported pairs:
           PNG reading, the same metrics, the JSON and per-pair table written

Both score every scenario with `evaluate.batch` pairs a step and a fresh FaceReader (each reads
each source and driving frame once). Data: the demo's prepared pairs and trained reenactor
(`dvc repro train_reenact`), or with `--tiny` the tests' rendered faces and an untrained
reenactor (no output shows a face there, so face reading of outputs is cheaper than on the demo).
One process, `evaluate.threads` torch threads, on this machine's shared cores: figures are
provisional.

    python benchmarks/bench_score.py [--pairs N] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glg.config import load_params  # noqa: E402
from glg.data import EvaluationPairs, pairs_batch  # noqa: E402
from glg.evaluate.exported import export_pairs  # noqa: E402
from glg.evaluate.external import score  # noqa: E402
from glg.evaluate.scoring import (clip_neutrals_of, pair_id, score_pairs, subset,  # noqa: E402
                                  to_uint8)
from glg.evaluate.face_id import make_embedder  # noqa: E402
from glg.evaluate.face_reading import FaceReader  # noqa: E402
from glg.store.prepared import SCENARIOS  # noqa: E402
from glg.store.networks import load_landmark_generator, load_reenactor  # noqa: E402

PREPARED, REENACT, LGAN = ROOT / "data/prepared", ROOT / "data/reenact", ROOT / "data/lgan"


def tiny(root: Path) -> tuple[Path, Path, Path]:
    """The tests' rendered-faces prepared set and an untrained reenactor and LGAN."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_evaluate import faces_dataset, trained_files

    prepared = faces_dataset(root)
    return (prepared, *trained_files(root, prepared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32, help="pairs per scenario (0: all)")
    parser.add_argument("--tiny", action="store_true", help="the tests' rendered faces")
    args = parser.parse_args()
    config = replace(load_params("evaluate", ROOT / "params.yaml"), pairs=args.pairs,
                     device="cpu")
    annotator = load_params("annotate", ROOT / "params.yaml").backend
    torch.set_num_threads(config.threads or torch.get_num_threads())
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_score_"))
    prepared, reenact, lgan_dir = tiny(work) if args.tiny else (PREPARED, REENACT, LGAN)
    if args.tiny:
        config = replace(config, read_size=112)  # as test_evaluate reads the tiny frames
    model = load_reenactor(reenact)
    mode = model.config.landmark_mode
    lgan = load_landmark_generator(lgan_dir, prepared) if mode == "lgan" else None
    embedder = make_embedder(config.embedder, config.arcface_weights)
    FaceReader(annotator)  # dlib's models loaded once before timing
    say = lambda line: None  # noqa: E731

    stage_s = score_s = 0.0
    n = 0
    for scenario in SCENARIOS:
        dataset = EvaluationPairs(prepared, scenario, mode, lgan)
        indices = subset(len(dataset), config.pairs)
        n += len(indices)
        reader = FaceReader(annotator, embedder, clip_neutrals_of(dataset.frames))
        start = time.perf_counter()
        scores = score_pairs(dataset, indices, model, reader, config.read_size, config.batch,
                             torch.device("cpu"), scenario == "self", config.grid_rows, None,
                             scenario)
        stage_s += time.perf_counter() - start
        # the reenactor's outputs as a foreign method would hand them over (not timed)
        exported, outputs = work / "pairs" / scenario, work / "outputs" / scenario
        export_pairs(prepared, scenario, exported, cap=config.pairs)
        outputs.mkdir(parents=True)
        for start in range(0, len(indices), config.batch):
            at = [int(i) for i in indices[start:start + config.batch]]
            images = model_outputs(dataset, at, model)
            for i, image in zip(at, images):
                cv2.imwrite(str(outputs / f"{pair_id(scenario, i)}.png"),
                            cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        start = time.perf_counter()
        row = score(outputs, exported, scenario, "bench", work / "scores", config, annotator, say)
        score_s += time.perf_counter() - start
        same = row["pairs"] == scores.summary["model"]["pairs"] and row["missing"] == 0
        if not same:
            raise SystemExit(f"{scenario}: glg score scored other pairs than the stage")

    print(f"glg score against the evaluate stage's scoring: {n} pairs ({config.pairs or 'all'} "
          f"per scenario) of {prepared} at {model.size} px, faces read at {config.read_size} "
          f"px, {annotator}/{config.embedder}; {torch.get_num_threads()} torch thread(s), "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"  {'variant':<40} {'seconds':>8} {'pairs/s':>8}")
    for label, seconds in (("stage (reenactor forward + metrics)", stage_s),
                           ("glg score (PNG outputs + metrics)", score_s)):
        print(f"  {label:<40} {seconds:8.2f} {n / seconds:8.2f}")
    print(f"  glg score's time / the stage's: {score_s / stage_s:.2f} (goal: <= 1.2)")
    shutil.rmtree(work)


def model_outputs(dataset: EvaluationPairs, at: list[int], model) -> list:
    """The reenactor's (S, S, 3) uint8 outputs of pairs `at`, as the stage makes them."""
    with torch.no_grad():
        return list(to_uint8(model(pairs_batch(dataset, at, "cpu")).image))


if __name__ == "__main__":
    main()
