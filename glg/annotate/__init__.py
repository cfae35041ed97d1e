"""The annotate stage: 68 landmarks, head pose and the paper's 18 AUs for every stored frame.

One backend per file behind `glg.store.annotations.Backend` (`dlib.py`: offline default;
`pyfeat.py`: py-feat's detector), chosen by `annotate.backend`. `annotate` runs the backend over
every clip of the frame store in parallel (local processes or Ray actors: glg/engine.py), streams
rows into the annotation shards (format: `glg.store.annotations`) and scores them against the
synthesizer's ground truth when there is one (`glg.metrics.accuracy`). The paper took pose and AUs
from OpenFace (Sec IV-C); the backends are its stand-ins.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.pool
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from glg.annotate.dlib import DlibBackend
from glg.annotate.pyfeat import PyFeatBackend, check_weights
from glg.config import AnnotateConfig
from glg.engine import clip_results
from glg.errors import GlgError, reading
from glg.metrics import write_metrics
from glg.metrics.accuracy import annotation_accuracy
from glg.store.annotations import (Backend, clear_annotations, failed_result, read_annotations,
                                   to_table, write_identities, write_shard)
from glg.store.frames import iter_clip, open_store, read_manifest


def make_backend(config: AnnotateConfig) -> Backend:
    """The backend `annotate.backend` names."""
    if config.backend == "dlib":
        return DlibBackend(redetect_every=config.redetect_every)
    if config.backend == "pyfeat":
        return PyFeatBackend()
    raise GlgError(f"annotate.backend: unknown backend {config.backend!r}")


# --- the worker pool -------------------------------------------------------------------------

_worker_backend: Backend | None = None


def _init_worker(config: AnnotateConfig) -> None:
    global _worker_backend
    cv2.setNumThreads(1)  # parallelism comes from the processes, one clip each
    _worker_backend = make_backend(config)


def _annotate_one(job: tuple[str, str, str, int]) -> tuple[str, str, pa.Table,
                                                          np.ndarray | None, str | None]:
    """One clip's rows; a clip that cannot be read becomes `n` failed rows and a reason."""
    frames_dir, identity, video, n = job
    try:
        result = _worker_backend.annotate_clip(iter_clip(frames_dir, identity, video))
        problem = None
    except Exception as err:  # one unreadable clip must not stop the run; it is reported
        result = failed_result(n)
        problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return identity, video, to_table(identity, video, result), result.embedding, problem


def _forked_pool(config: AnnotateConfig, workers: int) -> multiprocessing.pool.Pool:
    """`workers` forked processes with the backend loaded.

    dlib's models are loaded once here and shared by the workers copy-on-write; py-feat's
    (torch) are loaded in each worker, as torch's thread pools do not survive a fork.
    """
    context = multiprocessing.get_context("fork")
    if config.backend == "dlib":
        _init_worker(config)
        return context.Pool(workers)
    return context.Pool(workers, _init_worker, (config,))


# --- the stage -------------------------------------------------------------------------------


def annotate_clips(frames_dir: str | Path, out_dir: str | Path, config: AnnotateConfig,
                   progress: bool = True) -> dict:
    """Annotate every stored frame; returns the per-clip counts {"identity/video": {...}}.

    Clips run in sorted order, in parallel on `config.workers` local processes or Ray actors
    (`config.engine`, glg/engine.py); rows stream into shards of `config.shard_rows` rows, so
    memory does not grow with the dataset. Failed frames stay, `success=False`.
    """
    frames_dir, out_dir = Path(frames_dir), Path(out_dir)
    stored = open_store(frames_dir).clips  # one row per clip
    # absolute paths: a Ray worker runs in a folder of its own, maybe on another machine
    jobs = sorted((str(frames_dir.absolute()), i, v, int(n)) for i, v, n in zip(
        stored["identity"], stored["video"], stored["frames"]))
    if config.backend == "pyfeat":
        check_weights()  # fail at once, before any worker starts
    if not jobs:
        raise GlgError(f"{frames_dir}: the frame store holds no frames (extract stored none: "
                       "see its skipped.csv)")
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_annotations(out_dir)
    clips: dict[str, dict] = {}
    identities: list[dict] = []
    pending: list[pa.Table] = []
    shard = 0
    # Ordered results: the output depends neither on the engine nor on which worker finishes
    # first. The workers start before tqdm's monitor thread: forking a threaded process can hang.
    with clip_results(_annotate_one, jobs, config.engine, config.workers,
                      functools.partial(_init_worker, config),
                      functools.partial(_forked_pool, config), "annotate") as results, tqdm(
            total=int(stored["frames"].sum()), unit="frame", disable=not progress,
            desc="annotate", dynamic_ncols=True) as bar:
        for identity, video, table, embedding, problem in results:
            n = table.num_rows
            failed = n - int(pc.sum(table["success"]).as_py() or 0)
            clips[f"{identity}/{video}"] = {"frames": n, "failed": failed}
            if problem:
                bar.write(f"{identity}/{video}: not annotated, {n} frames marked failed "
                          f"({problem})", file=sys.stderr)
            elif failed:
                bar.write(f"{identity}/{video}: {failed} of {n} frames without a face",
                          file=sys.stderr)
            identities.append({"identity": identity, "video": video, "embedding": embedding,
                               "backend": config.backend})
            pending.append(table)
            if sum(t.num_rows for t in pending) >= config.shard_rows:
                write_shard(out_dir, shard, pending)
                shard, pending = shard + 1, []
            bar.update(n)
    if pending or shard == 0:
        write_shard(out_dir, shard, pending)
    write_identities(out_dir, identities)
    return clips


def annotate(frames_dir: str | Path, out_dir: str | Path, metrics_path: str | Path,
             config: AnnotateConfig, ground_truth: str | Path | None = None,
             progress: bool = True) -> dict:
    """The whole stage: annotate, then score against ground truth when there is one; returns
    the metrics also written to `metrics_path`."""
    frames_dir = Path(frames_dir)
    if not frames_dir.is_dir():
        raise GlgError(f"{frames_dir}: frame store not found; run extract first")
    truth = None
    if ground_truth is not None and Path(ground_truth).is_file():
        with reading(ground_truth, "ground-truth table"):  # read before the work, not after
            truth = pd.read_parquet(ground_truth)
    start = time.perf_counter()
    clips = annotate_clips(frames_dir, out_dir, config, progress=progress)
    seconds = time.perf_counter() - start
    frames = sum(c["frames"] for c in clips.values())
    failed = sum(c["failed"] for c in clips.values())
    # Only the identities the ground truth knows are read back: memory stays bounded on real data.
    known = [] if truth is None else truth["identity"].unique().tolist()
    manifest = read_manifest(frames_dir, identities=known)
    annotations = read_annotations(out_dir, identities=known)
    metrics = {
        "backend": config.backend,
        "clips": len(clips),
        "frames": frames,
        "failed_frames": failed,
        "success_rate": float((frames - failed) / frames) if frames else None,
        # Failed frames per clip, listing only clips that have some (all others: none).
        "failed_per_clip": {k: c["failed"] for k, c in clips.items() if c["failed"]},
        "accuracy": annotation_accuracy(annotations, manifest, truth,
                                        open_store(frames_dir).frame_size()),
    }
    write_metrics(metrics_path, metrics)
    print(f"annotate: {frames} frames in {len(clips)} clips, {failed} without a face, "
          f"{frames / max(seconds, 1e-9):.0f} frames/s")
    if ground_truth is not None and truth is None:  # said: a mistyped path must not pass
        print(f"annotate: no ground truth at {ground_truth}: accuracy not measured",
              file=sys.stderr)
    return metrics
