"""The frame store: what `extract` writes and every later stage reads, by clip and frame key.

`data/frames/` holds a few large Parquet shards of JPEG bytes (`shard-NNNNN.parquet`: never one
file per frame, which slows DVC to hours on hundreds of thousands of files) and
`manifest.parquet`, one row per stored frame (columns: `MANIFEST_SCHEMA`). Frames come back as
RGB uint8 `(H, W, 3)`; a clip costs one row-group read, cached.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glg.errors import GlgError

MANIFEST = "manifest.parquet"
SHARD_GLOB = "shard-*.parquet"
# Frames per Parquet row group: a clip of up to this many frames (the default max_frames) is
# one row group, so reading it back is one read; a longer clip streams through in several.
ROW_GROUP_FRAMES = 250

MANIFEST_SCHEMA = pa.schema([
    ("identity", pa.string()),
    ("video", pa.string()),
    ("frame", pa.int32()),  # index of the stored frame within its clip, 0-based
    ("source_frame", pa.int32()),  # index of that frame in the decoded source video, 0-based
    ("timestamp", pa.float64()),  # s, source_frame / source fps
    ("crop_x0", pa.float32()),  # crop box in source pixels
    ("crop_y0", pa.float32()),
    ("crop_size", pa.float32()),
    ("source", pa.string()),  # path relative to data.videos, '/' separators
    ("shard", pa.string()),  # file name of the shard holding the JPEG bytes
    ("row_group", pa.int32()),  # the row group holding the frame in that shard
    ("row", pa.int32()),  # the frame's row within that row group
])
SHARD_SCHEMA = pa.schema([
    ("identity", pa.string()),
    ("video", pa.string()),
    ("frame", pa.int32()),
    ("jpeg", pa.binary()),
])
# A spool file: one clip's JPEGs in frame order, written by an extract worker and copied into a
# shard by `FrameStoreWriter.add`.
SPOOL_SCHEMA = pa.schema([("jpeg", pa.binary())])
# Written with fixed settings and no pandas metadata, so equal inputs give equal bytes.
PARQUET_OPTIONS = dict(version="2.6", use_dictionary=False, write_statistics=False,
                        data_page_version="1.0")


# --- writing ---------------------------------------------------------------------------------


def encode_bgr(bgr: np.ndarray, quality: int) -> bytes:
    """OpenCV's BGR uint8 -> JPEG bytes at `quality`: extract encodes its crops without a
    colour conversion."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


class FrameStoreWriter:
    """Appends clips to Parquet shards (`ROW_GROUP_FRAMES` frames a row group, a clip never
    split over two shards, a new shard past `shard_mb`) and collects the manifest."""

    def __init__(self, out: Path, shard_mb: float):
        self.out, self.limit = out, shard_mb * 2**20
        self.shard_index, self.shard_bytes, self.row_groups = -1, 0, 0
        self.writer: pq.ParquetWriter | None = None
        self.manifest: list[pa.Table] = []
        self.clips = self.frames = 0

    def _roll(self) -> None:
        if self.writer:
            self.writer.close()
        self.shard_index += 1
        self.shard_bytes = self.row_groups = 0
        self.writer = pq.ParquetWriter(self.out / self.shard_name, SHARD_SCHEMA,
                                       compression="none", **PARQUET_OPTIONS)

    @property
    def shard_name(self) -> str:
        return f"shard-{self.shard_index:05d}.parquet"

    def add(self, identity: str, video: str, source: str, spool: Path,
            source_frames: Sequence[int], timestamps: Sequence[float], boxes: np.ndarray) -> None:
        """Append one clip: copy its spool file (`SPOOL_SCHEMA`) into the shard one row group at
        a time, then delete it; `boxes` (n, 3) are x0, y0, side."""
        if self.writer is None or self.shard_bytes >= self.limit:
            self._roll()
        spool_file, start = pq.ParquetFile(spool), 0
        boxes = np.asarray(boxes, np.float32)
        for group in range(spool_file.num_row_groups):
            jpeg = spool_file.read_row_group(group).column("jpeg")
            k = len(jpeg)
            frames = np.arange(start, start + k, dtype=np.int32)
            self.writer.write_table(pa.table({
                "identity": pa.array([identity] * k, pa.string()),
                "video": pa.array([video] * k, pa.string()),
                "frame": frames,
                "jpeg": jpeg,
            }, schema=SHARD_SCHEMA), row_group_size=k)
            self.manifest.append(pa.table({
                "identity": pa.array([identity] * k, pa.string()),
                "video": pa.array([video] * k, pa.string()),
                "frame": frames,
                "source_frame": pa.array(source_frames[start:start + k], pa.int32()),
                "timestamp": pa.array(timestamps[start:start + k], pa.float64()),
                "crop_x0": pa.array(boxes[start:start + k, 0]),
                "crop_y0": pa.array(boxes[start:start + k, 1]),
                "crop_size": pa.array(boxes[start:start + k, 2]),
                "source": pa.array([source] * k, pa.string()),
                "shard": pa.array([self.shard_name] * k, pa.string()),
                "row_group": pa.array(np.full(k, self.row_groups, np.int32)),
                "row": pa.array(np.arange(k, dtype=np.int32)),
            }, schema=MANIFEST_SCHEMA))
            self.shard_bytes += jpeg.nbytes
            self.row_groups += 1
            start += k
        assert start == len(source_frames), (source, start)
        spool.unlink()
        self.clips += 1
        self.frames += start

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        table = pa.concat_tables(self.manifest) if self.manifest else MANIFEST_SCHEMA.empty_table()
        pq.write_table(table, self.out / MANIFEST, compression="zstd", **PARQUET_OPTIONS)


# --- reading ---------------------------------------------------------------------------------


def read_manifest(frames_dir: str | Path) -> pd.DataFrame:
    """The frame store's manifest, one row per stored frame (columns: `MANIFEST_SCHEMA`)."""
    path = Path(frames_dir) / MANIFEST
    if not path.is_file():
        raise GlgError(f"{path}: frame manifest not found (run the extract stage)")
    return pq.read_table(path).to_pandas()


def iter_clip(frames_dir: str | Path, identity: str,
              video: str) -> Iterator[tuple[int, np.ndarray]]:
    """A stored clip's frames in order: `(frame index, RGB uint8 (size, size, 3))`."""
    jpegs = _clip_jpegs(Path(frames_dir).resolve(), identity, video)
    for frame, data in enumerate(jpegs):
        yield frame, _decode_jpeg(data)


def read_frame(frames_dir: str | Path, identity: str, video: str, frame: int) -> np.ndarray:
    """One stored frame by key: RGB uint8 `(size, size, 3)`."""
    jpegs = _clip_jpegs(Path(frames_dir).resolve(), identity, video)
    if not 0 <= frame < len(jpegs):
        raise GlgError(f"{frames_dir}: {identity}/{video} has frames 0..{len(jpegs) - 1}, "
                       f"not {frame}")
    return _decode_jpeg(jpegs[frame])


def _decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _clip_jpegs(frames_dir: Path, identity: str, video: str) -> list[bytes]:
    manifest = frames_dir / MANIFEST
    if not manifest.is_file():
        raise GlgError(f"{manifest}: frame manifest not found (run the extract stage)")
    stat = manifest.stat()
    index = _clip_index(manifest, stat.st_mtime_ns, stat.st_size)
    if (identity, video) not in index:
        raise GlgError(f"{frames_dir}: no clip {identity}/{video} in the frame store")
    shard, groups = index[identity, video]
    return _row_groups(frames_dir / shard, groups, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _clip_index(manifest: Path, mtime_ns: int,
                size: int) -> dict[tuple[str, str], tuple[str, tuple[int, ...]]]:
    """(identity, video) -> (shard, its row groups in order), cached per manifest version."""
    columns = pq.read_table(manifest, columns=["identity", "video", "shard", "row_group"])
    index: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}
    for i, v, s, g in zip(*(columns.column(k).to_pylist() for k in columns.column_names)):
        shard, groups = index.setdefault((i, v), (s, ()))
        if not groups or groups[-1] != g:
            index[i, v] = (shard, groups + (g,))
    return index


@functools.lru_cache(maxsize=4)
def _row_groups(shard: Path, groups: tuple[int, ...], version: int) -> list[bytes]:
    """One clip's JPEG bytes: one row-group read (clips up to `ROW_GROUP_FRAMES`), the last
    few clips kept."""
    return _parquet_file(shard, version).read_row_groups(list(groups), columns=["jpeg"]).column(
        "jpeg").to_pylist()


@functools.lru_cache(maxsize=16)
def _parquet_file(shard: Path, version: int) -> pq.ParquetFile:
    if not shard.is_file():
        raise GlgError(f"{shard}: frame shard listed in the manifest is missing")
    return pq.ParquetFile(shard)

