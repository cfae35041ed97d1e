"""The `extract` stage: every video under `data.videos` -> face crops in the frame store.

Each clip is decoded and sampled (glg/store/video.py), cropped to square face crops of
`extract.crop_px` px (glg/face/crop.py; 256, the size VoxCeleb1 and CelebV come in, paper Sec IV-A)
and JPEG-encoded by worker processes (local or Ray actors: glg/engine.py), each into its own spool
file; this process then moves the spool files in sorted path order into the frame store (format:
glg/store/frames.py; its manifest's extract columns: `EXTRACT_COLUMNS`) and lists the skipped clips
with their reasons in `skipped.csv`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.pool
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from glg.config import ExtractConfig
from glg.engine import clip_results
from glg.errors import GlgError
from glg.face.crop import CropCounts, crop_clip
from glg.face.dlib_models import face_detector
from glg.store.frames import FrameStoreWriter, clear_store, encode_bgr
from glg.store.video import Clip, SkipClip, find_clips, sample_frames

SKIPPED = "skipped.csv"
SPOOL = ".spool"  # the workers' spool files, one per clip, removed when the run ends
# extract's own columns of the frame store's manifest, after identity, video, frame
EXTRACT_COLUMNS = pa.schema([
    ("source_frame", pa.int32()),  # index of that frame in the decoded source video, 0-based
    ("timestamp", pa.float64()),  # s, source_frame / source fps
    ("crop_x0", pa.float32()),  # crop box in source pixels
    ("crop_y0", pa.float32()),
    ("crop_size", pa.float32()),
    ("source", pa.string()),  # path relative to data.videos, '/' separators
])

# --- one clip --------------------------------------------------------------------------------


@dataclass
class ClipFrames:
    """What one worker returns for a clip: its spool file and the stored frames' rows, or the
    reason it was skipped."""

    clip: Clip
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    decoded: int = 0  # source frames the clip's sampled frames span, for the frames/s figure
    capped: bool = False  # sampling stopped at extract.max_frames (the clip may go on past it)
    source_frames: list[int] = field(default_factory=list)  # of the stored frames
    timestamps: list[float] = field(default_factory=list)
    boxes: list | np.ndarray = field(default_factory=list)  # (n, 3) x0, y0, side
    lengths: list[int] = field(default_factory=list)  # of each stored frame's JPEG, bytes
    spool: Path | None = None  # the JPEGs back to back


def extract_clip(clip: Clip, config: ExtractConfig, spool: Path) -> ClipFrames:
    """Sample, crop and JPEG-encode one clip into the spool file `spool`, streaming; never
    raises on a bad file: the reason goes to `ClipFrames.skipped`."""
    result, counts = ClipFrames(clip), CropCounts()
    frames = functools.partial(sample_frames, clip.path, config.fps, config.max_frames)
    try:
        with spool.open("wb") as jpegs:
            for crop in crop_clip(frames, config, counts):
                result.lengths.append(jpegs.write(encode_bgr(crop.bgr, config.jpeg_quality)))
                result.source_frames.append(crop.source_frame)
                result.timestamps.append(crop.timestamp)
                result.boxes.append(crop.box)
        if counts.n_sampled == 0:
            raise SkipClip("no decodable frames")
        if not counts.n_faces:
            raise SkipClip(f"no face found in {counts.n_sampled} sampled frames")
        if counts.most_faces > 1:
            result.notes.append(f"{counts.most_faces} faces in one frame, kept the largest")
        if counts.dropped:
            result.notes.append(f"{counts.dropped} frames before the first face found were left "
                                f"out")
        result.boxes = np.array(result.boxes).reshape(-1, 3)
        result.decoded = counts.last_source_frame + 1
        result.capped = counts.n_sampled >= config.max_frames
        result.spool = spool
    except SkipClip as reason:
        spool.unlink(missing_ok=True)
        return ClipFrames(clip, skipped=str(reason))
    except cv2.error as err:
        spool.unlink(missing_ok=True)
        return ClipFrames(clip, skipped=f"decoding failed ({str(err).strip().splitlines()[-1]})")
    return result


def _setup_worker() -> None:
    """What each worker process does once before its first clip."""
    cv2.setNumThreads(1)  # one process per core: no OpenCV thread oversubscription
    face_detector()  # 1 ms from its cache, which this run's first process wrote


def _extract_in_worker(job: tuple[Clip, ExtractConfig, Path]) -> ClipFrames:
    return extract_clip(*job)


def _forkserver_pool(workers: int) -> multiprocessing.pool.Pool:
    """Worker processes forked from a clean server that has imported this module
    (glg/extract/_preload.py), so a worker starts in milliseconds instead of 0.25 s of imports.
    Not a plain fork of this process: that can inherit a lock held by an OpenCV, dlib or torch
    thread and hang. The server imports while this process makes sure the face detector's
    cache is there for the workers (`face_detector`: built on a machine's first run only)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["glg.extract._preload"])
    multiprocessing.forkserver.ensure_running()  # returns at once; the server imports
    face_detector()
    return context.Pool(workers, _setup_worker)


# --- the whole dataset -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractSummary:
    """Counts of one `extract` run."""

    clips: int
    stored_clips: int
    stored_frames: int
    source_frames: int  # source frames the stored clips span (`fixed` decodes them twice)
    skipped: int
    seconds: float
    capped: int = 0  # stored clips whose sampling stopped at extract.max_frames


def extract(videos: Path, out: Path, config: ExtractConfig,
            progress: bool = True) -> ExtractSummary:
    """Extract every clip under `videos` into the frame store `out` (Sec IV-A's 256 px crops).

    Clips run in parallel on `config.workers` processes of this machine or Ray actors
    (`config.engine`, glg/engine.py) and are written by this process in sorted path order, so
    the bytes depend neither on the engine nor on scheduling. Bad clips are skipped and listed
    in `out/skipped.csv`; a dataset with nothing usable raises `GlgError`.
    """
    started = time.perf_counter()
    clips = find_clips(Path(videos))
    out = Path(out)
    spools = out / SPOOL
    shutil.rmtree(spools, ignore_errors=True)
    spools.mkdir(parents=True)
    clear_store(out)
    (out / SKIPPED).unlink(missing_ok=True)

    writer = FrameStoreWriter(out, config.shard_mb, EXTRACT_COLUMNS)
    skipped: list[tuple[str, str]] = []
    decoded = capped = 0
    # absolute paths: a Ray worker runs in a folder of its own, maybe on another machine
    jobs = [(dataclasses.replace(clip, path=clip.path.absolute()), config,
             spools.absolute() / f"{i:07d}.jpegs") for i, clip in enumerate(clips)]
    try:
        with clip_results(_extract_in_worker, jobs, config.engine, config.workers,
                          _setup_worker, _forkserver_pool, "extract",
                          start_here=True) as results, tqdm(
                desc="extract", unit="frame", file=sys.stderr, disable=not progress,
                dynamic_ncols=True) as bar:
            for result in results:
                source = result.clip.source
                for note in result.notes:
                    tqdm.write(f"{source}: {note}", file=sys.stderr)
                if result.skipped:
                    tqdm.write(f"skipped {source}: {result.skipped}", file=sys.stderr)
                    skipped.append((source, result.skipped))
                else:
                    _store_clip(writer, result)
                    capped += result.capped
                decoded += result.decoded
                bar.update(result.decoded)
    finally:
        shutil.rmtree(spools, ignore_errors=True)
    writer.close()
    _write_skipped(out / SKIPPED, skipped)
    if writer.frames == 0:
        raise GlgError(f"{videos}: none of the {len(clips)} videos was usable "
                       f"(reasons in {out / SKIPPED})")
    return ExtractSummary(clips=len(clips), stored_clips=writer.clips,
                          stored_frames=writer.frames, source_frames=decoded,
                          skipped=len(skipped), seconds=time.perf_counter() - started,
                          capped=capped)


def _store_clip(writer: FrameStoreWriter, result: ClipFrames) -> None:
    """Move one clip's spool file into the store with extract's manifest columns."""
    n, boxes = len(result.lengths), np.asarray(result.boxes, np.float32)
    writer.add(result.clip.identity, result.clip.video, range(n), result.lengths, result.spool, {
        "source_frame": result.source_frames, "timestamp": result.timestamps,
        "crop_x0": boxes[:, 0], "crop_y0": boxes[:, 1], "crop_size": boxes[:, 2],
        "source": [result.clip.source] * n})


def _write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "reason"])
        writer.writerows(sorted(skipped))
