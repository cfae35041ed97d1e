"""The prepared-data format: what `prepare` writes to `data/prepared/` and the loader reads.

- a frame store (format: `glg.frames`) of the usable frames at S = `prepare.image_px`, JPEG at
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
  each person's landmark mean and std per coordinate (`mean_x_i`, ..., `std_y_i`) for Eq. 3;
- `parts.json`: the fixed (height, width) of each part crop; `summary.json`: counts and notes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from glg.errors import GlgError, reading
from glg.frames import clear_store
from glg.parts import PART_NAMES

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
