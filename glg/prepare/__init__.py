"""The prepare stage (Sec IV-A, Sec III-B): the usable frames re-stored at the networks' size,
splits, fixed evaluation pairs, part crop sizes and per-identity landmark statistics, in one
folder (`data/prepared/`, format: `glg.store.prepared`) that `glg.data` and the evaluation read.

One pass over the annotations, clip by clip, picks the usable frames, re-stores them with their
annotations and keeps running sums; splits and pairs are then drawn from clip-level counts
(`glg.prepare.splits`). The frames' decode, resize and encode run on `prepare.workers` threads or
Ray actors (glg/engine.py), a clip each, while this process reads, selects and writes in clip
order, so the bytes do not depend on the engine or the number of workers. Memory holds an
annotation row group, a few clips per worker and a row per clip, whatever the dataset's size.
Every skip or clamp is noted in `summary.json`.
"""

from __future__ import annotations

import collections
import json
import math
import multiprocessing
import multiprocessing.pool
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from glg.config import PrepareConfig
from glg.engine import clip_results
from glg.errors import GlgError
from glg.face.landmarks import AU_PRESENCE, POSE_COLUMNS, X_COLUMNS, Y_COLUMNS, rescale_points
from glg.face.parts import PART_NAMES, PART_POINTS, part_boxes
from glg.prepare.splits import (assign_splits, check_test_videos, evaluation_pairs, note,
                                read_test_videos, split_counts)
from glg.store.annotations import iter_annotation_clips
from glg.store.frames import FRAME, FrameStore, FrameStoreWriter, decode_bgr, encode_bgr, open_store
from glg.store.prepared import (ARRAYS, IDENTITIES, KEY, PAIRS, PARTS, SCENARIOS, SPLITS,
                                STAT_COLUMNS, SUMMARY, clear_prepared)
from glg.store.writers import ArrayWriter

ANNOTATION_COLUMNS = (*KEY, "success", *X_COLUMNS, *Y_COLUMNS, *POSE_COLUMNS, *AU_PRESENCE)
# the landmarks of the four parts, which must lie inside the frame
_PART_POINTS = np.concatenate([list(PART_POINTS[p]) for p in PART_NAMES])


def prepare(frames_dir: Path, annotations_dir: Path, out_dir: Path, config: PrepareConfig,
            seed: int, unseen_only: bool = False) -> dict:
    """Run the whole stage; returns the summary also written to `summary.json`. `unseen_only`:
    every person is unseen and only `unseen` pairs are written (a second dataset, Sec IV-A)."""
    test_videos = read_test_videos(config)  # a bad list fails before any work
    frames_dir, annotations_dir, out_dir = Path(frames_dir), Path(annotations_dir), Path(out_dir)
    annotated = iter_annotation_clips(annotations_dir, ANNOTATION_COLUMNS)  # checked here
    source = FrameStore(frames_dir)
    if not len(source):
        raise GlgError(f"{frames_dir}: the frame store holds no frames (run extract first)")
    if config.image_px > source.frame_size():  # upsampled frames: bytes and time, nothing gained
        raise GlgError(f"prepare.image_px: {config.image_px} px is larger than the frames of "
                       f"{frames_dir} ({source.frame_size()} px); expected at most that "
                       "(raise extract.crop_px for larger frames)")
    if test_videos and not unseen_only:  # a bad list fails before the earlier output goes
        check_test_videos(sorted(zip(source.clips["identity"], source.clips["video"])),
                          test_videos)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_prepared(out_dir)
    notes: list[str] = []
    clips, tally = store_frames(source, annotated, out_dir, config)
    tally.check(frames_dir, annotations_dir, config, notes)
    clips, identities = assign_splits(clips, config, seed, notes, test_videos, unseen_only)
    write_clip_arrays(out_dir, clips)
    pairs = evaluation_pairs(clips, identities, config, seed, notes, unseen_only)
    frame = FrameStore(out_dir).locations[:, FRAME]
    for role in ("source", "driving"):
        at = pairs.pop(f"{role}_row").to_numpy()
        clip = np.searchsorted(clips["start"].to_numpy(), at, side="right") - 1
        pairs[f"{role}_identity"] = clips["identity"].to_numpy()[clip]
        pairs[f"{role}_video"] = clips["video"].to_numpy()[clip]
        pairs[f"{role}_frame"] = np.asarray(frame[at], np.int64)
        pairs[f"{role}_row"] = at
    identities = pd.concat([identities, identity_stats(tally, identities)], axis=1)

    pairs.to_parquet(out_dir / PAIRS, index=False)
    identities.to_parquet(out_dir / IDENTITIES, index=False)
    (out_dir / PARTS).write_text(json.dumps(part_sizes(tally, config), indent=2) + "\n")
    summary = {
        "frames": split_counts(clips),
        "pairs": {s: int((pairs["scenario"] == s).sum()) for s in SCENARIOS},
        "identities": {r: int((identities["role"] == r).sum()) for r in ("known", "unseen")},
        "notes": notes,
    }
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# --- the pass over the annotations ----------------------------------------------------------


class Moments:
    """Running count, mean and sum of squared deviations of (68, 2) landmarks, merged a clip at
    a time (Chan et al.'s parallel update: no cancellation, whatever the count)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, np.zeros((68, 2)), np.zeros((68, 2))

    def add(self, landmarks: np.ndarray) -> None:
        n, mean = len(landmarks), landmarks.mean(axis=0)
        delta, total = mean - self.mean, self.n + n
        self.m2 += ((landmarks - mean) ** 2).sum(axis=0) + delta**2 * self.n * n / total
        self.mean += delta * n / total
        self.n = total


@dataclass
class Tally:
    """What the pass over the annotations counted and summed, for the notes and statistics."""

    rows: int = 0  # annotated frames
    failed: int = 0  # not `success`, or landmarks or pose not finite
    missing: int = 0  # usable, not in the frame store
    outside: int = 0  # usable and stored, a part landmark outside the frame
    missing_clips: list[str] = field(default_factory=list)  # with usable frames, not stored
    small_clips: list[str] = field(default_factory=list)  # fewer than min_frames stored frames
    frames: int = 0  # re-stored
    part_extent: np.ndarray = field(default_factory=lambda: np.zeros((4, 2)))  # (width, height)
    people: dict[str, Moments] = field(default_factory=dict)  # landmarks per identity

    def check(self, frames_dir: Path, annotations_dir: Path, config: PrepareConfig,
              notes: list[str]) -> None:
        """Raise when nothing could be stored; note every skip otherwise."""
        usable = self.rows - self.failed
        if not self.rows:
            raise GlgError(f"{annotations_dir}: no annotated frames")
        if not usable:
            raise GlgError(f"{annotations_dir}: all {self.rows} frames failed annotation "
                           "(no frame with success=true and finite landmarks)")
        if self.failed:
            note(notes, f"{self.failed} of {self.rows} annotated frames failed; skipped")
        for name in self.missing_clips:
            note(notes, f"clip {name} not in the frame store {frames_dir}; skipped")
        if self.outside:
            note(notes, f"{self.outside} frames with eye, nose or mouth landmarks outside the "
                 "frame; skipped")
        if self.missing:
            note(notes, f"{self.missing} annotated frames not in the frame store; skipped")
        if self.missing + self.outside == usable:
            raise GlgError(f"{frames_dir}: none of the {usable} annotated frames could be stored "
                           "(all missing from the frame store or with parts outside the frame)")
        if self.small_clips:
            more = len(self.small_clips) - 5
            note(notes, f"{len(self.small_clips)} clips with fewer than {config.min_frames} "
                 f"usable frames skipped: {', '.join(self.small_clips[:5])}"
                 + (f" and {more} more" if more > 0 else ""))


def store_frames(source: FrameStore, annotated: Iterable[tuple[str, str, pa.Table]],
                 out_dir: Path, config: PrepareConfig) -> tuple[pd.DataFrame, Tally]:
    """Re-store every usable frame at S with its annotations, clip by clip; returns the stored
    clips (`identity`, `video`, `start`, `frames`) and the tally."""
    side, tally, stored = source.frame_size(), Tally(), []
    store = FrameStoreWriter(out_dir, config.shard_mb)
    arrays = {name: ArrayWriter(out_dir / ARRAYS[name][0], *ARRAYS[name][1:])
              for name in ("landmarks", "pose", "aus")}
    # the selected clips' rows, in job order: the results come back in that order
    selected: collections.deque[_Selected] = collections.deque()

    def jobs() -> Iterator[tuple]:
        for identity, video, table in annotated:
            frame, points, keep = select_frames(source, identity, video, table, side,
                                                config.image_px, tally)
            if not keep.any():
                continue
            if keep.sum() < config.min_frames:
                tally.small_clips.append(f"{identity}/{video}")
                continue
            order = np.flatnonzero(keep)[np.argsort(frame[keep], kind="stable")]
            frame = frame[order]
            if (np.diff(frame) == 0).any():
                raise GlgError(f"annotations of {identity}/{video}: frame "
                               f"{frame[np.flatnonzero(np.diff(frame) == 0)[0]]} appears twice")
            selected.append(_Selected(identity, video, frame,
                                      points[order].astype(np.float32),  # (n, 68, 2)
                                      _matrix(table, POSE_COLUMNS)[order],
                                      _matrix(table, AU_PRESENCE)[order]))
            # an absolute path: a Ray actor runs in a folder of its own, maybe on another machine
            yield str(source.dir.absolute()), identity, video, frame, side, config

    with clip_results(_resize_clip, jobs(), config.engine, config.workers, _setup_worker,
                      _thread_pool, "prepare") as results:
        for lengths, jpegs in results:
            clip = selected.popleft()
            stored.append((clip.identity, clip.video, store.frames, len(clip.frame)))
            store.add(clip.identity, clip.video, clip.frame, lengths, jpegs)
            arrays["landmarks"].append(clip.landmarks)
            arrays["pose"].append(clip.pose)
            arrays["aus"].append(clip.aus)
            # statistics of the stored float32 values, as the loader reads them
            tally.frames += len(clip.frame)
            tally.part_extent += part_boxes(clip.landmarks)[1].sum(axis=0)
            tally.people.setdefault(clip.identity, Moments()).add(
                clip.landmarks.astype(np.float64))
    store.close()
    for writer in arrays.values():
        writer.close()
    return pd.DataFrame(stored, columns=["identity", "video", "start", "frames"]), tally


class _Selected(NamedTuple):
    """One clip's frames to store and their annotation rows, in frame order."""

    identity: str
    video: str
    frame: np.ndarray  # (n,) frame indices
    landmarks: np.ndarray  # (n, 68, 2) float32, pixels of the S frame
    pose: np.ndarray  # (n, 3)
    aus: np.ndarray  # (n, 18)


def _thread_pool(workers: int) -> multiprocessing.pool.Pool:
    """`workers` threads of this process: the decode, resize and encode are OpenCV calls that
    release the GIL (the rest of a worker's loop is 1 % of its time, measured), so threads run
    them in parallel with no process to start, no imports to repeat and no fork of a process
    that Arrow's threads have run in (a fork can inherit a lock a thread holds and hang)."""
    return multiprocessing.pool.ThreadPool(workers, _setup_worker)


def _setup_worker() -> None:
    cv2.setNumThreads(1)  # parallelism comes from the workers, one clip each


def _resize_clip(job: tuple) -> tuple[list[int], bytes]:
    """A worker's part of one clip: its frames' JPEGs at S px, lengths and bytes back to back."""
    frames_dir, identity, video, frames, side, config = job
    jpegs = resized_jpegs(open_store(frames_dir), identity, video, frames, side, config)
    return [len(j) for j in jpegs], b"".join(jpegs)


def resized_jpegs(source: FrameStore, identity: str, video: str, frames: np.ndarray, side: int,
                  config: PrepareConfig) -> list[bytes]:
    """The clip's `frames` as JPEGs of S px (`INTER_AREA`, `jpeg_quality`); copied unchanged
    when the store's frames are S px already."""
    jpegs = dict(source.clip_jpegs(identity, video))
    out = []
    for frame in frames.tolist():
        bgr = decode_bgr(jpegs[frame])
        if bgr.shape != (side, side, 3):
            raise GlgError(f"{source.dir}: frame {identity}/{video}#{frame} is {bgr.shape}, "
                           f"expected ({side}, {side}, 3) as the store's first frame")
        if side == config.image_px:
            out.append(jpegs[frame].tobytes())
        else:
            bgr = cv2.resize(bgr, (config.image_px, config.image_px),
                             interpolation=cv2.INTER_AREA)
            out.append(encode_bgr(bgr, config.jpeg_quality))
    return out


def select_frames(source: FrameStore, identity: str, video: str, table: pa.Table, side: int,
                  size: int, tally: Tally) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of one clip's annotated frames are stored, decided before any is decoded.

    Returns the rows' frame indices (n,), landmarks rescaled to pixels of the S frame (n, 68, 2)
    and the mask of rows to store: `success`, finite landmarks and pose, in the frame store, and
    eyes, nose and mouth landmarks inside the frame (a part crop would be mostly padding).
    """
    frame = table["frame"].to_numpy().astype(np.int64)
    landmarks = np.stack([_matrix(table, X_COLUMNS, np.float64),
                          _matrix(table, Y_COLUMNS, np.float64)], axis=-1)  # (n, 68, 2)
    usable = (table["success"].to_numpy(zero_copy_only=False).astype(bool)
              & np.isfinite(landmarks).all(axis=(1, 2))
              & np.isfinite(_matrix(table, POSE_COLUMNS, np.float64)).all(axis=1))
    rows = source.clip_rows(identity, video)
    if rows is None:
        in_store = np.zeros(len(frame), bool)
        if usable.any():
            tally.missing_clips.append(f"{identity}/{video}")
    else:
        in_store = np.isin(frame, source.locations[rows.start:rows.stop, FRAME])
    points = rescale_points(landmarks, side, size)
    part_points = points[:, _PART_POINTS]
    # An S px image spans [-0.5, S - 0.5] (pixel convention: glg.face.landmarks).
    inside = ~((part_points < -0.5) | (part_points > size - 0.5)).any(axis=(1, 2))
    tally.rows += len(frame)
    tally.failed += int((~usable).sum())
    tally.missing += int((usable & ~in_store).sum())
    tally.outside += int((usable & in_store & ~inside).sum())
    return frame, points, usable & in_store & inside


def write_clip_arrays(out_dir: Path, clips: pd.DataFrame) -> None:
    """The per-frame arrays that follow from the clips: `clip`, `identity` and `split`, written
    a clip at a time (a training clip's last `holdout` frames are held out)."""
    writers = {name: ArrayWriter(out_dir / ARRAYS[name][0], *ARRAYS[name][1:])
               for name in ("clip", "identity", "split")}
    for k, clip in enumerate(clips.itertuples()):
        writers["clip"].append(np.full(clip.frames, k))
        writers["identity"].append(np.full(clip.frames, clip.identity_index))
        split = np.full(clip.frames, SPLITS.index(clip.split))
        split[clip.frames - clip.holdout:] = SPLITS.index("holdout")
        writers["split"].append(split)
    for writer in writers.values():
        writer.close()


def _matrix(table: pa.Table, columns: Iterable[str], dtype=np.float32) -> np.ndarray:
    """(n, k) array of k columns of an Arrow table; nulls become NaN."""
    return np.stack([table[c].to_numpy(zero_copy_only=False) for c in columns],
                    axis=1).astype(dtype)


# --- part crop sizes (Sec III-B) -----------------------------------------------------------


def part_sizes(tally: Tally, config: PrepareConfig) -> dict:
    """The fixed crop (height, width) of each part: its average landmark box over the dataset.

    Sec III-B: "The size of a landmark crop takes the value of the average size of corresponding
    landmark in the dataset." The margin (a fraction of the box's longer side, added to both
    sides) and the rounding up to `part_multiple` are our choice: a bare eye box is ~6 px high at
    224 and cuts through the eyelids; the part networks pool by 2 three times.
    """
    mean = tally.part_extent / tally.frames  # (4, 2) as (width, height)
    parts = {}
    for k, name in enumerate(PART_NAMES):
        margin = config.part_margin * mean[k].max()
        width, height = (_round_up(v + margin, config.part_multiple, config.image_px)
                         for v in mean[k])
        parts[name] = {"height": height, "width": width, "mean_height": round(float(mean[k, 1]), 4),
                       "mean_width": round(float(mean[k, 0]), 4)}
    return {"size": config.image_px, "margin": config.part_margin, "multiple": config.part_multiple,
            "parts": parts}


def _round_up(value: float, multiple: int, limit: int) -> int:
    return int(min(max(math.ceil(value / multiple), 1) * multiple, limit))


# --- identity statistics for paper Eq. 3 ----------------------------------------------------------


def identity_stats(tally: Tally, identities: pd.DataFrame) -> pd.DataFrame:
    """Per identity, the mean and std of each landmark coordinate over its stored frames.

    Sec III-B-1: "computing the mean and variance of each person's landmark coordinates in the
    dataset"; computed on all of a person's frames, in pixels of the S frame.
    """
    stats = np.zeros((len(identities), 4, 68))
    for k, name in zip(identities["index"], identities["identity"]):
        moments = tally.people[name]
        std = np.sqrt(moments.m2 / moments.n)
        stats[k] = [moments.mean[:, 0], moments.mean[:, 1], std[:, 0], std[:, 1]]
    return pd.DataFrame(stats.reshape(len(identities), -1), columns=list(STAT_COLUMNS))
