"""The frame store: JPEG frames by clip and frame key, the one format that `extract` writes at
256 px (`data/frames`) and `prepare` writes again at the networks' 224 px (`data/prepared`).

A store is a folder of
- `shard-NNNNN.jpegs`: whole clips' JPEG files back to back, clips in the order they were added,
  a new shard once one passes `shard_mb` (a few large files: DVC slows to hours on one file per
  frame);
- `locations.npy`: (N, 4) int64, row i's `frame`, shard, byte offset and byte length
  (`FRAME`, `SHARD`, `OFFSET`, `LENGTH`), memory-mapped for random reads (the loader);
- `manifest.parquet`: one row per frame, in the rows' order: `identity`, `video`, `frame`, then
  the writer's own columns (extract's: `glg.extract.EXTRACT_COLUMNS`);
- `clips.parquet`: one row per clip: `identity`, `video`, `start` (its first row), `frames`.
A clip is the rows start..start + frames - 1, frames in increasing order, its JPEGs adjacent in
one shard: reading it back is one read (annotate, prepare). The files are written in constant
memory, with equal bytes for equal input, and anew (glg/store/writers.py). Frames decode to RGB
uint8 `(H, W, 3)` (colour convention: glg.store.video).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glg.errors import GlgError, reading
from glg.store.writers import ArrayWriter, TableWriter, shard_name

if TYPE_CHECKING:  # pandas in annotations only: extract's workers start 0.3 s sooner without it
    import pandas as pd

MANIFEST = "manifest.parquet"
CLIPS = "clips.parquet"
LOCATIONS = "locations.npy"
SHARD_SUFFIX = ".jpegs"
SHARD_GLOB = f"shard-*{SHARD_SUFFIX}"
FRAME, SHARD, OFFSET, LENGTH = range(4)  # columns of locations.npy

KEY_FIELDS = [pa.field("identity", pa.string()), pa.field("video", pa.string()),
              pa.field("frame", pa.int64())]  # index of the frame in its clip as extract stored it
CLIPS_SCHEMA = pa.schema([*KEY_FIELDS[:2], pa.field("start", pa.int64()),
                          pa.field("frames", pa.int64())])


def clear_store(folder: Path) -> None:
    """Remove a previous store's files (and nothing else) from `folder`."""
    for stale in [*Path(folder).glob(SHARD_GLOB), *(Path(folder) / n for n in (
            MANIFEST, CLIPS, LOCATIONS))]:
        stale.unlink(missing_ok=True)


# --- JPEG ------------------------------------------------------------------------------------


def encode_bgr(bgr: np.ndarray, quality: int) -> bytes:
    """OpenCV's BGR uint8 -> JPEG bytes at `quality`: crops are encoded without a colour
    conversion."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def decode_bgr(data: np.ndarray | bytes) -> np.ndarray:
    """JPEG bytes -> BGR uint8 (H, W, 3), libjpeg-turbo through OpenCV."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise GlgError(f"a stored frame of {len(data)} bytes is not a decodable image")
    return bgr


def decode_rgb(data: np.ndarray | bytes) -> np.ndarray:
    """JPEG bytes -> RGB uint8 (H, W, 3), libjpeg-turbo through OpenCV."""
    return cv2.cvtColor(decode_bgr(data), cv2.COLOR_BGR2RGB)


# --- writing ---------------------------------------------------------------------------------


class FrameStoreWriter:
    """Writes a store clip by clip (`add`) in constant memory: a clip never split over two
    shards, a new shard once one holds `shard_mb`; `columns` are the writer's own manifest
    columns, after the key."""

    def __init__(self, out: Path, shard_mb: float, columns: pa.Schema = pa.schema([])):
        self.out, self.limit = Path(out), shard_mb * 2**20
        self.out.mkdir(parents=True, exist_ok=True)
        clear_store(self.out)
        self.columns = columns
        self.manifest = TableWriter(self.out / MANIFEST, pa.schema([*KEY_FIELDS, *columns]))
        self.clip_table = TableWriter(self.out / CLIPS, CLIPS_SCHEMA)
        self.locations = ArrayWriter(self.out / LOCATIONS, np.int64, (4,))
        self.shard, self.shard_bytes = -1, 0
        self.shard_file = None
        self.keys: set[tuple[str, str]] = set()
        self.clips = self.frames = 0

    def add(self, identity: str, video: str, frames: Sequence[int], lengths: Sequence[int],
            jpegs: bytes | Path, columns: dict | None = None) -> None:
        """Append one clip: its frame indices (increasing), each JPEG's length in bytes and the
        JPEGs back to back, as bytes or a spool file (moved in, then deleted); `columns` holds
        the writer's own columns, one value per frame."""
        if (identity, video) in self.keys:
            raise GlgError(f"{self.out}: clip {identity}/{video} added twice to the frame store")
        frames, lengths = np.asarray(frames, np.int64), np.asarray(lengths, np.int64)
        assert len(frames) == len(lengths) and (np.diff(frames) > 0).all(), (identity, video)
        if self.shard_file is None or self.shard_bytes >= self.limit:
            self._roll()
        if isinstance(jpegs, Path):
            with jpegs.open("rb") as spool:
                shutil.copyfileobj(spool, self.shard_file, 2**20)
            jpegs.unlink()
        else:
            self.shard_file.write(jpegs)
        offsets = self.shard_bytes + np.cumsum(lengths) - lengths
        self.shard_bytes += int(lengths.sum())
        assert self.shard_file.tell() == self.shard_bytes, (identity, video)  # lengths add up
        n = len(frames)
        self.locations.append(np.stack([frames, np.full(n, self.shard), offsets, lengths], 1))
        self.manifest.append({"identity": [identity] * n, "video": [video] * n, "frame": frames,
                              **(columns or {})})
        self.clip_table.append({"identity": [identity], "video": [video], "start": [self.frames],
                                "frames": [n]})
        self.keys.add((identity, video))
        self.clips += 1
        self.frames += n

    def _roll(self) -> None:
        if self.shard_file:
            self.shard_file.close()
        self.shard, self.shard_bytes = self.shard + 1, 0
        self.shard_file = (self.out / shard_name(self.shard, SHARD_SUFFIX)).open("wb")

    def close(self) -> None:
        if self.shard_file:
            self.shard_file.close()
        for writer in (self.manifest, self.clip_table, self.locations):
            writer.close()


# --- reading ---------------------------------------------------------------------------------


class FrameStore:
    """A frame store opened for reading: clips by key, frames by row. JPEGs are read with
    positioned reads (`os.preadv`): safe in forked workers, and file pages never count as the
    reader's memory; `locations` is memory-mapped."""

    def __init__(self, folder: str | Path):
        self.dir = Path(folder)
        for name in (CLIPS, LOCATIONS):
            if not (self.dir / name).is_file():
                raise GlgError(f"{self.dir / name}: frame store not found (run the extract stage)")
        with reading(self.dir / CLIPS, "frame store clip table"):  # identity, video, start, frames
            self.clips = pq.read_table(self.dir / CLIPS).to_pandas()
        self._clip = {k: i for i, k in enumerate(zip(self.clips["identity"], self.clips["video"]))}
        with reading(self.dir / LOCATIONS, "frame store location array"):
            self.locations = np.load(self.dir / LOCATIONS, mmap_mode="r")  # (N, 4) int64
        self._shards: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.locations)

    def __getstate__(self) -> dict:
        return {"dir": self.dir}  # a worker opens the files itself

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["dir"])

    def clip_rows(self, identity: str, video: str) -> range | None:
        """Rows of a clip, or None when the store does not hold it."""
        k = self._clip.get((identity, video))
        if k is None:
            return None
        start = int(self.clips["start"].iat[k])
        return range(start, start + int(self.clips["frames"].iat[k]))

    def jpeg(self, row: int) -> np.ndarray:
        """Row `row`'s JPEG file, (bytes,) uint8."""
        _, shard, offset, length = (int(v) for v in self.locations[row])
        return self._read(shard, offset, length)

    def image(self, row: int) -> np.ndarray:
        """Row `row`'s frame, RGB uint8 (H, W, 3)."""
        return decode_rgb(self.jpeg(row))

    def clip_jpegs(self, identity: str, video: str) -> list[tuple[int, np.ndarray]]:
        """A clip's `(frame index, JPEG)` in frame order, read at once."""
        rows = self.clip_rows(identity, video)
        if rows is None:
            raise GlgError(f"{self.dir}: no clip {identity}/{video} in the frame store")
        locations = np.asarray(self.locations[rows.start:rows.stop])  # (n, 4)
        if not len(locations):
            return []
        offset, end = locations[0, OFFSET], locations[-1, OFFSET] + locations[-1, LENGTH]
        data = self._read(int(locations[0, SHARD]), int(offset), int(end - offset))
        return [(int(f), data[o - offset:o - offset + n])
                for f, o, n in locations[:, [FRAME, OFFSET, LENGTH]]]

    def iter_clip(self, identity: str, video: str) -> Iterator[tuple[int, np.ndarray]]:
        """A clip's `(frame index, RGB uint8 (H, W, 3))` in order."""
        for frame, data in self.clip_jpegs(identity, video):
            yield frame, decode_rgb(data)

    def read_frame(self, identity: str, video: str, frame: int) -> np.ndarray:
        """One frame by key: RGB uint8 (H, W, 3)."""
        rows = self.clip_rows(identity, video)
        if rows is None:
            raise GlgError(f"{self.dir}: no clip {identity}/{video} in the frame store")
        frames = self.locations[rows.start:rows.stop, FRAME]
        at = int(np.searchsorted(frames, frame))
        if at == len(frames) or frames[at] != frame:
            raise GlgError(f"{self.dir}: {identity}/{video} has frames {frames[0]}..{frames[-1]}, "
                           f"not {frame}")
        return self.image(rows.start + at)

    def frame_size(self) -> int:
        """Side of the stored square frames, read from the first one (0 for an empty store)."""
        return int(self.image(0).shape[0]) if len(self) else 0

    def _read(self, shard: int, offset: int, length: int) -> np.ndarray:
        file = self._shards.get(shard)
        if file is None:
            path = self.dir / shard_name(shard, SHARD_SUFFIX)
            if not path.is_file():
                raise GlgError(f"{path}: frame shard listed in {LOCATIONS} is missing")
            file = self._shards[shard] = path.open("rb", buffering=0)
        data = np.empty(length, np.uint8)
        if os.preadv(file.fileno(), [data], offset) != length:
            path = self.dir / shard_name(shard, SHARD_SUFFIX)
            raise GlgError(f"{path}: truncated (bytes {offset}.."
                           f"{offset + length} listed in {LOCATIONS})")
        return data


@functools.lru_cache(maxsize=4)
def _open_store(folder: Path, version: tuple[int, int]) -> FrameStore:
    return FrameStore(folder)


def open_store(folder: str | Path) -> FrameStore:
    """The store in `folder`, opened once per process and version of its files."""
    folder = Path(folder).resolve()
    clips = folder / CLIPS
    stat = clips.stat() if clips.is_file() else None
    return _open_store(folder, (stat.st_mtime_ns, stat.st_ino) if stat else (0, 0))


def iter_clip(frames_dir: str | Path, identity: str,
              video: str) -> Iterator[tuple[int, np.ndarray]]:
    """A stored clip's frames in order: `(frame index, RGB uint8 (size, size, 3))`."""
    return open_store(frames_dir).iter_clip(identity, video)


def read_frame(frames_dir: str | Path, identity: str, video: str, frame: int) -> np.ndarray:
    """One stored frame by key: RGB uint8 `(size, size, 3)`."""
    return open_store(frames_dir).read_frame(identity, video, frame)


def read_manifest(frames_dir: str | Path, columns: Sequence[str] | None = None,
                  identities: Sequence[str] | None = None) -> pd.DataFrame:
    """The store's manifest, one row per frame, only `columns` and `identities`' rows if given
    (read a row group at a time, so memory holds what is asked for)."""
    path = Path(frames_dir) / MANIFEST
    if not path.is_file():
        raise GlgError(f"{path}: frame manifest not found (run the extract stage)")
    filters = None if identities is None else [("identity", "in", sorted(identities))]
    with reading(path, "frame manifest"):
        if identities is not None and not identities:
            schema = pq.read_schema(path)
            return schema.empty_table().select(list(columns or schema.names)).to_pandas()
        return pq.read_table(path, columns=None if columns is None else list(columns),
                             filters=filters).to_pandas()
