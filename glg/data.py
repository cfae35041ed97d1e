"""Training and evaluation pairs from the prepare stage's store, as `Pair`s for torch.

Frames come from the memory-mapped (N, S, S, 3) uint8 shards that `glg.prepare` wrote (opened
lazily, once per worker); heatmaps and part crops are computed on the fly. Measured by
`benchmarks/bench_loader.py` on the busy 2-core machine: drawing a B-spline heatmap costs
0.2-0.5 ms per pair and the eight crops 0.3-0.5 ms; reading a stored heatmap would cost ~0.1 ms,
but storing them takes 50 KB per frame and cannot serve Eq. 3's transferred landmarks, which
depend on the source person, so they are drawn here.

Worker processes hand batches over in uint8 (`raw` datasets) and `iterate_pairs` turns them into
the float `Pair` in the main process or on the GPU: handing over float32 moves 4x the bytes
and halved the rate (113-199 against 237-350 pairs/s with 2 workers, same runs).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from glg.errors import GlgError
from glg.landmarks import AU_PRESENCE, POSE_COLUMNS, landmarks_from_table
from glg.heatmap import draw_heatmap
from glg.landmark_transfer import transfer_landmarks
from glg.parts import crop_part, part_centres
from glg.prepared import FRAMES, PAIRS, SCENARIOS, SPLITS, read_identities, read_parts

# The guiding landmarks a pair holds: the driving's as they are, or moved toward the source
# person by Eq. 3 (Sec III-B-1). The LGAN's (`model.landmark_mode=lgan`) come from the model.
LandmarkMode = Literal["driving", "lst"]


class Pair(NamedTuple):
    """One source-driving pair; S = `prepare.size`, images in [-1, 1], landmarks in S pixels."""

    source: torch.Tensor  # (3, S, S) float32
    driving: torch.Tensor  # (3, S, S) float32
    source_landmarks: torch.Tensor  # (68, 2) float32
    driving_landmarks: torch.Tensor  # (68, 2) float32, after the landmark mode's transform
    driving_heatmap: torch.Tensor  # (1, S, S) float32 in [0, 1], B-spline heatmap (Sec III-B)
    source_parts: tuple[torch.Tensor, ...]  # 4 x (3, h_k, w_k), PART_NAMES order
    driving_heatmap_parts: tuple[torch.Tensor, ...]  # 4 x (1, h_k, w_k)
    part_centres: torch.Tensor  # (4, 2) float32, driving parts' centres (x, y)
    driving_pose: torch.Tensor  # (3,) float32 pitch, yaw, roll in degrees
    driving_aus: torch.Tensor  # (18,) float32 0/1, AU_IDS order
    source_identity: torch.Tensor  # () int64, row of identities.parquet
    driving_identity: torch.Tensor  # () int64


class PreparedFrames:
    """The prepared frames and their annotations; the shards are memory-mapped on first use."""

    def __init__(self, prepared_dir: str | Path):
        self.dir = Path(prepared_dir)
        path = self.dir / FRAMES
        if not path.is_file():
            raise GlgError(f"{path}: prepared frame index not found (run prepare first)")
        index = pd.read_parquet(path)
        clip = index.groupby(["identity", "video"], sort=False).ngroup()
        self.clip = clip.to_numpy(np.int64)  # (N,) row of `clips`
        self.clips = index.loc[~clip.duplicated(), ["identity", "video", "identity_index"]
                               ].reset_index(drop=True)  # one row per clip, in stored order
        self.frame = index["frame"].to_numpy(np.int64)  # (N,) frame index within its clip
        self.split = index["split"].map({s: k for k, s in enumerate(SPLITS)}).to_numpy(np.int8)
        self.landmarks = landmarks_from_table(index).astype(np.float32)  # (N, 68, 2)
        self.pose = index[list(POSE_COLUMNS)].to_numpy(np.float32)  # (N, 3)
        self.aus = index[list(AU_PRESENCE)].to_numpy(np.float32)  # (N, 18)
        self.identity = index["identity_index"].to_numpy(np.int64)
        self.shard = index["shard"].to_numpy(np.int64)
        self.row = index["row"].to_numpy(np.int64)
        _, self.mean, self.std = read_identities(self.dir)  # (I, 68, 2) each
        self.part_sizes = read_parts(self.dir)  # 4 x (h, w)
        self._shards: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.identity)

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split (`glg.prepared.SPLITS`), in stored order (clip by clip)."""
        return np.flatnonzero(self.split == SPLITS.index(split))

    def key(self, index: int) -> tuple[str, str, int]:
        """(identity, video, frame) of a row."""
        clip = self.clips.iloc[self.clip[index]]
        return clip["identity"], clip["video"], int(self.frame[index])

    def image(self, index: int) -> np.ndarray:
        """(S, S, 3) uint8 RGB frame, a view into its shard."""
        if self._shards is None:
            self._shards = [np.load(self.dir / f"frames-{k:03d}.npy", mmap_mode="r")
                            for k in range(int(self.shard.max()) + 1)]
        return self._shards[self.shard[index]][self.row[index]]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_shards": None}  # each worker maps the shards itself


class _Pairs(Dataset):
    """Makes `Pair`s from two rows of the prepared frames; uint8 ones when `raw` is set."""

    def __init__(self, prepared_dir: str | Path, landmark_mode: LandmarkMode = "driving"):
        if landmark_mode not in ("driving", "lst"):
            raise GlgError(f"landmark_mode: expected 'driving' or 'lst', got {landmark_mode!r}")
        self.frames = PreparedFrames(prepared_dir)
        self.landmark_mode = landmark_mode
        self.raw = False  # True: images and heatmaps stay uint8 for `decode_pair` (loader workers)

    def pair(self, source: int, driving: int) -> Pair:
        raw = self.raw_pair(source, driving)
        return raw if self.raw else decode_pair(raw)

    def raw_pair(self, source: int, driving: int) -> Pair:
        """The pair with uint8 images (0..255) and heatmaps (0..255 for [0, 1])."""
        f = self.frames
        source_image, driving_image = f.image(source), f.image(driving)  # (S, S, 3) uint8
        source_landmarks, driving_landmarks = f.landmarks[source], f.landmarks[driving]
        if self.landmark_mode == "lst":
            s, d = f.identity[source], f.identity[driving]
            driving_landmarks = transfer_landmarks(driving_landmarks, f.mean[d], f.std[d],
                                                   f.mean[s], f.std[s]).astype(np.float32)
        heatmap = draw_heatmap(driving_landmarks, source_image.shape[0], as_uint8=True)  # (S, S)
        source_centres = part_centres(source_landmarks)
        # float32 as `part_centres` is handed on, so torch's pasting rounds the very same values
        centres = part_centres(driving_landmarks).astype(np.float32)
        source_parts = tuple(_chw(crop_part(source_image, c, h, w))
                             for c, (h, w) in zip(source_centres, f.part_sizes))
        heatmap_parts = tuple(torch.from_numpy(crop_part(heatmap, c, h, w))[None]
                              for c, (h, w) in zip(centres, f.part_sizes))
        return Pair(
            source=_chw(source_image),
            driving=_chw(driving_image),
            source_landmarks=torch.from_numpy(source_landmarks.copy()),
            driving_landmarks=torch.from_numpy(np.array(driving_landmarks, np.float32)),
            driving_heatmap=torch.from_numpy(heatmap)[None],
            source_parts=source_parts,
            driving_heatmap_parts=heatmap_parts,
            part_centres=torch.from_numpy(centres),
            driving_pose=torch.from_numpy(f.pose[driving].copy()),
            driving_aus=torch.from_numpy(f.aus[driving].copy()),
            source_identity=torch.tensor(f.identity[source], dtype=torch.int64),
            driving_identity=torch.tensor(f.identity[driving], dtype=torch.int64),
        )


class TrainingPairs(_Pairs):
    """Self-supervised training pairs: two different frames of one training clip (Sec II).

    Item i has the i-th training frame as source and a driving frame of the same clip drawn
    from (seed, epoch, i): the same for any number of workers. Call `set_epoch` before each
    pass for fresh driving frames (with `persistent_workers=False`, so workers see it).
    """

    def __init__(self, prepared_dir: str | Path, seed: int,
                 landmark_mode: LandmarkMode = "driving"):
        super().__init__(prepared_dir, landmark_mode)
        train = self.frames.rows("train")
        if len(train) == 0:
            raise GlgError(f"{self.frames.dir / FRAMES}: no training frames")
        clip = self.frames.clip[train]
        order = np.argsort(clip, kind="stable")
        self.rows = train[order]  # training frames grouped by clip
        clip = clip[order]
        self.start = np.searchsorted(clip, clip, side="left")  # first row of each frame's clip
        self.count = np.searchsorted(clip, clip, side="right") - self.start
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Pair:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        j = int(rng.integers(self.count[i] - 1))
        j += j >= i - self.start[i]  # never the source frame itself
        return self.pair(int(self.rows[i]), int(self.rows[self.start[i] + j]))


class EvaluationPairs(_Pairs):
    """The fixed evaluation pairs of one scenario (`self`, `unseen`, `known`; Sec IV-A)."""

    def __init__(self, prepared_dir: str | Path, scenario: str,
                 landmark_mode: LandmarkMode = "driving"):
        if scenario not in SCENARIOS:
            raise GlgError(f"scenario: expected one of {', '.join(SCENARIOS)}, got {scenario!r}")
        super().__init__(prepared_dir, landmark_mode)
        pairs = pd.read_parquet(self.frames.dir / PAIRS)
        pairs = pairs[pairs["scenario"] == scenario]
        self.pairs = pairs[["source_row", "driving_row"]].to_numpy(np.int64)  # (P, 2)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Pair:
        return self.pair(int(self.pairs[i, 0]), int(self.pairs[i, 1]))


def decode_pair(raw: Pair, device: torch.device | str | None = None) -> Pair:
    """A uint8 `Pair` (one or a batch) as the float `Pair`: images in [-1, 1], heatmaps [0, 1]."""

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, non_blocking=True) if device is not None else t

    def image(t: torch.Tensor) -> torch.Tensor:  # in place on the new float copy: 2.5x faster
        return move(t).to(torch.float32).div_(127.5).sub_(1.0)

    def heatmap(t: torch.Tensor) -> torch.Tensor:
        return move(t).to(torch.float32).div_(255.0)

    return Pair(
        source=image(raw.source),
        driving=image(raw.driving),
        source_landmarks=move(raw.source_landmarks),
        driving_landmarks=move(raw.driving_landmarks),
        driving_heatmap=heatmap(raw.driving_heatmap),
        source_parts=type(raw.source_parts)(image(t) for t in raw.source_parts),
        driving_heatmap_parts=type(raw.driving_heatmap_parts)(
            heatmap(t) for t in raw.driving_heatmap_parts),
        part_centres=move(raw.part_centres),
        driving_pose=move(raw.driving_pose),
        driving_aus=move(raw.driving_aus),
        source_identity=move(raw.source_identity),
        driving_identity=move(raw.driving_identity),
    )


def iterate_pairs(dataset: _Pairs, batch_size: int, workers: int, seed: int,
                  device: torch.device | str | None = None, shuffle: bool = True,
                  drop_last: bool = True, epochs: int | None = None) -> Iterator[Pair]:
    """Batches of float `Pair`s on `device`: endless (`epochs=None`, for step-counted training)
    or `epochs` passes. Workers hand over uint8; the order is seeded and `TrainingPairs` get
    `set_epoch` each pass, so the batches are the same for any number of workers."""
    raw = copy.copy(dataset)
    raw.raw = True
    pin = device is not None and torch.device(device).type == "cuda"
    epoch = 0
    while epochs is None or epoch < epochs:
        if isinstance(raw, TrainingPairs):
            raw.set_epoch(epoch)
        loader = DataLoader(raw, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                            generator=torch.Generator().manual_seed(seed + epoch),
                            drop_last=drop_last, pin_memory=pin)
        for batch in loader:
            yield decode_pair(batch, device)
        epoch += 1


def _chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
