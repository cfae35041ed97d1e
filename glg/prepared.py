"""The prepared-data format: what `prepare` writes to `data/prepared/` and the loader reads.

- `frames-000.npy` ...: (N, S, S, 3) uint8 RGB frames at S = `prepare.size`, clip by clip, at
  most `prepare.shard_frames` a shard (`create_frame_shards`, `frame_shard_path`);
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
from pathlib import Path

import numpy as np
import pandas as pd

from glg.errors import GlgError
from glg.parts import PART_NAMES

FRAMES = "frames.parquet"
PAIRS = "pairs.parquet"
IDENTITIES = "identities.parquet"
PARTS = "parts.json"
SUMMARY = "summary.json"
FRAME_SHARD_GLOB = "frames-*.npy"
SCENARIOS = ("self", "unseen", "known")
SPLITS = ("train", "holdout", "test", "unseen")
KEY = ["identity", "video", "frame"]
STAT_COLUMNS = tuple(f"{s}_{a}_{i}" for s in ("mean", "std") for a in "xy" for i in range(68))


def frame_shard_path(prepared_dir: Path, shard: int) -> Path:
    """The .npy file of frame shard `shard`."""
    return Path(prepared_dir) / f"frames-{shard:03d}.npy"


def create_frame_shards(prepared_dir: Path, count: int, size: int,
                        per_shard: int) -> list[np.ndarray]:
    """Memory-mapped (rows, S, S, 3) uint8 shards at their final sizes for `count` frames:
    frame i goes to row i % per_shard of shard i // per_shard."""
    return [np.lib.format.open_memmap(frame_shard_path(prepared_dir, k), mode="w+",
                                      dtype=np.uint8,
                                      shape=(min(per_shard, count - start), size, size, 3))
            for k, start in enumerate(range(0, count, per_shard))]


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
    table = pd.read_parquet(path)
    stats = table[list(STAT_COLUMNS)].to_numpy(np.float64).reshape(len(table), 2, 2, 68)
    mean, std = stats[:, 0].transpose(0, 2, 1), stats[:, 1].transpose(0, 2, 1)  # (I, 68, 2)
    return table.drop(columns=list(STAT_COLUMNS)), mean, std
