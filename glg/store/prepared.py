"""The prepared-data format: what `prepare` writes to `data/prepared/` and the loader reads
(`PreparedFrames`, memory-mapped).

- a frame store (format: `glg.store.frames`) of the usable frames at S = `prepare.image_px`, JPEG at
  `prepare.jpeg_quality`, clips in (identity, video) order: `shard-NNNNN.jpegs`,
  `locations.npy` (its `frame` column is the frame's index in data/frames and the annotations),
  `manifest.parquet`, `clips.parquet`; a frame's row in the store is its row everywhere below;
- per-frame arrays, memory-mapped by the loader (`ARRAYS`): `landmarks.npy` (N, 68, 2) float32
  in pixels of the S frame, `pose.npy` (N, 3) float32 pitch, yaw, roll, `aus.npy` (N, 18)
  float32 0/1 presence, `identity.npy` (N,) int64 row of `identities.parquet`, `clip.npy` (N,)
  int64 row of `clips.parquet`, `split.npy` (N,) int8 index into `SPLITS`;
- `pairs.parquet`: the fixed evaluation pairs: `scenario` (self / unseen / known), source and
  driving `identity`, `video`, `frame` and `row`;
- `identities.parquet`: the identity table (`index` is what `Pair.source_identity` holds), with
  each person's landmark mean and std per coordinate (`mean_x_i`, ..., `std_y_i`) for paper Eq. 3;
- `parts.json`: the fixed (height, width) of each part crop; `summary.json`: counts and notes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from glg.errors import GlgError, reading
from glg.face.parts import PART_NAMES
from glg.store.frames import FRAME, FrameStore, clear_store

PAIRS = "pairs.parquet"
IDENTITIES = "identities.parquet"
PARTS = "parts.json"
SUMMARY = "summary.json"
# name -> (file, dtype, shape of one frame's row)
ARRAYS = {
    "landmarks": ("landmarks.npy", np.float32, (68, 2)),
    "pose": ("pose.npy", np.float32, (3,)),
    "aus": ("aus.npy", np.float32, (18,)),
    "identity": ("identity.npy", np.int64, ()),
    "clip": ("clip.npy", np.int64, ()),
    "split": ("split.npy", np.int8, ()),
}
SCENARIOS = ("self", "unseen", "known")
SPLITS = ("train", "holdout", "test", "unseen")
KEY = ["identity", "video", "frame"]
STAT_COLUMNS = tuple(f"{s}_{a}_{i}" for s in ("mean", "std") for a in "xy" for i in range(68))


def clear_prepared(prepared_dir: Path) -> None:
    """Remove a previous run's files (and nothing else) from `prepared_dir`."""
    clear_store(prepared_dir)
    for name in [*(file for file, _, _ in ARRAYS.values()), PAIRS, IDENTITIES, PARTS, SUMMARY]:
        (Path(prepared_dir) / name).unlink(missing_ok=True)


def read_array(prepared_dir: Path, name: str) -> np.ndarray:
    """One per-frame array of `ARRAYS`, memory-mapped read-only."""
    path = Path(prepared_dir) / ARRAYS[name][0]
    if not path.is_file():
        raise GlgError(f"{path}: prepared {name} not found (run prepare first)")
    with reading(path, f"prepared {name} array"):
        return np.load(path, mmap_mode="r")


def read_pairs(prepared_dir: Path) -> pd.DataFrame:
    """The fixed evaluation pairs (`pairs.parquet`), every scenario."""
    path = Path(prepared_dir) / PAIRS
    if not path.is_file():
        raise GlgError(f"{path}: evaluation pairs not found (run prepare first)")
    with reading(path, "prepared pair table"):
        return pd.read_parquet(path)


def read_parts(prepared_dir: Path) -> tuple[tuple[int, int], ...]:
    """The (height, width) of each part crop, in PART_NAMES order, from `parts.json`."""
    path = Path(prepared_dir) / PARTS
    if not path.is_file():
        raise GlgError(f"{path}: part sizes not found (run prepare first)")
    parts = json.loads(path.read_text())["parts"]
    return tuple((int(parts[p]["height"]), int(parts[p]["width"])) for p in PART_NAMES)


def read_identities(prepared_dir: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The identity table and its landmark means and stds, (I, 68, 2) each."""
    path = Path(prepared_dir) / IDENTITIES
    if not path.is_file():
        raise GlgError(f"{path}: identity table not found (run prepare first)")
    with reading(path, "prepared identity table"):
        table = pd.read_parquet(path)
    stats = table[list(STAT_COLUMNS)].to_numpy(np.float64).reshape(len(table), 2, 2, 68)
    mean, std = stats[:, 0].transpose(0, 2, 1), stats[:, 1].transpose(0, 2, 1)  # (I, 68, 2)
    return table.drop(columns=list(STAT_COLUMNS)), mean, std


class PreparedFrames:
    """The prepared frames and their annotations, memory-mapped: nothing per frame is read into
    memory until a row is asked for (the format above)."""

    def __init__(self, prepared_dir: str | Path):
        self.dir = Path(prepared_dir)
        self.landmarks = read_array(self.dir, "landmarks")  # (N, 68, 2) float32, S pixels
        self.pose = read_array(self.dir, "pose")  # (N, 3) float32 degrees
        self.aus = read_array(self.dir, "aus")  # (N, 18) float32 0/1
        self.identity = read_array(self.dir, "identity")  # (N,) int64 row of identities.parquet
        self.clip = read_array(self.dir, "clip")  # (N,) int64 row of `clips`
        self.split = read_array(self.dir, "split")  # (N,) int8 index into SPLITS
        self.store = FrameStore(self.dir)  # the S px JPEG frames
        self.frame = self.store.locations[:, FRAME]  # (N,) int64 frame index within its clip
        table, self.mean, self.std = read_identities(self.dir)  # (I, 68, 2) each
        index = dict(zip(table["identity"], table["index"]))
        self.clips = self.store.clips[["identity", "video"]].copy()  # one row per clip
        self.clips["identity_index"] = self.clips["identity"].map(index).astype(np.int64)
        self.part_sizes = read_parts(self.dir)  # 4 x (h, w)
        self.size = self.store.frame_size()  # S

    def __len__(self) -> int:
        return len(self.identity)

    def __getstate__(self) -> dict:
        return {"dir": self.dir}  # a worker maps the files itself: no copy of the arrays

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["dir"])

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split (`SPLITS`), in stored order, clip by clip."""
        return np.flatnonzero(self.split == SPLITS.index(split))

    def key(self, index: int) -> tuple[str, str, int]:
        """(identity, video, frame) of a row."""
        clip = self.clips.iloc[self.clip[index]]
        return clip["identity"], clip["video"], int(self.frame[index])

    def image(self, index: int) -> np.ndarray:
        """(S, S, 3) uint8 RGB frame, decoded on the CPU (libjpeg-turbo through OpenCV)."""
        return self.store.image(index)

    def jpeg(self, index: int) -> np.ndarray:
        """The frame's JPEG file, (bytes,) uint8, for decoding elsewhere (`glg.data`)."""
        return self.store.jpeg(index)
