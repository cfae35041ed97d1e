"""Frame extraction: decode, find the face, crop, resize, and store into the frame store.

The `extract` stage (issue 2, part 5) turns every video under `data.videos` into square face
crops of `extract.size` px (256, the size VoxCeleb1 and CelebV come in, paper Sec IV-A) kept in
the frame store (`glg.frames`: a few Parquet shards of JPEG bytes plus `manifest.parquet`).

Conventions, stated once: frames in numpy are RGB uint8 `(H, W, 3)`; OpenCV's BGR exists only
inside the decoding and JPEG helpers. A crop box is `(crop_x0, crop_y0, crop_size)` in source
pixels (integers stored as floats, possibly past the image edge, where it is padded black); a
source point (x, y) lands in the stored frame at `((x - crop_x0) * size / crop_size, ...)`.

A clip is streamed, never held whole: dlib's HOG face detector runs on every `detect_every`-th
sampled frame, the face track is interpolated between detections and smoothed with a centred
kernel, and each frame is cropped as soon as the detections ahead of it are known (a bounded
buffer of frames). The `fixed` policy decodes twice instead: all detections, then the crops.
"""

from __future__ import annotations

import collections
import csv
import functools
import multiprocessing
import multiprocessing.pool
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from glg.config import ExtractConfig
from glg.errors import GlgError
from glg.frames import (MANIFEST, PART_SCHEMA, ROW_GROUP_FRAMES, SHARD_GLOB, StoreWriter,
                        encode_bgr)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
SKIPPED = "skipped.csv"
PARTS = ".parts"  # workers' temporary per-clip files, removed when the run ends

# --- finding the clips -----------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One video file and its key: `identity` is the top folder, `video` the rest of the path."""

    path: Path
    source: str  # path relative to data.videos, '/' separators
    identity: str
    video: str


def clip_key(source: str) -> tuple[str, str]:
    """`(identity, video)` of a path relative to data.videos (conventions of issue 2).

    `<identity>/<clip>.mp4` -> (identity, clip); `<identity>/<yt_id>/<clip>.mp4` ->
    (identity, 'yt_id/clip'). A file right under data.videos is its own identity: (stem, stem).
    """
    parts = source.split("/")
    stem = parts[-1].rsplit(".", 1)[0]
    if len(parts) == 1:
        return stem, stem
    return parts[0], "/".join(parts[1:-1] + [stem])


def find_clips(videos: Path) -> list[Clip]:
    """Every video under `videos` (recursively, `VIDEO_SUFFIXES`), sorted by relative path."""
    if not videos.is_dir():
        raise GlgError(f"{videos}: data.videos folder not found (expected a folder of "
                       f"<identity>/<clip>.mp4)")
    clips = []
    for path in videos.rglob("*"):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            source = path.relative_to(videos).as_posix()
            clips.append(Clip(path, source, *clip_key(source)))
    if not clips:
        raise GlgError(f"{videos}: no videos ({', '.join(VIDEO_SUFFIXES)}) found")
    return sorted(clips, key=lambda c: c.source)


# --- decoding and sampling -------------------------------------------------------------------


class SkipClip(Exception):
    """A clip that cannot be used; the message is the reason recorded in skipped.csv."""


def _open(path: Path) -> tuple[cv2.VideoCapture, float]:
    """An opened capture and its frame rate, or `SkipClip` saying why not."""
    if path.stat().st_size == 0:
        raise SkipClip("empty file (0 bytes)")
    # one decoder thread: parallelism comes from extract.workers processes, not oversubscription
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not capture.isOpened():
        raise SkipClip("not a readable video (corrupt, truncated or not a video file)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (np.isfinite(fps) and 0.0 < fps <= 1000.0):
        capture.release()
        raise SkipClip(f"no valid frame rate in the container (got {fps})")
    return capture, fps


def sample_frames(path: Path, fps: float, max_frames: int, pixels_every: int = 1,
                  bgr: bool = False) -> Iterator[tuple[int, int, float, np.ndarray | None]]:
    """Sampled frames of a video: `(sampled index, source frame, timestamp s, RGB or None)`.

    A source frame is kept when it starts a new `1 / fps` time slot, so a source slower than
    `fps` keeps every frame; at most `max_frames` are kept. Only every `pixels_every`-th sampled
    frame is converted to RGB (the others come as None: decoded, never converted). With `bgr`,
    frames stay in the decoder's BGR order: extract crops and JPEG-encodes in BGR and never
    pays for a colour conversion.
    """
    capture, source_fps = _open(path)
    try:
        kept, last_slot, index = 0, -1, -1
        while kept < max_frames and capture.grab():
            index += 1
            timestamp = index / source_fps
            slot = int(np.floor(timestamp * fps + 1e-6))
            if slot <= last_slot:
                continue
            last_slot = slot
            rgb = None
            if kept % pixels_every == 0:
                ok, frame = capture.retrieve()
                if not ok or frame is None:
                    break  # a truncated stream: keep what decoded
                rgb = _to_rgb(frame) if not bgr else (
                    frame if frame.ndim == 3 and frame.shape[2] == 3
                    else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
            yield kept, index, timestamp, rgb
            kept += 1
    finally:
        capture.release()


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """Decoder output (BGR, or gray for some codecs) as RGB uint8 `(H, W, 3)`."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


# --- face boxes ------------------------------------------------------------------------------


@functools.cache
def _face_detector():
    """dlib's HOG frontal face detector, built once per process (no download: it ships inside)."""
    import dlib

    return dlib.get_frontal_face_detector()


def detect_faces(rgb: np.ndarray, detect_size: int, bgr: bool = False) -> np.ndarray:
    """Face boxes `(N, 4)` as x0, y0, x1, y1 in the frame's pixels, largest first.

    The detector sees the frame downscaled so its longer side is at most `detect_size` px.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, detect_size / max(height, width))
    gray = cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(width * scale), round(height * scale)),
                          interpolation=cv2.INTER_AREA)
    rects = _face_detector()(gray, 0)
    boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                     dtype=np.float64).reshape(-1, 4) / scale
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[np.argsort(-area, kind="stable")]


def face_centre(box: np.ndarray) -> np.ndarray:
    """A face box x0, y0, x1, y1 as cx, cy, side (the mean of width and height)."""
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, ((x1 - x0) + (y1 - y0)) / 2])


def smoothing_reach(config: ExtractConfig) -> int:
    """Half-width of the box smoothing window, sampled frames: where `smoothing^k` falls under
    1 %, so the truncated kernel loses nothing visible (0 for `per_frame` or no smoothing)."""
    if config.crop != "smoothed" or config.smoothing == 0:
        return 0
    return int(np.ceil(np.log(0.01) / np.log(config.smoothing)))


def crop_box(index: int, keys: list[int], faces: list[np.ndarray], last: int,
             config: ExtractConfig) -> np.ndarray:
    """The square crop box of sampled frame `index` as integer x0, y0, side, source pixels.

    The face track (cx, cy, side) is the detections `faces` at sampled indices `keys`,
    interpolated linearly and held past the ends; `smoothed` averages it over
    `index +- smoothing_reach` (clipped to 0..`last`) with weights `smoothing^|k - index|`, a
    centred exponential kernel: no lag, no jitter. The crop side is `crop_scale` x the face's.
    """
    reach = smoothing_reach(config)
    window = np.arange(max(0, index - reach), min(last, index + reach) + 1)
    values = np.array(faces)  # (D, 3)
    track = np.stack([np.interp(window, keys, values[:, c]) for c in range(3)], axis=1)
    weights = config.smoothing ** np.abs(window - index) if reach else np.ones(len(window))
    cx, cy, face = weights @ track / weights.sum()
    side = max(round(face * config.crop_scale), 2)
    return np.array([round(cx - side / 2), round(cy - side / 2), side], dtype=np.int64)


def fixed_box(faces: list[np.ndarray], config: ExtractConfig) -> np.ndarray:
    """Policy `fixed`: one crop for the clip, centred on the union of all detected face boxes
    `(D, 4)` and `crop_scale` x that union's longer side."""
    boxes = np.array(faces)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    side = max(round(max(x1 - x0, y1 - y0) * config.crop_scale), 2)
    return np.array([round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2), side],
                    dtype=np.int64)


def crop_frame(image: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The square `side` px box at (x0, y0) of a frame, padded black past the edges, resized to
    `size` with `INTER_AREA`: `(H, W, 3)` -> `(size, size, 3)`.

    A box of 1.5 `size` or more is first resampled bilinearly to exactly k x `size` (k the
    nearest integer ratio), then area-averaged by k: about 2x faster than OpenCV's non-integer
    `INTER_AREA` and within a grey level of it on average.
    """
    height, width = image.shape[:2]
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + side, width), min(y0 + side, height)
    if ix1 <= ix0 or iy1 <= iy0:
        return np.zeros((size, size, 3), np.uint8)
    region = image[iy0:iy1, ix0:ix1]
    pads = (iy0 - y0, y0 + side - iy1, ix0 - x0, x0 + side - ix1)
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    k = round(side / size)
    if k >= 2 and side != k * size:
        region = cv2.resize(region, (k * size, k * size), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


# --- one clip --------------------------------------------------------------------------------


@dataclass
class ClipFrames:
    """What one worker returns for a clip: where its JPEGs went and their rows, or the reason
    it was skipped."""

    clip: Clip
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    decoded: int = 0  # source frames the clip's sampled frames span, for the frames/s figure
    source_frames: list[int] = field(default_factory=list)  # of the stored frames
    timestamps: list[float] = field(default_factory=list)
    boxes: list | np.ndarray = field(default_factory=list)  # (n, 3) x0, y0, side
    n_sampled: int = 0  # frames sampled, stored or not
    last_source_frame: int = -1
    n_faces: int = 0  # detector runs that found a face
    most_faces: int = 0  # most faces in one frame
    dropped: int = 0  # sampled frames before the first face, left out
    part: Path | None = None  # temporary Parquet file of the JPEGs, `ROW_GROUP_FRAMES` a group


def extract_clip(clip: Clip, config: ExtractConfig, part: Path) -> ClipFrames:
    """Sample, detect, crop and JPEG-encode one clip into the Parquet file `part`, streaming;
    never raises on a bad file: the reason goes to `ClipFrames.skipped`.

    `smoothed` and `per_frame` decode once, holding at most `smoothing_reach + 2 detect_every`
    frames while the detections ahead arrive; `fixed` needs every detection first, so it
    decodes twice (pass 1 detects, pass 2 crops).
    """
    result = ClipFrames(clip)
    try:
        if config.crop == "fixed":
            crops = _fixed_crops(clip, config, result)
        else:
            crops = _tracked_crops(clip, config, result)
        stored, chunk = 0, []
        with pq.ParquetWriter(part, PART_SCHEMA, compression="none") as writer:
            for crop in crops:
                chunk.append(encode_bgr(crop, config.jpeg_quality))
                stored += 1
                if len(chunk) == ROW_GROUP_FRAMES:
                    writer.write_table(pa.table({"jpeg": pa.array(chunk, pa.binary())}))
                    chunk = []
            if chunk:
                writer.write_table(pa.table({"jpeg": pa.array(chunk, pa.binary())}))
        if result.n_sampled == 0:
            raise SkipClip("no decodable frames")
        if not result.n_faces:
            raise SkipClip(f"no face found in {result.n_sampled} sampled frames")
        if result.most_faces > 1:
            result.notes.append(f"{result.most_faces} faces in one frame, kept the largest")
        if result.dropped:
            result.notes.append(f"{result.dropped} frames before the first face found were left "
                                f"out")
        assert stored == len(result.source_frames) == len(result.boxes)
        result.boxes = np.array(result.boxes).reshape(-1, 3)
        result.decoded = result.last_source_frame + 1
        result.part = part
    except SkipClip as reason:
        part.unlink(missing_ok=True)
        return ClipFrames(clip, skipped=str(reason))
    except cv2.error as err:
        part.unlink(missing_ok=True)
        return ClipFrames(clip, skipped=f"decoding failed ({str(err).strip().splitlines()[-1]})")
    return result


def _detect(bgr: np.ndarray, config: ExtractConfig, result: ClipFrames) -> np.ndarray | None:
    """The largest face box x0, y0, x1, y1 in a frame, or None; counts faces for the log."""
    faces = detect_faces(bgr, config.detect_size, bgr=True)
    if not len(faces) and max(bgr.shape[:2]) > config.detect_size:
        # dlib finds faces of 80 px and up: look for a smaller one at twice the size
        faces = detect_faces(bgr, 2 * config.detect_size, bgr=True)
    result.most_faces = max(result.most_faces, len(faces))
    result.n_faces += bool(len(faces))
    return faces[0] if len(faces) else None


def _tracked_crops(clip: Clip, config: ExtractConfig, result: ClipFrames) -> Iterator[np.ndarray]:
    """Policies `smoothed` and `per_frame` in one decoding pass: a frame is cropped once the
    detections reach `smoothing_reach` frames past it (or the clip ends, or the buffer is full:
    then the last face is held); frames before the first face are left out past a full buffer."""
    reach = smoothing_reach(config)
    capacity = reach + 2 * config.detect_every
    keys: list[int] = []  # sampled indices with a detected face
    faces: list[np.ndarray] = []  # their cx, cy, side
    pending: collections.deque = collections.deque()  # (index, source frame, timestamp, RGB)

    def crop_first(last: int) -> np.ndarray:
        index, source_frame, timestamp, bgr = pending.popleft()
        box = crop_box(index, keys, faces, last, config)
        result.source_frames.append(source_frame)
        result.timestamps.append(timestamp)
        result.boxes.append(box)
        return crop_frame(bgr, *map(int, box), config.size)

    for index, source_frame, timestamp, bgr in sample_frames(clip.path, config.fps,
                                                             config.max_frames, bgr=True):
        result.n_sampled = index + 1
        result.last_source_frame = source_frame
        if index % config.detect_every == 0:
            face = _detect(bgr, config, result)
            if face is not None:
                keys.append(index)
                faces.append(face_centre(face))
        pending.append((index, source_frame, timestamp, bgr))
        while pending and keys and keys[-1] >= pending[0][0] + reach:
            yield crop_first(pending[0][0] + reach)
        while len(pending) > capacity:
            if keys:
                yield crop_first(pending[0][0] + reach)
            else:
                pending.popleft()
                result.dropped += 1
    while pending and keys:
        yield crop_first(result.n_sampled - 1)
    if pending:
        result.dropped += len(pending)


def _fixed_crops(clip: Clip, config: ExtractConfig, result: ClipFrames) -> Iterator[np.ndarray]:
    """Policy `fixed` in two decoding passes: all detections first, then one box for all."""
    faces = []
    for index, source_frame, timestamp, bgr in sample_frames(
            clip.path, config.fps, config.max_frames, config.detect_every, bgr=True):
        result.n_sampled = index + 1
        result.last_source_frame = source_frame
        result.source_frames.append(source_frame)
        result.timestamps.append(timestamp)
        if bgr is not None:
            face = _detect(bgr, config, result)
            if face is not None:
                faces.append(face)
    if not faces:
        del result.source_frames[:], result.timestamps[:]
        return
    box = fixed_box(faces, config)
    stored = 0
    for _, _, _, bgr in sample_frames(clip.path, config.fps, result.n_sampled, bgr=True):
        stored += 1
        yield crop_frame(bgr, *map(int, box), config.size)
    # pass 2 decoded fewer frames than pass 1 (a stream cut short): keep those
    del result.source_frames[stored:], result.timestamps[stored:]
    result.boxes = [box] * stored


def _extract_in_worker(args: tuple[Clip, ExtractConfig, Path]) -> ClipFrames:
    cv2.setNumThreads(1)  # one process per core: no OpenCV thread oversubscription
    return extract_clip(*args)


def _worker_pool(workers: int) -> multiprocessing.pool.Pool:
    """Worker processes forked from a clean server that has imported this module and built the
    face detector once, so a worker starts in milliseconds instead of a second of imports.
    Not a plain fork of this process: that can inherit a lock held by an OpenCV, dlib or torch
    thread and hang."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["glg._extract_preload"])
    return context.Pool(workers)


# --- the whole dataset -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractSummary:
    """Counts of one `extract_videos` run."""

    clips: int
    stored_clips: int
    stored_frames: int
    source_frames: int  # source frames the stored clips span (each decoded twice)
    skipped: int
    seconds: float


def extract_videos(videos: Path, out: Path, config: ExtractConfig,
                   progress: bool = True) -> ExtractSummary:
    """Extract every clip under `videos` into the frame store `out` (Sec IV-A's 256 px crops).

    Clips run in parallel over `config.workers` processes and are written by this process in
    sorted path order, so the bytes do not depend on scheduling. Bad clips are skipped and
    listed in `out/skipped.csv`; a dataset with nothing usable raises `GlgError`.
    """
    started = time.perf_counter()
    clips = find_clips(Path(videos))
    out = Path(out)
    parts = out / PARTS
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    for stale in [*out.glob(SHARD_GLOB), out / MANIFEST, out / SKIPPED]:
        stale.unlink(missing_ok=True)

    writer = StoreWriter(out, config.shard_mb)
    skipped: list[tuple[str, str]] = []
    decoded = 0
    bar = tqdm(desc="extract", unit="frame", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    jobs = [(clip, config, parts / f"{i:07d}.parquet") for i, clip in enumerate(clips)]
    workers = min(config.workers, len(clips))
    pool = _worker_pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_extract_in_worker, jobs) if pool else map(_extract_in_worker, jobs)
        for result in results:
            source = result.clip.source
            for note in result.notes:
                tqdm.write(f"{source}: {note}", file=sys.stderr)
            if result.skipped:
                tqdm.write(f"skipped {source}: {result.skipped}", file=sys.stderr)
                skipped.append((source, result.skipped))
            else:
                writer.add(result.clip.identity, result.clip.video, result.clip.source,
                           result.part, result.source_frames, result.timestamps, result.boxes)
            decoded += result.decoded
            bar.update(result.decoded)
    finally:
        if pool:
            pool.terminate()
            pool.join()
        bar.close()
        shutil.rmtree(parts, ignore_errors=True)
    writer.close()
    _write_skipped(out / SKIPPED, skipped)
    if writer.frames == 0:
        raise GlgError(f"{videos}: none of the {len(clips)} videos was usable "
                       f"(reasons in {out / SKIPPED})")
    return ExtractSummary(clips=len(clips), stored_clips=writer.clips,
                          stored_frames=writer.frames, source_frames=decoded,
                          skipped=len(skipped), seconds=time.perf_counter() - started)




def _write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "reason"])
        writer.writerows(sorted(skipped))


