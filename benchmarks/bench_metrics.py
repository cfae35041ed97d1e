"""Speed of the evaluation's five metrics (thesis 4.2) on 224 px pairs: pairs/s and the share of
time per metric, against the naive per-pair loop measured in the same run.

Pairs, self-reenactment style, for each dataset (the demo's rendered faces; the real clips in
../shared/real-clips when present): per clip, SOURCES source frames each paired with DRIVING
driving frames, so sources repeat as in prepare's pair lists; the "output" of a pair is its
driving frame blurred and noised (a stand-in for a model's output: faces are found, scores are
not perfect). The driving frames' stored pose and AUs come from the annotate backend run over
the clip (tracked), as data/prepared holds them.

  naive    per pair: dlib detection, 68 points, pose and AUs of source and output, dlib's C++
           face descriptor of both, scikit-image SSIM and PSNR; nothing cached (the reference)
  batched  glg.metrics on batches of BATCH pairs: torch SSIM/PSNR, a FaceReader whose keyed
           cache reads each source once, dlib's ResNet run by torch in batches; once with one
           torch thread, once with --threads (default: every CPU). On a machine whose cores
           are busy with other work, torch's spinning OpenMP threads make the second far slower
           (10x, measured): give each process one thread and parallelise over processes.

Shares of the batched time: SSIM, PSNR, CSIM (embeddings of sources and outputs), PRMSE/AUCON
(the face reading of outputs: detection, 68 points, pose, AUs; CSIM aligns with the same points)
and the metric arithmetic. pairs/CPU-s does not depend on what else the machine runs; the
machine's 2 cores are shared with other work, so every figure is provisional.

    python benchmarks/bench_metrics.py [--threads N]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glg.annotate.aus import action_units  # noqa: E402
from glg.annotate.dlib import MAX_SHAPE_RESIDUAL, DlibBackend, shape_residual  # noqa: E402
from glg.config import SynthesizeConfig  # noqa: E402
from glg.evaluate.face_id import DlibEmbedder  # noqa: E402
from glg.evaluate.face_reading import FaceReader, clip_neutrals, measured_aus  # noqa: E402
from glg.face.landmarks import AU_IDS  # noqa: E402
from glg.face.mean_face import head_pose  # noqa: E402
from glg.metrics.faces import aucon, csim, prmse  # noqa: E402
from glg.metrics.images import psnr, ssim  # noqa: E402
from glg.store.annotations import to_table  # noqa: E402
from glg.store.video import sample_frames  # noqa: E402
from glg.synthesize.faces import identity_image  # noqa: E402
from glg.synthesize.plans import plan_dataset  # noqa: E402
from glg.synthesize.render import render_frame  # noqa: E402

REAL_CLIPS = ROOT.parent / "shared" / "real-clips"
SIZE = 224
FRAMES = 48  # frames per clip
SOURCES, DRIVING = 2, 8  # per clip: every source with every driving frame
BATCH = 32


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- data ---------------------------------------------------------------------------------------


def demo_clips() -> list[np.ndarray]:
    """Four rendered demo clips of FRAMES frames, (T, 224, 224, 3) each."""
    config = SynthesizeConfig(identities=4, clips_per_identity=1, seconds=FRAMES / 25,
                              frame_px=SIZE)
    identities, plans = plan_dataset(config, seed=0)
    clips = []
    for plan in plans:
        identity = identities[plan.identity]
        image = identity_image(identity)
        clips.append(np.stack([render_frame(identity, image, plan.poses[t], plan.aus[t],
                                            plan.shifts[t], plan.zooms[t], SIZE)[0]
                               for t in range(FRAMES)]))
    return clips


def real_clips() -> list[np.ndarray]:
    """The first FRAMES frames of each real clip at 224 px (face-centred 512 px crops)."""
    return [np.stack([cv2.cvtColor(cv2.resize(f.bgr, (SIZE, SIZE), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB)
                      for f in sample_frames(path, 1000.0, FRAMES)])  # every frame: 25-30 fps
            for path in sorted(REAL_CLIPS.glob("*.mp4"))]


def make_pairs(clips: list[np.ndarray]) -> dict:
    """Sources, driving frames, outputs, the driving frames' stored pose and AUs, and neutrals."""
    rng = np.random.default_rng(0)
    backend = DlibBackend()
    rows = {k: [] for k in ("source", "driving", "output", "key", "clip", "pose", "aus")}
    tables = []
    for c, frames in enumerate(clips):
        clip = ("person", f"clip{c}")
        stored = backend.annotate_clip(enumerate(frames))  # what annotate stores
        tables.append(to_table(*clip, stored).to_pandas())
        outputs = np.clip(np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in frames])
                          + rng.normal(0, 4, frames.shape), 0, 255).astype(np.uint8)
        # Frames whose face a detection finds on its own, in the frame and in its output (a
        # tracked face need not be), so that both variants do the same work.
        ok = np.flatnonzero(stored.success & _found(backend, frames) & _found(backend, outputs))
        sources = ok[:SOURCES]
        driving = ok[np.linspace(SOURCES, len(ok) - 1, DRIVING).astype(int)]
        for s in sources:
            for d in driving:
                rows["source"].append(frames[s])
                rows["driving"].append(frames[d])
                rows["output"].append(outputs[d])
                rows["key"].append((*clip, int(s)))
                rows["clip"].append(clip)
                rows["pose"].append(stored.pose[d])
                rows["aus"].append(stored.au_presence[d])
    pairs = {k: v if k in ("key", "clip") else np.stack(v) for k, v in rows.items()}
    pairs["neutrals"] = clip_neutrals(pd.concat(tables))
    return pairs


def _found(backend: DlibBackend, images: np.ndarray) -> np.ndarray:
    """(N,) whether a detection on the image alone finds a face-shaped fit."""
    found = np.zeros(len(images), bool)
    for i, image in enumerate(images):
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        box = backend.detect(gray)
        found[i] = (box is not None
                    and shape_residual(backend.fit(gray, box[0])) < MAX_SHAPE_RESIDUAL)
    return found


# --- the two ways -------------------------------------------------------------------------------


def naive(pairs: dict, backend: DlibBackend) -> None:
    """Every pair on its own: both faces read and embedded by dlib, scikit-image's SSIM/PSNR."""
    columns = [AU_IDS.index(au) for au in measured_aus("dlib")]
    for i in range(len(pairs["key"])):
        faces = []
        for image in (pairs["source"][i], pairs["output"][i]):
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            found = backend.detect(gray)
            assert found is not None, "a stand-in face was not found"
            landmarks = backend.fit(gray, found[0])
            assert shape_residual(landmarks) < MAX_SHAPE_RESIDUAL
            pose = np.array(head_pose(landmarks, SIZE, SIZE))
            presence = action_units(landmarks[None], np.ones(1, bool),
                                    pairs["neutrals"][pairs["clip"][i]])[0][0]
            descriptor = backend.embed(image, landmarks)
            faces.append((pose, presence, descriptor / np.linalg.norm(descriptor)))
        (_, _, source), (pose, presence, output) = faces
        float(source @ output)
        float(np.sqrt(np.mean((pose - pairs["pose"][i]) ** 2)))
        float(np.mean(presence[columns] == pairs["aus"][i][columns]))
        structural_similarity(pairs["output"][i], pairs["driving"][i], gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False, data_range=255,
                              channel_axis=-1)
        peak_signal_noise_ratio(pairs["driving"][i], pairs["output"][i], data_range=255)


def batched(pairs: dict, reader: FaceReader) -> dict[str, float]:
    """glg.metrics in batches; seconds per step."""
    steps = dict.fromkeys(("ssim", "psnr", "sources", "outputs", "arithmetic"), 0.0)
    for start in range(0, len(pairs["key"]), BATCH):
        at = slice(start, start + BATCH)
        clock = time.perf_counter()
        ssim(pairs["output"][at], pairs["driving"][at])
        steps["ssim"] += time.perf_counter() - clock
        clock = time.perf_counter()
        psnr(pairs["output"][at], pairs["driving"][at])
        steps["psnr"] += time.perf_counter() - clock
        clock = time.perf_counter()
        source = reader.read(pairs["source"][at], pairs["clip"][at], pairs["key"][at])
        steps["sources"] += time.perf_counter() - clock
        clock = time.perf_counter()
        output = reader.read(pairs["output"][at], pairs["clip"][at])
        steps["outputs"] += time.perf_counter() - clock
        clock = time.perf_counter()
        assert output.found.all(), "a stand-in output lost its face"
        csim(source, output).summary()
        prmse(output, pairs["pose"][at]).summary()
        aucon(output, pairs["aus"][at]).summary()
        steps["arithmetic"] += time.perf_counter() - clock
    return steps


def embedding_share(pairs: dict, neutrals: dict) -> float:
    """The share of reading outputs spent on embeddings: reading without an embedder, then
    embedding the same faces (what `FaceReader.read` does in one go)."""
    plain, embedder = FaceReader("dlib", neutrals=neutrals), DlibEmbedder()
    clock = time.perf_counter()
    read = plain.read(pairs["output"], pairs["clip"])
    reading = time.perf_counter() - clock
    clock = time.perf_counter()
    embedder.embed(pairs["output"], read.landmarks)
    embedding = time.perf_counter() - clock
    return embedding / (reading + embedding)


def measure(name: str, clips: list[np.ndarray], max_threads: int) -> None:
    pairs = make_pairs(clips)
    n = len(pairs["key"])
    backend = DlibBackend()
    rows = []
    variants = [("naive", 1, lambda: naive(pairs, backend))]
    for threads in sorted({1, max_threads}):
        reader = FaceReader("dlib", DlibEmbedder(), pairs["neutrals"])  # a fresh cache each
        variants.append((f"batched, {threads} thread{'s' * (threads > 1)}", threads,
                         lambda reader=reader: batched(pairs, reader)))
    for label, threads, run in variants:
        torch.set_num_threads(threads)
        start, cpu = time.perf_counter(), cpu_seconds()
        steps = run()
        rows.append((label, time.perf_counter() - start, cpu_seconds() - cpu, steps))
    print(f"\n{name}: {n} pairs of {SIZE}x{SIZE} from {len(clips)} clips, "
          f"{len(set(pairs['key']))} distinct sources ({reader.images_read - n} source reads "
          f"with the cache); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"  {'variant':<19} {'seconds':>8} {'pairs/s':>8} {'x naive':>8} {'pairs/CPU-s':>12} "
          f"{'x naive':>8}")
    (_, naive_s, naive_cpu, _) = rows[0]
    for label, seconds, cpu, _ in rows:
        print(f"  {label:<19} {seconds:8.2f} {n / seconds:8.1f} {naive_s / seconds:8.2f} "
              f"{n / cpu:12.1f} {naive_cpu / cpu:8.2f}")
    torch.set_num_threads(1)
    steps, total = rows[1][3], sum(rows[1][3].values())
    embed = embedding_share(pairs, pairs["neutrals"])
    shares = {"SSIM": steps["ssim"], "PSNR": steps["psnr"],
              "CSIM (embeddings)": steps["sources"] + steps["outputs"] * embed,
              "PRMSE/AUCON (face reading)": steps["outputs"] * (1 - embed),
              "metric arithmetic": steps["arithmetic"]}
    print("  share of the batched time (1 thread): " + ", ".join(
        f"{k} {100 * v / total:.0f}%" for k, v in shares.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads of the second batched run (default: every CPU)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    measure("demo", demo_clips(), args.threads)
    if any(REAL_CLIPS.glob("*.mp4")):
        measure("real", real_clips(), args.threads)
    else:
        print(f"\nreal: skipped, no clips at {REAL_CLIPS}")


if __name__ == "__main__":
    main()
