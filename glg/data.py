"""Training and evaluation pairs from the prepare stage's store, as `Pair`s for torch.

Frames are JPEGs in the prepared frame store and annotations memory-mapped arrays
(`glg.store.prepared`), opened once per worker; heatmaps and part crops are computed on the fly:
drawing them costs about what reading stored ones would (`benchmarks/bench_loader.py` measures
both), and stored heatmaps could not serve paper Eq. 3's transferred landmarks, which depend on
the source person.

Worker processes hand batches over in uint8 (`raw` datasets) and `iterate_pairs` turns them into
the float `Pair` in the main process or on the GPU: float32 would move 4x the bytes between
processes (`benchmarks/bench_loader.py` measures the rate). The JPEGs are decoded either in the
workers (libjpeg-turbo through OpenCV) or, with `decode="device"`, in the main process by
`torchvision.io.decode_jpeg` on the training device (nvjpeg on a GPU): the workers then hand
over the JPEG bytes and `decode_pair` cuts the source parts with the torch crop
(`glg.face.part_crops`), which shares the crop rule.

The landmarks that guide a pair (`Pair.reenacted_landmarks`, `model.landmark_mode`): the
driving's own (`driving`); paper Eq. 3's transfer to the source person (`lst`, Sec III-B-1), which
is the identity map on a training pair, as both frames show one person; or the landmark GAN's
L_reen (`lgan`, thesis Eq. 3.4) for the source identity and the driving pose and AUs, generated once
at construction in the main process (one batched call), so that workers stay numpy-only.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.io import ImageReadMode, decode_jpeg

from glg.config import LANDMARK_MODES, LandmarkMode
from glg.errors import GlgError
from glg.face.heatmap import draw_heatmap
from glg.face.landmark_transfer import place_generated, transfer_landmarks
from glg.face.part_crops import crop_parts
from glg.face.parts import crop_part, part_centres
from glg.store.prepared import SCENARIOS, PreparedFrames, read_pairs

# What the loader calls for `lgan` landmarks: identity (M,) int64, pose (M, 3) deg, AUs (M, 18)
# -> landmarks (M, 68, 2) px; the trained `glg.models.LandmarkGenerator` is one.
LandmarkSource = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Pair(NamedTuple):
    """One source-driving pair; S = `prepare.image_px`, images in [-1, 1], landmarks in S pixels."""

    source: torch.Tensor  # (3, S, S) float32
    driving: torch.Tensor  # (3, S, S) float32
    source_landmarks: torch.Tensor  # (68, 2) float32
    driving_landmarks: torch.Tensor  # (68, 2) float32, the driving frame's annotated landmarks
    # (68, 2) float32, the landmarks that guide the reenactment in the landmark mode (L_reen):
    # the heatmap, its part crops and the part centres are drawn from them
    reenacted_landmarks: torch.Tensor
    driving_heatmap: torch.Tensor  # (1, S, S) float32 in [0, 1], B-spline heatmap (Sec III-B)
    source_parts: tuple[torch.Tensor, ...]  # 4 x (3, h_k, w_k), PART_NAMES order
    driving_heatmap_parts: tuple[torch.Tensor, ...]  # 4 x (1, h_k, w_k)
    part_centres: torch.Tensor  # (4, 2) float32, the reenacted landmarks' part centres (x, y)
    driving_pose: torch.Tensor  # (3,) float32 pitch, yaw, roll in degrees
    driving_aus: torch.Tensor  # (18,) float32 0/1, AU_IDS order
    source_identity: torch.Tensor  # () int64, row of identities.parquet
    driving_identity: torch.Tensor  # () int64


class _Pairs(Dataset):
    """Makes `Pair`s from two rows of the prepared frames; uint8 ones when `raw` is set.

    `lgan` is the trained landmark generator, needed by (and only by) `landmark_mode="lgan"`.
    """

    def __init__(self, prepared_dir: str | Path, landmark_mode: LandmarkMode = "driving",
                 lgan: LandmarkSource | None = None):
        if landmark_mode not in LANDMARK_MODES:
            raise GlgError(f"landmark_mode: expected one of {', '.join(LANDMARK_MODES)}, "
                           f"got {landmark_mode!r}")
        if (landmark_mode == "lgan") != (lgan is not None):
            raise GlgError(f"landmark_mode={landmark_mode}: the trained landmark generator is "
                           f"{'needed' if lgan is None else 'not used'}")
        self.frames = PreparedFrames(prepared_dir)
        self.landmark_mode = landmark_mode
        self.raw = False  # True: images and heatmaps stay uint8 for `decode_pair` (loader workers)
        self.jpeg = False  # with `raw`: images stay JPEG files, decoded by `decode_pair`

    def generate(self, lgan: LandmarkSource, identity: np.ndarray, driving: np.ndarray,
                 chunk: int = 65536) -> np.ndarray:
        """(M, 68, 2) float32 landmarks of the LGAN for `identity` (M,) and the pose and AUs of
        frames `driving` (M,), in one no-grad pass per `chunk` rows, on the LGAN's device,
        centred on the driving frames' landmarks (`place_generated`)."""
        if getattr(lgan, "size", self.frames.size) != self.frames.size:
            raise GlgError(f"the landmark generator draws {lgan.size} px landmarks but the "
                           f"prepared frames are {self.frames.size} px; re-run train_lgan")
        device = next(lgan.parameters()).device if isinstance(lgan, torch.nn.Module) else "cpu"
        out = []
        with torch.no_grad():
            for k in range(0, len(driving), chunk):
                rows = driving[k:k + chunk]
                landmarks = lgan(torch.tensor(identity[k:k + chunk], device=device),
                                 torch.tensor(self.frames.pose[rows], device=device),
                                 torch.tensor(self.frames.aus[rows], device=device))
                out.append(landmarks.float().cpu().numpy())
        generated = np.concatenate(out) if out else np.zeros((0, 68, 2), np.float32)
        if not np.isfinite(generated).all():
            raise GlgError("the landmark generator gave non-finite landmarks")
        return place_generated(generated, self.frames.landmarks[driving])

    def transferred(self, pairs: np.ndarray) -> np.ndarray:
        """(M, 68, 2) float32: paper Eq. 3's landmarks of source/driving row pairs (M, 2)."""
        f = self.frames
        s, d = f.identity[pairs[:, 0]], f.identity[pairs[:, 1]]
        return transfer_landmarks(f.landmarks[pairs[:, 1]], f.mean[d], f.std[d], f.mean[s],
                                  f.std[s]).astype(np.float32)

    def pair(self, source: int, driving: int, generated: np.ndarray | None = None) -> Pair:
        raw = self.raw_pair(source, driving, generated, jpeg=self.raw and self.jpeg)
        return raw if self.raw else decode_pair(raw)

    def raw_pair(self, source: int, driving: int, generated: np.ndarray | None = None,
                 jpeg: bool = False) -> Pair:
        """The pair with uint8 images (0..255) and heatmaps (0..255 for [0, 1]); `generated` is
        the LGAN's (68, 2) landmarks for it in `lgan` mode. With `jpeg`, the images are their
        JPEG files ((bytes,) uint8) and `source_parts` is empty, for `decode_pair` to decode and
        cut on the training device."""
        f = self.frames
        source_landmarks, driving_landmarks = f.landmarks[source], f.landmarks[driving]
        reenacted = driving_landmarks
        if self.landmark_mode == "lst":
            reenacted = self.transferred(np.array([[source, driving]]))[0]
        elif self.landmark_mode == "lgan":
            reenacted = generated
        read = f.jpeg if jpeg else f.image  # (bytes,) or (S, S, 3) uint8
        images = read(source), read(driving)
        return guided_pair(*images, source_landmarks, driving_landmarks, reenacted,
                           f.pose[driving], f.aus[driving], f.identity[source],
                           f.identity[driving], f.part_sizes, f.size, jpeg=jpeg)


def guided_pair(source_image: np.ndarray, driving_image: np.ndarray,
                source_landmarks: np.ndarray, driving_landmarks: np.ndarray,
                reenacted: np.ndarray, driving_pose: np.ndarray, driving_aus: np.ndarray,
                source_identity: int, driving_identity: int,
                part_sizes: Sequence[tuple[int, int]], size: int, jpeg: bool = False) -> Pair:
    """A uint8 `Pair` of two S px frames, RGB (S, S, 3) uint8 (with `jpeg`: their JPEG files,
    (bytes,) uint8, and no source parts), whose heatmap, heatmap parts and part centres are
    drawn from the guiding landmarks `reenacted` (L_reen, Sec III-B); landmarks (68, 2) in S px."""
    heatmap = draw_heatmap(reenacted, size, as_uint8=True)  # (S, S)
    # float32, as `part_centres` is handed on and the torch crop and pasting see them
    centres = part_centres(reenacted).astype(np.float32)
    heatmap_parts = tuple(torch.from_numpy(crop_part(heatmap, c, h, w))[None]
                          for c, (h, w) in zip(centres, part_sizes))
    wrap = torch.from_numpy if jpeg else _chw
    images = [wrap(source_image), wrap(driving_image)]
    source_parts = () if jpeg else tuple(
        _chw(crop_part(source_image, c, h, w))
        for c, (h, w) in zip(part_centres(source_landmarks).astype(np.float32), part_sizes))
    def f32(values) -> torch.Tensor:
        return torch.from_numpy(np.array(values, np.float32))

    return Pair(images[0], images[1], f32(source_landmarks), f32(driving_landmarks),
                f32(reenacted), torch.from_numpy(heatmap)[None], source_parts, heatmap_parts,
                torch.from_numpy(centres), f32(driving_pose), f32(driving_aus),
                torch.tensor(int(source_identity)), torch.tensor(int(driving_identity)))  # int64


class TrainingPairs(_Pairs):
    """Self-supervised training pairs: two different frames of one training clip (Sec II).

    Item i has the i-th training frame as source and a driving frame of the same clip drawn
    from (seed, epoch, i): the same for any number of workers. Call `set_epoch` before each
    pass for fresh driving frames (with `persistent_workers=False`, so workers see it). In
    `lgan` mode each training frame's landmarks are generated from its own identity, pose and
    AUs: a training pair is one person, so the source identity is the driving's. `identity`
    (a row of identities.parquet) keeps one person's frames, a federated client's (thesis 3.6.1)."""

    def __init__(self, prepared_dir: str | Path, seed: int,
                 landmark_mode: LandmarkMode = "driving", lgan: LandmarkSource | None = None,
                 identity: int | None = None):
        super().__init__(prepared_dir, landmark_mode, lgan)
        train = self.frames.rows("train")
        train = train if identity is None else train[self.frames.identity[train] == identity]
        if len(train) == 0:
            raise GlgError(f"{self.frames.dir}: no training frames (identity {identity})")
        clip = self.frames.clip[train]
        order = np.argsort(clip, kind="stable")
        self.rows = train[order]  # training frames grouped by clip
        clip = clip[order]
        self.start = np.searchsorted(clip, clip, side="left")  # first row of each frame's clip
        self.count = np.searchsorted(clip, clip, side="right") - self.start
        self.seed, self.epoch = seed, 0
        self.generated = None  # (len(self), 68, 2): the LGAN's landmarks of each training frame
        if lgan is not None:
            self.generated = self.generate(lgan, self.frames.identity[self.rows], self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Pair:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        j = int(rng.integers(self.count[i] - 1))
        j += j >= i - self.start[i]  # never the source frame itself
        driving = self.start[i] + j
        generated = None if self.generated is None else self.generated[driving]
        return self.pair(int(self.rows[i]), int(self.rows[driving]), generated)


class EvaluationPairs(_Pairs):
    """The fixed evaluation pairs of one scenario (`self`, `unseen`, `known`; Sec IV-A).

    In `lgan` mode each pair's landmarks are generated from the SOURCE identity and the
    DRIVING pose and AUs (thesis Eq. 3.4). An LGAN of learned identity vectors
    (`lgan.identity_input: embedding`) has none trained for a person of no training frame: those
    pairs (`untrained`) are guided by paper Eq. 3 instead, as `glg reenact` guides such a person.
    """

    def __init__(self, prepared_dir: str | Path, scenario: str,
                 landmark_mode: LandmarkMode = "driving", lgan: LandmarkSource | None = None):
        if scenario not in SCENARIOS:
            raise GlgError(f"scenario: expected one of {', '.join(SCENARIOS)}, got {scenario!r}")
        super().__init__(prepared_dir, landmark_mode, lgan)
        pairs = read_pairs(self.frames.dir)
        pairs = pairs[pairs["scenario"] == scenario]
        self.pairs = pairs[["source_row", "driving_row"]].to_numpy(np.int64)  # (P, 2)
        self.generated = None  # (P, 68, 2): the LGAN's landmarks of each pair
        self.untrained = np.zeros(len(self.pairs), bool)  # (P,): guided by Eq. 3, not the LGAN
        if lgan is not None:
            sources = self.frames.identity[self.pairs[:, 0]]
            self.generated = self.generate(lgan, sources, self.pairs[:, 1])
            if knows_trained_people_only(lgan):
                trained = np.unique(self.frames.identity[self.frames.rows("train")])
                self.untrained = ~np.isin(sources, trained)
                self.generated[self.untrained] = self.transferred(self.pairs[self.untrained])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Pair:
        generated = None if self.generated is None else self.generated[i]
        return self.pair(int(self.pairs[i, 0]), int(self.pairs[i, 1]), generated)


def knows_trained_people_only(lgan: LandmarkSource) -> bool:
    """Whether the LGAN reads a learned vector per person (`lgan.identity_input: embedding`),
    which trains only on the training split's people, rather than any face's embedding."""
    identity = getattr(getattr(lgan, "condition", None), "identity", None)
    return identity is not None and identity.face_embeddings is None


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
        source=image(raw.source), driving=image(raw.driving),
        source_landmarks=move(raw.source_landmarks),
        driving_landmarks=move(raw.driving_landmarks),
        reenacted_landmarks=move(raw.reenacted_landmarks),
        driving_heatmap=heatmap(raw.driving_heatmap),
        source_parts=type(raw.source_parts)(image(t) for t in raw.source_parts),
        driving_heatmap_parts=type(raw.driving_heatmap_parts)(
            heatmap(t) for t in raw.driving_heatmap_parts),
        part_centres=move(raw.part_centres),
        driving_pose=move(raw.driving_pose), driving_aus=move(raw.driving_aus),
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
                  decode: Literal["workers", "device"] | None = None, start: int = 0,
                  rank: int = 0, world: int = 1) -> Iterator[Pair]:
    """Batches of float `Pair`s on `device`: endless (`epochs=None`, for step-counted training)
    or `epochs` passes. Workers hand over uint8; the order is seeded and `TrainingPairs` get
    `set_epoch` each pass, so the batches are the same for any number of workers. JPEGs are
    decoded in the `workers` or on the `device` (default: the device when it is a GPU).

    Resume and sharding: `start` batches (counted over epochs) are skipped without being loaded,
    so a run resumed at step k sees what an uninterrupted one saw from step k. With `world`
    processes, each step's `world * batch_size` pairs are cut into one batch per `rank`, so the
    processes together see what one process would see at `world` times the batch.
    """
    if world > 1 and not drop_last:
        raise GlgError("iterate_pairs: sharding over processes needs drop_last")
    on_gpu = device is not None and torch.device(device).type == "cuda"
    raw = copy.copy(dataset)
    raw.raw, raw.jpeg = True, (decode or ("device" if on_gpu else "workers")) == "device"
    step = world * batch_size
    per_epoch = len(raw) // step if drop_last else -(-len(raw) // step)
    if per_epoch == 0:
        raise GlgError(f"a step takes {step} pairs ({world} x batch {batch_size}) but the "
                       f"dataset holds {len(raw)}")
    epoch, skip = divmod(start, per_epoch)
    while epochs is None or epoch < epochs:
        if isinstance(raw, TrainingPairs):
            raw.set_epoch(epoch)
        order = (torch.randperm(len(raw), generator=torch.Generator().manual_seed(seed + epoch))
                 if shuffle else torch.arange(len(raw))).tolist()
        batches = [order[k * step + rank * batch_size:k * step + (rank + 1) * batch_size]
                   for k in range(skip, per_epoch)]
        loader = DataLoader(raw, batch_sampler=[b for b in batches if b], num_workers=workers,
                            pin_memory=on_gpu, collate_fn=collate_pairs)
        for batch in loader:
            yield decode_pair(batch, device, raw.frames.part_sizes)
        epoch, skip = epoch + 1, 0


def pairs_batch(dataset: _Pairs, indices: Sequence[int],
                device: torch.device | str | None = None) -> Pair:
    """The pairs `indices` of a dataset as one float batch on `device` (e.g. a validation set)."""
    raw = copy.copy(dataset)
    raw.raw, raw.jpeg = True, False
    return decode_pair(collate_pairs([raw[i] for i in indices]), device)


def _chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
