"""Per-frame annotation: 68 landmarks, head pose and the paper's 18 AUs, into typed Parquet.

One backend per file behind the `Backend` protocol (`dlib.py`: offline default; `pyfeat.py`:
py-feat's detector), chosen by `annotate.backend`. `annotate` runs a backend over every clip of
the frame store in parallel, streams rows to `data/annotations/part-*.parquet` (schema below,
version in the file metadata) and the per-clip identity embeddings to `_identity.parquet`.
`accuracy` scores annotations against the synthesizer's ground truth (NME, pose RMSE, AU
agreement). The paper took pose and AUs from OpenFace (Sec IV-A); these are its stand-ins.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from glg.config import AnnotateConfig
from glg.errors import GlgError
from glg.landmarks import (AU_IDS, AU_PRESENCE, AU_SCORE, N_LANDMARKS, POSE_COLUMNS, X_COLUMNS,
                           Y_COLUMNS, interocular, landmarks_from_table)

SCHEMA_VERSION = "1"
IDENTITY_FILE = "_identity.parquet"  # leading underscore: pd.read_parquet(dir) skips it
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


def annotation_schema() -> pa.Schema:
    """The explicit schema of `data/annotations/part-*.parquet`, version in its metadata."""
    fields = [
        pa.field("identity", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("frame", pa.int64(), nullable=False),  # index of the stored frame in its clip
        pa.field("success", pa.bool_(), nullable=False),  # False: no face or failed fit
        pa.field("confidence", pa.float32()),  # 0..1, the backend's trust in the fit
        *[pa.field(c, pa.float32()) for c in BOX_COLUMNS],  # face box, stored-frame pixels
        *[pa.field(c, pa.float32()) for c in X_COLUMNS],  # landmarks, stored-frame pixels
        *[pa.field(c, pa.float32()) for c in Y_COLUMNS],
        *[pa.field(c, pa.float32()) for c in POSE_COLUMNS],  # degrees, glg.landmarks convention
        *[pa.field(c, pa.int8(), nullable=False) for c in AU_PRESENCE],  # 0/1
        *[pa.field(c, pa.float32()) for c in AU_SCORE],  # NaN where the backend cannot tell
    ]
    return pa.schema(fields, metadata={"glg.schema_version": SCHEMA_VERSION,
                                       "glg.table": "annotations"})


def identity_schema() -> pa.Schema:
    """Schema of `_identity.parquet`: one L2-normalised embedding per clip."""
    return pa.schema([
        pa.field("identity", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32())),  # null when no frame succeeded
        pa.field("backend", pa.string(), nullable=False),
    ], metadata={"glg.schema_version": SCHEMA_VERSION, "glg.table": "identity"})


class ClipResult(NamedTuple):
    """One clip's annotations, N frames; NaN rows where `success` is False."""

    frame: np.ndarray  # (N,) int64
    success: np.ndarray  # (N,) bool
    confidence: np.ndarray  # (N,) float32
    box: np.ndarray  # (N, 4) float32, x0 y0 x1 y1
    landmarks: np.ndarray  # (N, 68, 2) float32
    pose: np.ndarray  # (N, 3) float32, pitch yaw roll in degrees
    au_presence: np.ndarray  # (N, 18) int8, AU_IDS order
    au_score: np.ndarray  # (N, 18) float32
    embedding: np.ndarray | None  # (D,) float32, L2-normalised, or None


def empty_result() -> ClipResult:
    """A clip with no frames."""
    return failed_result(0)


def failed_result(n: int) -> ClipResult:
    """N failed frames: no face, NaN everywhere, AU presence 0."""
    k = len(AU_IDS)
    return ClipResult(np.arange(n, dtype=np.int64), np.zeros(n, bool), np.zeros(n, np.float32),
                      np.full((n, 4), np.nan, np.float32),
                      np.full((n, N_LANDMARKS, 2), np.nan, np.float32),
                      np.full((n, 3), np.nan, np.float32), np.zeros((n, k), np.int8),
                      np.full((n, k), np.nan, np.float32), None)


class Backend(Protocol):
    """Annotates the frames of one clip, in order; built once per worker process."""

    name: str

    def annotate_clip(self, frames: Iterable[tuple[int, np.ndarray]]) -> ClipResult:
        """Frames are (index, RGB uint8 (H, W, 3)); returns one row per frame, none dropped."""
        ...


def make_backend(config: AnnotateConfig) -> Backend:
    """The backend `annotate.backend` names (imported here: each pulls in heavy libraries)."""
    if config.backend == "dlib":
        from glg.annotate.dlib import DlibBackend

        return DlibBackend(redetect_every=config.redetect_every)
    if config.backend == "pyfeat":
        from glg.annotate.pyfeat import PyFeatBackend

        return PyFeatBackend()
    raise GlgError(f"annotate.backend: unknown backend {config.backend!r}")


def to_table(identity: str, video: str, result: ClipResult) -> pa.Table:
    """One clip's result as rows of `annotation_schema()`."""
    n = len(result.frame)
    columns: dict[str, np.ndarray] = {
        "identity": np.full(n, identity, dtype=object),
        "video": np.full(n, video, dtype=object),
        "frame": result.frame.astype(np.int64),
        "success": result.success.astype(bool),
        "confidence": result.confidence.astype(np.float32),
    }
    for k, c in enumerate(BOX_COLUMNS):
        columns[c] = result.box[:, k].astype(np.float32)
    for k in range(N_LANDMARKS):
        columns[X_COLUMNS[k]] = result.landmarks[:, k, 0].astype(np.float32)
    for k in range(N_LANDMARKS):
        columns[Y_COLUMNS[k]] = result.landmarks[:, k, 1].astype(np.float32)
    for k, c in enumerate(POSE_COLUMNS):
        columns[c] = result.pose[:, k].astype(np.float32)
    for k, c in enumerate(AU_PRESENCE):
        columns[c] = result.au_presence[:, k].astype(np.int8)
    for k, c in enumerate(AU_SCORE):
        columns[c] = result.au_score[:, k].astype(np.float32)
    schema = annotation_schema()
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema],
                                schema=schema)


# --- the runner ----------------------------------------------------------------------------

_worker_backend: Backend | None = None


def _init_worker(config: AnnotateConfig) -> None:
    global _worker_backend
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes, one clip each
    _worker_backend = make_backend(config)


def _annotate_one(job: tuple[str, str, str, int]) -> tuple[str, str, pa.Table,
                                                          np.ndarray | None, str | None]:
    """One clip's rows; a clip that cannot be read becomes `n` failed rows and a reason."""
    from glg.frames import iter_clip

    frames_dir, identity, video, n = job
    try:
        result = _worker_backend.annotate_clip(iter_clip(frames_dir, identity, video))
        problem = None
    except Exception as err:  # one unreadable clip must not stop the run; it is reported
        result = failed_result(n)
        problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return identity, video, to_table(identity, video, result), result.embedding, problem


def _pool(config: AnnotateConfig, jobs: int):
    """`config.workers` forked processes with the backend loaded; None for one worker.

    Made before any thread (tqdm's monitor) exists: forking a threaded process can deadlock.
    dlib's models are loaded once here and shared by the workers copy-on-write; py-feat's
    (torch) are loaded in each worker, as torch's thread pools do not survive a fork.
    """
    if config.workers == 1 or jobs <= 1:
        _init_worker(config)
        return None
    context = multiprocessing.get_context("fork")
    if config.backend == "dlib":
        _init_worker(config)
        return context.Pool(min(config.workers, jobs))
    return context.Pool(min(config.workers, jobs), _init_worker, (config,))


def clear_annotations(out_dir: Path) -> None:
    """Remove a previous run's shards and identity file (and nothing else) from `out_dir`."""
    for f in [*out_dir.glob("part-*.parquet"), out_dir / IDENTITY_FILE]:
        f.unlink(missing_ok=True)


def annotate(frames_dir: str | Path, out_dir: str | Path, config: AnnotateConfig,
             progress: bool = True) -> dict:
    """Annotate every stored frame; returns the per-clip counts {"identity/video": {...}}.

    Clips run in sorted order, in parallel; rows stream into shards of `config.shard_rows`
    rows, so memory does not grow with the dataset. Failed frames stay, `success=False`.
    """
    from glg.frames import read_manifest

    frames_dir, out_dir = Path(frames_dir), Path(out_dir)
    manifest = read_manifest(frames_dir)
    counts_per_clip = manifest.groupby(["identity", "video"], sort=True).size()
    jobs = [(str(frames_dir), i, v, int(n)) for (i, v), n in counts_per_clip.items()]
    if config.backend == "pyfeat":
        from glg.annotate.pyfeat import check_weights

        check_weights()  # fail at once, before any worker starts
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_annotations(out_dir)
    clips: dict[str, dict] = {}
    identities: list[dict] = []
    pending: list[pa.Table] = []
    shard = 0
    pool = _pool(config, len(jobs))
    # Ordered results: the output does not depend on which worker finishes first.
    results = pool.imap(_annotate_one, jobs) if pool else map(_annotate_one, jobs)
    bar = tqdm(total=int(counts_per_clip.sum()), unit="frame", disable=not progress,
               desc="annotate", dynamic_ncols=True)
    try:
        for identity, video, table, embedding, problem in results:
            n = table.num_rows
            failed = n - int(pc.sum(table["success"]).as_py() or 0)
            clips[f"{identity}/{video}"] = {"frames": n, "failed": failed}
            if problem:
                bar.write(f"{identity}/{video}: not annotated, {n} frames marked failed "
                          f"({problem})")
            elif failed:
                bar.write(f"{identity}/{video}: {failed} of {n} frames without a face")
            identities.append({"identity": identity, "video": video, "embedding": embedding,
                               "backend": config.backend})
            pending.append(table)
            if sum(t.num_rows for t in pending) >= config.shard_rows:
                _write_shard(out_dir, shard, pending)
                shard, pending = shard + 1, []
            bar.update(n)
    finally:
        bar.close()
        if pool:
            pool.terminate()  # every result is in (or the run failed): stop the workers
            pool.join()
    if pending or shard == 0:
        _write_shard(out_dir, shard, pending)
    ids = pa.Table.from_pylist(
        [{**r, "embedding": None if r["embedding"] is None else r["embedding"].tolist()}
         for r in identities], schema=identity_schema())
    pq.write_table(ids, out_dir / IDENTITY_FILE)
    return clips


def _write_shard(out_dir: Path, shard: int, tables: list[pa.Table]) -> None:
    schema = annotation_schema()
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    pq.write_table(table.replace_schema_metadata(schema.metadata),
                   out_dir / f"part-{shard:05d}.parquet", compression="zstd")


def read_annotations(out_dir: str | Path, identities: list[str] | None = None) -> pd.DataFrame:
    """The annotation rows of a run (only `identities`' if given), checking the schema version."""
    out_dir = Path(out_dir)
    shards = sorted(out_dir.glob("part-*.parquet"))
    if not shards:
        raise GlgError(f"{out_dir}: no annotation shards (part-*.parquet); run annotate first")
    version = pq.read_schema(shards[0]).metadata.get(b"glg.schema_version", b"").decode()
    if version != SCHEMA_VERSION:
        raise GlgError(f"{shards[0]}: annotation schema version {version!r}, expected "
                       f"{SCHEMA_VERSION!r}; re-run annotate")
    if identities is not None and not identities:
        return annotation_schema().empty_table().to_pandas()
    if identities is not None:
        return pd.read_parquet(out_dir, filters=[("identity", "in", sorted(identities))])
    return pd.read_parquet(out_dir)


# --- accuracy against ground truth ---------------------------------------------------------


def accuracy(annotations: pd.DataFrame, manifest: pd.DataFrame, ground_truth: pd.DataFrame | None,
             size: int) -> dict:
    """Landmark NME, pose RMSE per angle and per-AU agreement against the synthesizer's truth.

    Rows match on identity, video and the manifest's `source_frame`; ground-truth points map
    into stored-frame pixels through the manifest's crop box. NME is the mean point error over
    the ground-truth inter-ocular distance, averaged over successful matched frames.
    """
    out: dict = {"matched_frames": 0, "nme": None, "pose_rmse": None, "au_agreement": None}
    if ground_truth is None or ground_truth.empty:
        out["note"] = "no ground truth: accuracy not measured"
        return out
    rows = annotations.merge(
        manifest[["identity", "video", "frame", "source_frame", "crop_x0", "crop_y0",
                  "crop_size"]], on=["identity", "video", "frame"], how="inner")
    truth = ground_truth.rename(columns=lambda c: f"gt_{c}" if c not in (
        "identity", "video", "frame") else c).rename(columns={"frame": "source_frame"})
    rows = rows.merge(truth, on=["identity", "video", "source_frame"], how="inner")
    out["matched_frames"] = len(rows)
    if rows.empty:
        out["note"] = "ground truth has no rows for these clips (real data): accuracy not measured"
        return out
    ok = rows[rows["success"]]
    out["matched_success_rate"] = float(len(ok) / len(rows))
    if ok.empty:
        out["note"] = "no matched frame has a successful annotation"
        return out
    scale = (size / ok["crop_size"].to_numpy())[:, None]  # (M, 1)
    gt_x = (ok[[f"gt_{c}" for c in X_COLUMNS]].to_numpy() - ok[["crop_x0"]].to_numpy()) * scale
    gt_y = (ok[[f"gt_{c}" for c in Y_COLUMNS]].to_numpy() - ok[["crop_y0"]].to_numpy()) * scale
    truth_points = np.stack([gt_x, gt_y], -1)  # (M, 68, 2)
    points = landmarks_from_table(ok)  # (M, 68, 2)
    error = np.linalg.norm(points - truth_points, axis=-1).mean(-1) / interocular(truth_points)
    out["nme"] = float(error.mean())
    out["nme_median"] = float(np.median(error))
    out["pose_rmse"] = {
        a: float(np.sqrt(np.mean((ok[a].to_numpy(np.float64) - ok[f"gt_{a}"]) ** 2)))
        for a in POSE_COLUMNS if f"gt_{a}" in ok}
    # Agreement is the paper's AUCON per AU (Sec IV-A); most frames show few AUs, so the share
    # of frames the truth marks present and the F1 of the positives are reported beside it.
    agreement, f1, truth_rate = {}, {}, {}
    for au, c, r in zip(AU_IDS, AU_PRESENCE, AU_SCORE):
        name = f"AU{au:02d}"
        if f"gt_{c}" not in ok or ok[r].isna().all():
            agreement[name] = f1[name] = truth_rate[name] = None  # no truth, or not measured
            continue
        said, true = ok[c].to_numpy() == 1, ok[f"gt_{c}"].to_numpy() == 1
        agreement[name] = float((said == true).mean())
        truth_rate[name] = float(true.mean())
        both = int((said & true).sum())
        f1[name] = float(2 * both / (said.sum() + true.sum())) if said.any() or true.any() else None
    out["au_agreement"], out["au_f1"], out["au_truth_rate"] = agreement, f1, truth_rate
    return out


def write_metrics(path: str | Path, metrics: dict) -> None:
    """Metrics as sorted, indented JSON (byte-identical for identical runs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def run(frames_dir: str | Path, out_dir: str | Path, metrics_path: str | Path,
        config: AnnotateConfig, ground_truth: str | Path | None = None,
        progress: bool = True) -> dict:
    """The whole stage: annotate, then score against ground truth when there is one."""
    from glg.frames import read_manifest

    frames_dir = Path(frames_dir)
    if not frames_dir.is_dir():
        raise GlgError(f"{frames_dir}: frame store not found; run extract first")
    start = time.perf_counter()
    clips = annotate(frames_dir, out_dir, config, progress=progress)
    seconds = time.perf_counter() - start
    frames = sum(c["frames"] for c in clips.values())
    failed = sum(c["failed"] for c in clips.values())
    truth = None
    if ground_truth is not None and Path(ground_truth).is_file():
        truth = pd.read_parquet(ground_truth)
    manifest = read_manifest(frames_dir)
    # Only the identities the ground truth knows are read back: memory stays bounded on real data.
    known = [] if truth is None else truth["identity"].unique().tolist()
    annotations = read_annotations(out_dir, known)
    size = _frame_size(frames_dir, manifest)
    metrics = {
        "backend": config.backend,
        "clips": len(clips),
        "frames": frames,
        "failed_frames": failed,
        "success_rate": float((frames - failed) / frames) if frames else None,
        # Failed frames per clip, listing only clips that have some (all others: none).
        "failed_per_clip": {k: c["failed"] for k, c in clips.items() if c["failed"]},
        "accuracy": accuracy(annotations, manifest, truth, size),
    }
    write_metrics(metrics_path, metrics)
    print(f"annotate: {frames} frames in {len(clips)} clips, {failed} without a face, "
          f"{frames / max(seconds, 1e-9):.0f} frames/s")
    return metrics


def _frame_size(frames_dir: Path, manifest: pd.DataFrame) -> int:
    """Side of the stored square frames, read from the first one."""
    from glg.frames import read_frame

    if manifest.empty:
        return 0
    first = manifest.iloc[0]
    frame = read_frame(frames_dir, first["identity"], first["video"], int(first["frame"]))
    return int(frame.shape[0])
