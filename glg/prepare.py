"""The prepare stage: frames pre-resized into memory-mapped shards, splits, fixed evaluation pairs,
part crop sizes and per-identity landmark statistics (Sec IV-A, Sec III-B).

Everything lands in one folder (`data/prepared/`), read by `glg.data` and the evaluation:
- `frames-000.npy` ...: (N, S, S, 3) uint8 RGB frames at S = `prepare.size`, written clip by clip;
- `frames.parquet`: one row per usable frame: `identity`, `video`, `frame`, `identity_index`,
  `split` (train / holdout / test / unseen), `shard`, `row`, landmarks `x_i`, `y_i` in pixels
  of the S frame, `pitch`, `yaw`, `roll`, the 18 `AUxx_c`;
- `pairs.parquet`: the fixed evaluation pairs: `scenario` (self / unseen / known), source and
  driving `identity`, `video`, `frame` and their row in `frames.parquet`;
- `identities.parquet`: the identity table (`index` is what `Pair.source_identity` holds), with
  each person's landmark mean and std per coordinate (`mean_x_i`, ..., `std_y_i`) for Eq. 3;
- `parts.json`: the fixed (height, width) of each part crop; `summary.json`: counts and notes.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from glg import frames as frame_store
from glg.config import PrepareConfig
from glg.errors import GlgError
from glg.landmarks import AU_PRESENCE, POSE_COLUMNS, X_COLUMNS, Y_COLUMNS, landmarks_from_table
from glg.parts import PART_NAMES, PART_POINTS, part_boxes
from glg.prepared import (FRAMES, IDENTITIES, KEY, PAIRS, PARTS, SCENARIOS, SHARD_GLOB, SPLITS,
                          STAT_COLUMNS, SUMMARY)

log = logging.getLogger(__name__)


# Independent random streams, one per decision, so changing one size never reshuffles another.
_UNSEEN, _TEST_CLIPS, _SELF, _UNSEEN_PAIRS, _KNOWN_PEOPLE, _KNOWN_PAIRS = range(6)


def prepare(frames_dir: Path, annotations_dir: Path, out_dir: Path, config: PrepareConfig,
            seed: int) -> dict:
    """Run the whole stage; returns the summary also written to `summary.json`."""
    frames_dir, annotations_dir, out_dir = Path(frames_dir), Path(annotations_dir), Path(out_dir)
    notes: list[str] = []
    annotations = read_annotations(annotations_dir, notes)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(SHARD_GLOB):
        old.unlink()
    frames = write_shards(frames_dir, annotations, out_dir, config, notes)
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


# --- reading annotations --------------------------------------------------------------------


def read_annotations(annotations_dir: Path, notes: list[str]) -> pd.DataFrame:
    """The usable annotated frames: `success` true, finite landmarks and pose, sorted by key."""
    if not Path(annotations_dir).is_dir():
        raise GlgError(f"{annotations_dir}: annotations folder not found (run annotate first)")
    columns = [*KEY, "success", *X_COLUMNS, *Y_COLUMNS, *POSE_COLUMNS, *AU_PRESENCE]
    try:
        table = pd.read_parquet(annotations_dir)
    except Exception as err:  # pyarrow raises several types for unreadable or empty folders
        raise GlgError(f"{annotations_dir}: not a readable Parquet dataset ({err})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise GlgError(f"{annotations_dir}: annotation column {missing[0]!r} missing")
    table = table[columns]
    if table.empty:
        raise GlgError(f"{annotations_dir}: no annotated frames")
    finite = np.isfinite(table[[*X_COLUMNS, *Y_COLUMNS, *POSE_COLUMNS]].to_numpy(np.float64))
    usable = table["success"].astype(bool).to_numpy() & finite.all(axis=1)
    if not usable.any():
        raise GlgError(f"{annotations_dir}: all {len(table)} frames failed annotation "
                       "(no frame with success=true and finite landmarks)")
    if (~usable).any():
        _note(notes, f"{int((~usable).sum())} of {len(table)} annotated frames failed; skipped")
    table = table[usable].sort_values(KEY, kind="stable").reset_index(drop=True)
    return table


# --- frame shards ---------------------------------------------------------------------------


class ShardWriter:
    """Appends (S, S, 3) uint8 frames to `frames-NNN.npy` files of at most `per_shard` frames.

    Streams: one frame in memory at a time. The .npy header is rewritten with the final count on
    closing; numpy leaves room in the header for the count to grow, so the data never moves.
    """

    def __init__(self, out_dir: Path, size: int, per_shard: int):
        self.out_dir, self.size, self.per_shard = Path(out_dir), size, per_shard
        self.shard, self.rows, self._file = -1, 0, None

    def add(self, frame: np.ndarray) -> tuple[int, int]:
        """Write one frame; returns its (shard, row)."""
        assert frame.shape == (self.size, self.size, 3) and frame.dtype == np.uint8
        if self._file is None or self.rows == self.per_shard:
            self._roll()
        self._file.write(np.ascontiguousarray(frame).tobytes())
        self.rows += 1
        return self.shard, self.rows - 1

    def close(self) -> None:
        if self._file is None:
            return
        end = self._file.tell()
        self._file.seek(0)
        self._write_header(self.rows)
        assert self._file.tell() == self._data_start, "npy header grew"
        self._file.seek(end)
        self._file.close()
        self._file = None

    def _roll(self) -> None:
        self.close()
        self.shard, self.rows = self.shard + 1, 0
        self._file = open(self.out_dir / f"frames-{self.shard:03d}.npy", "wb")
        self._write_header(0)
        self._data_start = self._file.tell()

    def _write_header(self, rows: int) -> None:
        header = {"descr": "|u1", "fortran_order": False, "shape": (rows, self.size, self.size, 3)}
        np.lib.format.write_array_header_1_0(self._file, header)


def write_shards(frames_dir: Path, annotations: pd.DataFrame, out_dir: Path,
                 config: PrepareConfig, notes: list[str]) -> pd.DataFrame:
    """Resize every usable annotated frame to S and store it; returns the stored frames' table.

    Landmarks come back rescaled to pixels of the S frame. A frame whose eyes, nose or mouth
    landmarks fall outside the frame is skipped (its part crop would be mostly padding).
    """
    size = config.size
    writer = ShardWriter(out_dir, size, config.shard_frames)
    kept, located = [], []
    skipped_outside = skipped_missing = 0
    part_points = np.concatenate([list(PART_POINTS[p]) for p in PART_NAMES])
    try:
        for (identity, clip), rows in annotations.groupby(["identity", "video"], sort=True):
            wanted = dict(zip(rows["frame"].to_numpy(), range(len(rows))))
            landmarks = landmarks_from_table(rows)  # (F, 68, 2), pixels of the stored frame
            found = set()
            try:
                for index, image in frame_store.iter_clip(frames_dir, identity, clip):
                    position = wanted.get(index)
                    if position is None:
                        continue
                    found.add(index)
                    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
                        raise GlgError(f"{frames_dir}: frame {identity}/{clip}#{index} is "
                                       f"{image.shape}, expected a square RGB image")
                    points = landmarks[position] * (size / image.shape[0])
                    outside = points[part_points]
                    if (outside < 0).any() or (outside > size).any():
                        skipped_outside += 1
                        continue
                    if image.shape[0] != size:
                        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
                    located.append(writer.add(image))
                    kept.append((rows.index[position], points))
            except GlgError as err:
                _note(notes, f"clip {identity}/{clip} unreadable, skipped: {err}")
            skipped_missing += len(wanted) - len(found)
    finally:
        writer.close()
    if skipped_outside:
        _note(notes, f"{skipped_outside} frames with eye, nose or mouth landmarks outside the "
              "frame; skipped")
    if skipped_missing:
        _note(notes, f"{skipped_missing} annotated frames not in the frame store; skipped")
    if not kept:
        raise GlgError(f"{frames_dir}: none of the {len(annotations)} annotated frames could be "
                       "stored (all missing from the frame store or with parts outside the frame)")
    table = annotations.loc[[i for i, _ in kept]].reset_index(drop=True)
    points = np.stack([p for _, p in kept]).astype(np.float32)  # (N, 68, 2)
    return pd.concat([
        table[KEY],
        pd.DataFrame({"shard": np.array([s for s, _ in located], dtype=np.int32),
                      "row": np.array([r for _, r in located], dtype=np.int32)}),
        pd.DataFrame(points[..., 0], columns=list(X_COLUMNS)),
        pd.DataFrame(points[..., 1], columns=list(Y_COLUMNS)),
        table[list(POSE_COLUMNS)].astype(np.float32),
        table[list(AU_PRESENCE)].astype(np.int8),
    ], axis=1)


# --- splits (Sec IV-A) ----------------------------------------------------------------------


def assign_splits(frames: pd.DataFrame, config: PrepareConfig, seed: int,
                  notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split usable frames into train / holdout / test / unseen; returns (frames, identities).

    Sec IV-A: `unseen_identities` people are never trained on (the paper's CelebV); `test_clips`
    whole clips are the self-reenactment test (VoxCeleb1's 100 test videos come from identities
    outside training, so unseen identities' clips are taken first, then known identities' clips,
    always leaving each known identity a training clip); the last `known_holdout` of every
    training clip is held out for the known-identity scenario (the paper's CelebV setting).
    """
    frames = frames.copy()
    clip_size = frames.groupby(["identity", "video"])["frame"].transform("size")
    small = clip_size < config.min_frames
    if small.any():
        clips = frames[small].drop_duplicates(["identity", "video"])
        _note(notes, f"{len(clips)} clips with fewer than {config.min_frames} usable frames "
              f"skipped: {_names(clips)}")
        frames = frames[~small].reset_index(drop=True)
    if frames.empty:
        raise GlgError(f"no clip has prepare.min_frames={config.min_frames} usable frames; "
                       "nothing to train or test on")

    names = sorted(frames["identity"].unique())
    n_unseen = _clamp(config.unseen_identities, len(names) - 1, "unseen_identities",
                      "identities (one must stay for training)", notes)
    unseen = set(_rng(seed, _UNSEEN).choice(names, n_unseen, replace=False).tolist())
    if 0 < n_unseen < 2:
        _note(notes, "only 1 unseen identity: no unseen-identity pairs (they need 2 people)")

    clips = frames[["identity", "video"]].drop_duplicates().sort_values(["identity", "video"])
    rng = _rng(seed, _TEST_CLIPS)
    from_unseen = [tuple(c) for c in clips[clips["identity"].isin(unseen)].to_numpy()]
    from_known = []
    for name in sorted(set(names) - unseen):
        own = [tuple(c) for c in clips[clips["identity"] == name].to_numpy()]
        from_known += [own[i] for i in rng.permutation(len(own))[1:]]  # keep one to train on
    candidates = ([from_unseen[i] for i in rng.permutation(len(from_unseen))]
                  + [from_known[i] for i in rng.permutation(len(from_known))])
    n_test = _clamp(config.test_clips, len(candidates), "test_clips", "candidate clips", notes)
    test = set(candidates[:n_test])

    clip_key = list(zip(frames["identity"], frames["video"]))
    split = np.full(len(frames), "train", dtype=object)
    split[frames["identity"].isin(unseen).to_numpy()] = "unseen"
    split[np.array([k in test for k in clip_key])] = "test"
    order = frames.groupby(["identity", "video"]).cumcount(ascending=False).to_numpy()  # 0 = last
    size = frames.groupby(["identity", "video"])["frame"].transform("size").to_numpy()
    holdout = np.minimum(np.rint(size * config.known_holdout), size - config.min_frames)
    split[(split == "train") & (order < holdout)] = "holdout"
    frames["split"] = split

    identities = pd.DataFrame({"identity": names, "index": np.arange(len(names), dtype=np.int64)})
    identities["role"] = ["unseen" if n in unseen else "known" for n in names]
    identities["clips"] = [int((clips["identity"] == n).sum()) for n in names]
    identities["frames"] = frames.groupby("identity").size().reindex(names).to_numpy()
    frames.insert(3, "identity_index",
                  frames["identity"].map(dict(zip(names, identities["index"]))).astype(np.int64))
    frames.insert(4, "split", frames.pop("split"))
    return frames, identities


# --- fixed evaluation pairs (Sec IV-A) -----------------------------------------------------


def evaluation_pairs(frames: pd.DataFrame, identities: pd.DataFrame, config: PrepareConfig,
                     seed: int, notes: list[str]) -> pd.DataFrame:
    """The fixed, seeded pair lists every experiment is scored on (Sec IV-A).

    self: two different frames of one test clip; unseen: a source frame of each unseen person
    with a driving frame of another unseen person; known: held-out frames of `known_identities`
    trained people, each as source with another known person's held-out frame as driving.
    """
    rows = np.arange(len(frames))
    blocks_self = [(idx, idx) for _, idx in
                   _groups(frames, frames["split"] == "test", ["identity", "video"])]
    chosen = [_sample_pairs(_rng(seed, _SELF), blocks_self, config.self_pairs, True, "self_pairs",
                            notes)]
    scenario = ["self"] * len(chosen[0][0])

    unseen = identities.loc[identities["role"] == "unseen", "index"]
    is_unseen = frames["identity_index"].isin(unseen).to_numpy()
    people = _groups(frames, is_unseen, ["identity"])
    if len(people) >= 2:
        everyone = rows[is_unseen]
        for k, (_, own) in enumerate(people):
            others = np.setdiff1d(everyone, own)
            chosen.append(_sample_pairs(_rng(seed, _UNSEEN_PAIRS, k), [(own, others)],
                                        config.unseen_pairs, False, "unseen_pairs", notes))
            scenario += ["unseen"] * len(chosen[-1][0])

    held = (frames["split"] == "holdout").to_numpy()
    people = _groups(frames, held, ["identity"])
    if len(people) >= 2:
        n_known = _clamp(config.known_identities, len(people), "known_identities",
                         "known identities with held-out frames", notes)
        picked = np.sort(_rng(seed, _KNOWN_PEOPLE).choice(len(people), n_known, replace=False))
        everyone = rows[held]
        for k in picked:
            own = people[k][1]
            others = np.setdiff1d(everyone, own)
            chosen.append(_sample_pairs(_rng(seed, _KNOWN_PAIRS, int(k)), [(own, others)],
                                        config.known_pairs, False, "known_pairs", notes))
            scenario += ["known"] * len(chosen[-1][0])
    elif config.known_pairs and config.known_identities:
        _note(notes, "fewer than 2 known identities with held-out frames: no known-identity pairs")

    source = np.concatenate([s for s, _ in chosen]).astype(np.int64)
    driving = np.concatenate([d for _, d in chosen]).astype(np.int64)
    pairs = pd.DataFrame({"scenario": scenario})
    for role, at in (("source", source), ("driving", driving)):
        for column in KEY:
            pairs[f"{role}_{column}"] = frames[column].to_numpy()[at]
        pairs[f"{role}_row"] = at
    return pairs


def _sample_pairs(rng: np.random.Generator, blocks: list[tuple[np.ndarray, np.ndarray]],
                  count: int, distinct: bool, key: str, notes: list[str]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct (source, driving) pairs drawn uniformly from the blocks' products.

    A block (S, D) offers every source in S with every driving in D, minus identical frames when
    `distinct` (then S and D are the same clip). Clamped, with a note, to what the blocks offer.
    """
    sizes = [len(s) * (len(d) - 1 if distinct else len(d)) for s, d in blocks]
    total = int(sum(sizes))
    take = _clamp(count, total, key, "possible pairs", notes)
    flat = np.sort(rng.choice(total, take, replace=False)) if take < total else np.arange(total)
    starts = np.cumsum([0] + sizes)
    block = np.searchsorted(starts, flat, side="right") - 1
    source, driving = np.empty(take, np.int64), np.empty(take, np.int64)
    for b, (s, d) in enumerate(blocks):
        local = flat[block == b] - starts[b]
        width = len(d) - 1 if distinct else len(d)
        i, j = local // width, local % width
        if distinct:
            j = j + (j >= i)  # skip the source frame itself
        source[block == b], driving[block == b] = s[i], d[j]
    return source, driving


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


# --- helpers --------------------------------------------------------------------------------


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


def _clamp(asked: int, available: int, key: str, what: str, notes: list[str]) -> int:
    """`asked`, or `available` with a logged note when the data are smaller than asked."""
    available = max(int(available), 0)
    if asked > available:
        _note(notes, f"prepare.{key}={asked} clamped to {available}: only {available} {what}")
        return available
    return asked


def _note(notes: list[str], message: str) -> None:
    """Record a skip or clamp for `summary.json` and the log, once however often it happens."""
    if message not in notes:
        notes.append(message)
        log.info(message)


def _groups(frames: pd.DataFrame, mask, by: list[str]) -> list[tuple[tuple, np.ndarray]]:
    """Row indices of the masked frames grouped by `by`, groups in sorted key order."""
    rows = np.flatnonzero(np.asarray(mask))
    if len(rows) == 0:
        return []
    grouped = frames.iloc[rows].groupby(by, sort=True).indices
    return [(key, rows[idx]) for key, idx in sorted(grouped.items())]


def _names(clips: pd.DataFrame, limit: int = 5) -> str:
    names = [f"{i}/{v}" for i, v in zip(clips["identity"], clips["video"])]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
