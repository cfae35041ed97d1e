"""The prepare stage (Sec IV-A, Sec III-B): frames pre-resized into memory-mapped shards, splits,
fixed evaluation pairs, part crop sizes and per-identity landmark statistics, in one folder
(`data/prepared/`, format: `glg.prepared`) that `glg.data` and the evaluation read.
Splits and pairs are drawn in `glg.splits`; every skip or clamp is noted in `summary.json`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from glg import frames as frame_store
from glg.annotations import read_annotations
from glg.config import PrepareConfig
from glg.errors import GlgError
from glg.landmarks import (AU_PRESENCE, POSE_COLUMNS, X_COLUMNS, Y_COLUMNS, landmarks_from_table,
                           rescale_points)
from glg.parts import PART_NAMES, PART_POINTS, part_boxes
from glg.prepared import (FRAME_SHARD_GLOB, FRAMES, IDENTITIES, KEY, PAIRS, PARTS, SCENARIOS,
                          SPLITS, STAT_COLUMNS, SUMMARY, create_frame_shards)
from glg.splits import assign_splits, evaluation_pairs, note


def prepare(frames_dir: Path, annotations_dir: Path, out_dir: Path, config: PrepareConfig,
            seed: int) -> dict:
    """Run the whole stage; returns the summary also written to `summary.json`."""
    frames_dir, annotations_dir, out_dir = Path(frames_dir), Path(annotations_dir), Path(out_dir)
    notes: list[str] = []
    annotations = usable_annotations(annotations_dir, notes)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(FRAME_SHARD_GLOB):
        old.unlink()
    frames = store_frames(frames_dir, annotations, out_dir, config, notes)
    frames, identities = assign_splits(frames, config, seed, notes)
    pairs = evaluation_pairs(frames, identities, config, seed, notes)
    parts = part_sizes(frames, config)
    identities = pd.concat([identities, identity_stats(frames, identities)], axis=1)

    frames.to_parquet(out_dir / FRAMES, index=False)
    pairs.to_parquet(out_dir / PAIRS, index=False)
    identities.to_parquet(out_dir / IDENTITIES, index=False)
    (out_dir / PARTS).write_text(json.dumps(parts, indent=2) + "\n")
    summary = {
        "frames": {s: int((frames["split"] == s).sum()) for s in SPLITS},
        "pairs": {s: int((pairs["scenario"] == s).sum()) for s in SCENARIOS},
        "identities": {r: int((identities["role"] == r).sum()) for r in ("known", "unseen")},
        "notes": notes,
    }
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def usable_annotations(annotations_dir: Path, notes: list[str]) -> pd.DataFrame:
    """The usable annotated frames: `success` true, finite landmarks and pose, sorted by key."""
    columns = [*KEY, "success", *X_COLUMNS, *Y_COLUMNS, *POSE_COLUMNS, *AU_PRESENCE]
    table = read_annotations(annotations_dir, columns)
    if table.empty:
        raise GlgError(f"{annotations_dir}: no annotated frames")
    finite = np.isfinite(table[[*X_COLUMNS, *Y_COLUMNS, *POSE_COLUMNS]].to_numpy(np.float64))
    usable = table["success"].astype(bool).to_numpy() & finite.all(axis=1)
    if not usable.any():
        raise GlgError(f"{annotations_dir}: all {len(table)} frames failed annotation "
                       "(no frame with success=true and finite landmarks)")
    if (~usable).any():
        note(notes, f"{int((~usable).sum())} of {len(table)} annotated frames failed; skipped")
    return table[usable].sort_values(KEY, kind="stable").reset_index(drop=True)


# --- frame shards ---------------------------------------------------------------------------


def select_frames(frames_dir: Path, annotations: pd.DataFrame, size: int,
                  notes: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Which usable annotated frames are stored, decided from the tables before any is decoded.

    Returns a mask over `annotations` rows (N,), every row's landmarks rescaled to pixels of
    the S frame (N, 68, 2) and the side of the stored frames (extract stores one size). A frame
    missing from the frame store, or whose eyes, nose or mouth landmarks fall outside the frame
    (its part crop would be mostly padding), is left out.
    """
    manifest = frame_store.read_manifest(frames_dir)
    if manifest.empty:
        raise GlgError(f"{frames_dir}: the frame store holds no frames (run extract first)")
    stored = pd.MultiIndex.from_frame(manifest[KEY].astype({"frame": np.int64}))
    in_store = pd.MultiIndex.from_frame(annotations[KEY]).isin(stored)
    clips = annotations[["identity", "video"]].drop_duplicates()
    known_clips = pd.MultiIndex.from_frame(manifest[["identity", "video"]])
    for identity, clip in clips[~pd.MultiIndex.from_frame(clips).isin(known_clips)].to_numpy():
        note(notes, f"clip {identity}/{clip} not in the frame store {frames_dir}; skipped")
    first = manifest.iloc[0]
    side = frame_store.read_frame(frames_dir, first["identity"], first["video"],
                                  int(first["frame"])).shape[0]
    points = rescale_points(landmarks_from_table(annotations), side, size)  # (N, 68, 2)
    part_points = np.concatenate([list(PART_POINTS[p]) for p in PART_NAMES])
    outside = points[:, part_points]
    # An S px image spans [-0.5, S - 0.5] (pixel convention: glg.landmarks).
    inside = ~((outside < -0.5) | (outside > size - 0.5)).any(axis=(1, 2))
    if (in_store & ~inside).any():
        note(notes, f"{int((in_store & ~inside).sum())} frames with eye, nose or mouth "
             "landmarks outside the frame; skipped")
    if (~in_store).any():
        note(notes, f"{int((~in_store).sum())} annotated frames not in the frame store; skipped")
    return in_store & inside, points, side


def store_frames(frames_dir: Path, annotations: pd.DataFrame, out_dir: Path,
                 config: PrepareConfig, notes: list[str]) -> pd.DataFrame:
    """Resize every selected frame to S into the frame shards; returns the stored frames' table,
    landmarks in pixels of the S frame."""
    keep, points, side = select_frames(frames_dir, annotations, config.size, notes)
    if not keep.any():
        raise GlgError(f"{frames_dir}: none of the {len(annotations)} annotated frames could be "
                       "stored (all missing from the frame store or with parts outside the frame)")
    table = annotations[keep].reset_index(drop=True)
    points = points[keep].astype(np.float32)  # (N, 68, 2)
    index = np.arange(len(table))
    shard, row = index // config.shard_frames, index % config.shard_frames
    shards = create_frame_shards(out_dir, len(table), config.size, config.shard_frames)
    for (identity, clip), rows in table.groupby(["identity", "video"], sort=True):
        wanted = dict(zip(rows["frame"].to_numpy(), rows.index))
        written = 0
        for frame, image in frame_store.iter_clip(frames_dir, identity, clip):
            at = wanted.get(frame)
            if at is None:
                continue
            if image.shape != (side, side, 3):
                raise GlgError(f"{frames_dir}: frame {identity}/{clip}#{frame} is {image.shape}, "
                               f"expected ({side}, {side}, 3) as the store's first frame")
            if side != config.size:
                image = cv2.resize(image, (config.size, config.size), interpolation=cv2.INTER_AREA)
            shards[shard[at]][row[at]] = image
            written += 1
        if written != len(wanted):
            raise GlgError(f"{frames_dir}: clip {identity}/{clip} yielded {written} of the "
                           f"{len(wanted)} frames its manifest lists")
    for memmap in shards:
        memmap.flush()
    return pd.concat([
        table[KEY],
        pd.DataFrame({"shard": shard.astype(np.int32), "row": row.astype(np.int32)}),
        pd.DataFrame(points[..., 0], columns=list(X_COLUMNS)),
        pd.DataFrame(points[..., 1], columns=list(Y_COLUMNS)),
        table[list(POSE_COLUMNS)].astype(np.float32),
        table[list(AU_PRESENCE)].astype(np.int8),
    ], axis=1)


# --- part crop sizes (Sec III-B) -----------------------------------------------------------


def part_sizes(frames: pd.DataFrame, config: PrepareConfig) -> dict:
    """The fixed crop (height, width) of each part: its average landmark box over the dataset.

    Sec III-B: "The size of a landmark crop takes the value of the average size of corresponding
    landmark in the dataset." The margin (a fraction of the box's longer side, added to both
    sides) and the rounding up to `part_multiple` are our choice: a bare eye box is ~6 px high at
    224 and cuts through the eyelids; the part networks pool by 2 three times.
    """
    _, extent = part_boxes(landmarks_from_table(frames))  # (N, 4, 2) as (width, height)
    mean = extent.mean(axis=0)
    parts = {}
    for k, name in enumerate(PART_NAMES):
        margin = config.part_margin * mean[k].max()
        width, height = (_round_up(v + margin, config.part_multiple, config.size) for v in mean[k])
        parts[name] = {"height": height, "width": width, "mean_height": round(float(mean[k, 1]), 4),
                       "mean_width": round(float(mean[k, 0]), 4)}
    return {"size": config.size, "margin": config.part_margin, "multiple": config.part_multiple,
            "parts": parts}


def _round_up(value: float, multiple: int, limit: int) -> int:
    return int(min(max(math.ceil(value / multiple), 1) * multiple, limit))


# --- identity statistics for Eq. 3 ----------------------------------------------------------


def identity_stats(frames: pd.DataFrame, identities: pd.DataFrame) -> pd.DataFrame:
    """Per identity, the mean and std of each landmark coordinate over its usable frames.

    Sec III-B-1: "computing the mean and variance of each person's landmark coordinates in the
    dataset"; computed on all of a person's frames, in pixels of the S frame.
    """
    landmarks = landmarks_from_table(frames)  # (N, 68, 2)
    index = frames["identity_index"].to_numpy()
    stats = np.zeros((len(identities), 4, 68))
    for k in identities["index"]:
        own = landmarks[index == k]
        stats[k] = [own[..., 0].mean(0), own[..., 1].mean(0),
                    own[..., 0].std(0), own[..., 1].std(0)]
    return pd.DataFrame(stats.reshape(len(identities), -1), columns=list(STAT_COLUMNS))
