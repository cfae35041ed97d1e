"""Training and evaluation pairs from the prepare stage's store, as `Pair`s for torch.

Frames are JPEGs in the prepared frame store and annotations memory-mapped arrays
(`glg.prepared`), opened once per worker; heatmaps and part crops are computed on the fly.
Measured by `benchmarks/bench_loader.py` on the busy 2-core machine: drawing a B-spline heatmap
costs 0.1-0.5 ms per pair and the eight crops 0.2-0.5 ms; reading a stored heatmap would cost
~0.1 ms, but storing them takes 50 KB per frame and cannot serve Eq. 3's transferred landmarks,
which depend on the source person, so they are drawn here.

Worker processes hand batches over in uint8 (`raw` datasets) and `iterate_pairs` turns them into
the float `Pair` in the main process or on the GPU: handing over float32 moves 4x the bytes
and halved the rate (113-199 against 237-350 pairs/s with 2 workers, same runs). The JPEGs are
decoded either in the workers (libjpeg-turbo through OpenCV, ~0.3 ms a 224 px frame) or, with
`decode="device"`, in the main process by `torchvision.io.decode_jpeg` on the training device
(nvjpeg on a GPU): the workers then hand over the JPEG bytes and `decode_pair` cuts the source
parts with the torch crop (`glg.models.parts.crop_parts`), which shares the crop rule.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.io import ImageReadMode, decode_jpeg

from glg.errors import GlgError
from glg.frames import FRAME, FrameStore
from glg.heatmap import draw_heatmap
from glg.landmark_transfer import transfer_landmarks
from glg.models.parts import crop_parts
from glg.parts import crop_part, part_centres
from glg.prepared import PAIRS, SCENARIOS, SPLITS, read_array, read_identities, read_parts

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
    """The prepared frames and their annotations, memory-mapped: nothing per frame is read into
    memory until a row is asked for (format: `glg.prepared`)."""

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
        """Row indices of one split (`glg.prepared.SPLITS`), in stored order (clip by clip)."""
        return np.flatnonzero(self.split == SPLITS.index(split))

    def key(self, index: int) -> tuple[str, str, int]:
        """(identity, video, frame) of a row."""
        clip = self.clips.iloc[self.clip[index]]
        return clip["identity"], clip["video"], int(self.frame[index])

    def image(self, index: int) -> np.ndarray:
        """(S, S, 3) uint8 RGB frame, decoded on the CPU (libjpeg-turbo through OpenCV)."""
        return self.store.image(index)

    def jpeg(self, index: int) -> np.ndarray:
        """The frame's JPEG file, (bytes,) uint8, for decoding elsewhere (`decode_pair`)."""
        return self.store.jpeg(index)


class _Pairs(Dataset):
    """Makes `Pair`s from two rows of the prepared frames; uint8 ones when `raw` is set."""

    def __init__(self, prepared_dir: str | Path, landmark_mode: LandmarkMode = "driving"):
        if landmark_mode not in ("driving", "lst"):
            raise GlgError(f"landmark_mode: expected 'driving' or 'lst', got {landmark_mode!r}")
        self.frames = PreparedFrames(prepared_dir)
        self.landmark_mode = landmark_mode
        self.raw = False  # True: images and heatmaps stay uint8 for `decode_pair` (loader workers)
        self.jpeg = False  # with `raw`: images stay JPEG files, decoded by `decode_pair`

    def pair(self, source: int, driving: int) -> Pair:
        raw = self.raw_pair(source, driving, jpeg=self.raw and self.jpeg)
        return raw if self.raw else decode_pair(raw)

    def raw_pair(self, source: int, driving: int, jpeg: bool = False) -> Pair:
        """The pair with uint8 images (0..255) and heatmaps (0..255 for [0, 1]); with `jpeg`,
        the images are their JPEG files ((bytes,) uint8) and `source_parts` is empty, for
        `decode_pair` to decode and cut on the training device."""
        f = self.frames
        source_landmarks, driving_landmarks = f.landmarks[source], f.landmarks[driving]
        if self.landmark_mode == "lst":
            s, d = f.identity[source], f.identity[driving]
            driving_landmarks = transfer_landmarks(driving_landmarks, f.mean[d], f.std[d],
                                                   f.mean[s], f.std[s]).astype(np.float32)
        heatmap = draw_heatmap(driving_landmarks, f.size, as_uint8=True)  # (S, S)
        # float32, as `part_centres` is handed on and the torch crop and pasting see them
        centres = part_centres(driving_landmarks).astype(np.float32)
        heatmap_parts = tuple(torch.from_numpy(crop_part(heatmap, c, h, w))[None]
                              for c, (h, w) in zip(centres, f.part_sizes))
        if jpeg:
            source_image, driving_image = f.jpeg(source), f.jpeg(driving)  # (bytes,) uint8
            images, source_parts = [torch.from_numpy(source_image),
                                    torch.from_numpy(driving_image)], ()
        else:
            source_image, driving_image = f.image(source), f.image(driving)  # (S, S, 3) uint8
            source_centres = part_centres(source_landmarks).astype(np.float32)
            images = [_chw(source_image), _chw(driving_image)]
            source_parts = tuple(_chw(crop_part(source_image, c, h, w))
                                 for c, (h, w) in zip(source_centres, f.part_sizes))
        return Pair(
            source=images[0],
            driving=images[1],
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
            raise GlgError(f"{self.frames.dir}: no training frames")
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


def collate_pairs(batch: list[Pair]) -> Pair:
    """A list of uint8 `Pair`s as one batched `Pair`; JPEG files, which differ in length, stay
    a list of B tensors for `decode_pair`."""
    if batch[0].source.dim() == 3:
        return default_collate(batch)
    empty = torch.empty(0)
    stacked = default_collate([p._replace(source=empty, driving=empty) for p in batch])
    return stacked._replace(source=[p.source for p in batch], driving=[p.driving for p in batch])


def decode_pair(raw: Pair, device: torch.device | str | None = None,
                part_sizes: Sequence[tuple[int, int]] | None = None) -> Pair:
    """A uint8 `Pair` (one or a batch) as the float `Pair`: images in [-1, 1], heatmaps [0, 1].

    A batch of JPEG files (`collate_pairs`) is decoded on `device` first (CPU: libjpeg-turbo;
    CUDA: nvjpeg) and its source parts are cut there, `part_sizes` (h, w) each.
    """

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device, non_blocking=True) if device is not None else t

    def image(t: torch.Tensor) -> torch.Tensor:  # in place on the new float copy: 2.5x faster
        return move(t).to(torch.float32).div_(127.5).sub_(1.0)

    def heatmap(t: torch.Tensor) -> torch.Tensor:
        return move(t).to(torch.float32).div_(255.0)

    if isinstance(raw.source, list):
        if part_sizes is None:
            raise GlgError("decode_pair: part_sizes are needed to cut the parts of JPEG images")
        source = decode_jpegs(raw.source, device)  # (B, 3, S, S) uint8
        centres = part_centres(raw.source_landmarks.numpy()).astype(np.float32)  # (B, 4, 2)
        parts = crop_parts(source, torch.from_numpy(centres), part_sizes, fill=0)
        raw = raw._replace(source=source, driving=decode_jpegs(raw.driving, device),
                           source_parts=type(raw.driving_heatmap_parts)(parts))
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


def decode_jpegs(files: Sequence[torch.Tensor], device: torch.device | str | None) -> torch.Tensor:
    """B JPEG files ((bytes,) uint8 on the CPU) -> (B, 3, S, S) uint8 RGB on `device`, by
    `torchvision.io.decode_jpeg`: libjpeg-turbo on the CPU, nvjpeg on a GPU, a batch at once."""
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs for TorchCodec, which the lock lacks
        warnings.filterwarnings("ignore", "The image decoding and encoding capabilities")
        images = decode_jpeg(list(files), mode=ImageReadMode.RGB, device=device or "cpu")
    return torch.stack(images)


def iterate_pairs(dataset: _Pairs, batch_size: int, workers: int, seed: int,
                  device: torch.device | str | None = None, shuffle: bool = True,
                  drop_last: bool = True, epochs: int | None = None,
                  decode: Literal["workers", "device"] | None = None) -> Iterator[Pair]:
    """Batches of float `Pair`s on `device`: endless (`epochs=None`, for step-counted training)
    or `epochs` passes. Workers hand over uint8; the order is seeded and `TrainingPairs` get
    `set_epoch` each pass, so the batches are the same for any number of workers. JPEGs are
    decoded in the `workers` or on the `device` (default: the device when it is a GPU)."""
    on_gpu = device is not None and torch.device(device).type == "cuda"
    raw = copy.copy(dataset)
    raw.raw, raw.jpeg = True, (decode or ("device" if on_gpu else "workers")) == "device"
    epoch = 0
    while epochs is None or epoch < epochs:
        if isinstance(raw, TrainingPairs):
            raw.set_epoch(epoch)
        loader = DataLoader(raw, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                            generator=torch.Generator().manual_seed(seed + epoch),
                            drop_last=drop_last, pin_memory=on_gpu, collate_fn=collate_pairs)
        for batch in loader:
            yield decode_pair(batch, device, raw.frames.part_sizes)
        epoch += 1


def _chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
