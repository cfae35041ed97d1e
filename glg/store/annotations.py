"""The annotation format: what `annotate` writes to `data/annotations/` and later stages read.

- `shard-NNNNN.parquet`: one row per stored frame (`annotation_schema()`), clips in sorted order,
  at most `annotate.shard_rows` rows a shard, failed frames kept with `success` False;
- `_identity.parquet`: one identity embedding per clip (`identity_schema()`).
Both carry `SCHEMA_VERSION` in their Parquet metadata; `read_annotations` (a table) and
`iter_annotation_clips` (clip by clip, in constant memory) read them and check it
(`pd.read_parquet("data/annotations")` also works: it skips `_identity.parquet`).
Boxes and landmarks are in stored-frame pixels (convention: `glg.face.landmarks`), pose in degrees
(`glg.face.landmarks.rotation_matrix`). A backend (`Backend`, one per file in `glg/annotate/`)
returns one `ClipResult` per clip; `to_table` turns it into rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glg.errors import GlgError, reading
from glg.face.landmarks import (AU_IDS, AU_PRESENCE, AU_SCORE, N_LANDMARKS, POSE_COLUMNS, X_COLUMNS,
                                Y_COLUMNS)
from glg.store.writers import shard_name

SCHEMA_VERSION = "1"
SHARD_SUFFIX = ".parquet"
SHARD_GLOB = f"shard-*{SHARD_SUFFIX}"
IDENTITY_FILE = "_identity.parquet"  # leading underscore: pd.read_parquet(dir) skips it
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


def annotation_schema() -> pa.Schema:
    """The explicit schema of the annotation shards, version in its metadata."""
    fields = [
        pa.field("identity", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("frame", pa.int64(), nullable=False),  # index of the stored frame in its clip
        pa.field("success", pa.bool_(), nullable=False),  # False: no face or failed fit
        pa.field("confidence", pa.float32()),  # 0..1, the backend's trust in the fit
        *[pa.field(c, pa.float32()) for c in BOX_COLUMNS],  # face box, stored-frame pixels
        *[pa.field(c, pa.float32()) for c in X_COLUMNS],  # landmarks, stored-frame pixels
        *[pa.field(c, pa.float32()) for c in Y_COLUMNS],
        *[pa.field(c, pa.float32()) for c in POSE_COLUMNS],  # degrees, as glg.face.landmarks
        *[pa.field(c, pa.int8(), nullable=False) for c in AU_PRESENCE],  # 0/1
        *[pa.field(c, pa.float32()) for c in AU_SCORE],  # NaN where the backend cannot tell
    ]
    return pa.schema(fields, metadata={"glg.schema_version": SCHEMA_VERSION,
                                       "glg.table": "annotations"})


def identity_schema() -> pa.Schema:
    """Schema of `_identity.parquet`: one L2-normalised embedding per clip."""
    return pa.schema([
        pa.field("identity", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32())),  # null when no frame succeeded
        pa.field("backend", pa.string(), nullable=False),
    ], metadata={"glg.schema_version": SCHEMA_VERSION, "glg.table": "identity"})


class ClipResult(NamedTuple):
    """One clip's annotations, N frames; NaN rows where `success` is False."""

    frame: np.ndarray  # (N,) int64
    success: np.ndarray  # (N,) bool
    confidence: np.ndarray  # (N,) float32
    box: np.ndarray  # (N, 4) float32, x0 y0 x1 y1
    landmarks: np.ndarray  # (N, 68, 2) float32
    pose: np.ndarray  # (N, 3) float32, pitch yaw roll in degrees
    au_presence: np.ndarray  # (N, 18) int8, AU_IDS order
    au_score: np.ndarray  # (N, 18) float32
    embedding: np.ndarray | None  # (D,) float32, L2-normalised, or None


def failed_result(n: int) -> ClipResult:
    """N failed frames: no face, NaN everywhere, AU presence 0."""
    k = len(AU_IDS)
    return ClipResult(np.arange(n, dtype=np.int64), np.zeros(n, bool), np.zeros(n, np.float32),
                      np.full((n, 4), np.nan, np.float32),
                      np.full((n, N_LANDMARKS, 2), np.nan, np.float32),
                      np.full((n, 3), np.nan, np.float32), np.zeros((n, k), np.int8),
                      np.full((n, k), np.nan, np.float32), None)


class Backend(Protocol):
    """Annotates the frames of one clip, in order; built once per worker process."""

    name: str

    def annotate_clip(self, frames: Iterable[tuple[int, np.ndarray]]) -> ClipResult:
        """Frames are (index, RGB uint8 (H, W, 3)); returns one row per frame, none dropped."""
        ...


def to_table(identity: str, video: str, result: ClipResult) -> pa.Table:
    """One clip's result as rows of `annotation_schema()`."""
    n = len(result.frame)
    columns: dict[str, np.ndarray] = {
        "identity": np.full(n, identity, dtype=object),
        "video": np.full(n, video, dtype=object),
        "frame": result.frame.astype(np.int64),
        "success": result.success.astype(bool),
        "confidence": result.confidence.astype(np.float32),
    }
    for k, c in enumerate(BOX_COLUMNS):
        columns[c] = result.box[:, k].astype(np.float32)
    for k in range(N_LANDMARKS):
        columns[X_COLUMNS[k]] = result.landmarks[:, k, 0].astype(np.float32)
    for k in range(N_LANDMARKS):
        columns[Y_COLUMNS[k]] = result.landmarks[:, k, 1].astype(np.float32)
    for k, c in enumerate(POSE_COLUMNS):
        columns[c] = result.pose[:, k].astype(np.float32)
    for k, c in enumerate(AU_PRESENCE):
        columns[c] = result.au_presence[:, k].astype(np.int8)
    for k, c in enumerate(AU_SCORE):
        columns[c] = result.au_score[:, k].astype(np.float32)
    schema = annotation_schema()
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema],
                                schema=schema)


# --- writing ---------------------------------------------------------------------------------


def clear_annotations(out_dir: Path) -> None:
    """Remove a previous run's shards and identity file (and nothing else) from `out_dir`."""
    for f in [*Path(out_dir).glob(SHARD_GLOB), Path(out_dir) / IDENTITY_FILE]:
        f.unlink(missing_ok=True)


def write_shard(out_dir: Path, index: int, tables: Sequence[pa.Table]) -> None:
    """Shard `index` from tables of annotation rows (none: an empty shard), versioned."""
    schema = annotation_schema()
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    pq.write_table(table.replace_schema_metadata(schema.metadata),
                   Path(out_dir) / shard_name(index, SHARD_SUFFIX), compression="zstd")


def write_identities(out_dir: Path, rows: Sequence[dict]) -> None:
    """`_identity.parquet` from one dict per clip (`identity_schema()` keys; `embedding` (D,)
    float32 or None)."""
    table = pa.Table.from_pylist(
        [{**r, "embedding": None if r["embedding"] is None else r["embedding"].tolist()}
         for r in rows], schema=identity_schema())
    pq.write_table(table, Path(out_dir) / IDENTITY_FILE)


# --- reading ---------------------------------------------------------------------------------


def read_annotations(annotations_dir: str | Path, columns: Sequence[str] | None = None,
                     identities: Sequence[str] | None = None) -> pd.DataFrame:
    """The annotation rows, only `columns` and `identities`' rows if given (so memory stays
    bounded on large data); every shard's schema version and the asked columns are checked."""
    shards = _checked_shards(annotations_dir, columns)
    columns = None if columns is None else list(columns)
    if identities is not None and not identities:
        empty = annotation_schema().empty_table()
        return (empty if columns is None else empty.select(columns)).to_pandas()
    filters = None if identities is None else [("identity", "in", sorted(identities))]
    return pd.read_parquet([str(s) for s in shards], columns=columns, filters=filters)


def iter_annotation_clips(annotations_dir: str | Path,
                          columns: Sequence[str]) -> Iterator[tuple[str, str, pa.Table]]:
    """`(identity, video, rows)` of every annotated clip in stored order, only `columns`.

    Reads one row group at a time, so memory holds a row group and a clip, whatever the
    dataset's size. Shards and columns are checked before the first clip is returned; a clip
    whose rows are not together, in (identity, video) order as annotate writes them, is an error.
    """
    shards = _checked_shards(annotations_dir, columns)
    columns = list(dict.fromkeys(["identity", "video", *columns]))

    def clips() -> Iterator[tuple[str, str, pa.Table]]:
        held: list[pa.Table] = []  # the rows of the clip in hand so far
        last: tuple[str, str] | None = None
        for shard in shards:
            parquet = pq.ParquetFile(shard)
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=columns)
                keys = list(zip(table["identity"].to_pylist(), table["video"].to_pylist()))
                starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
                for begin, end in zip(starts, starts[1:] + [len(keys)]):
                    key = keys[begin]
                    if key != last and last is not None:
                        if key < last:
                            raise GlgError(f"{shard}: rows of {key[0]}/{key[1]} come after "
                                           f"{last[0]}/{last[1]}; annotation rows must be in "
                                           "(identity, video) order (re-run annotate)")
                        yield *last, pa.concat_tables(held)
                        held = []
                    held.append(table.slice(begin, end - begin))
                    last = key
        if last is not None:
            yield *last, pa.concat_tables(held)

    return clips()


def _checked_shards(annotations_dir: str | Path, columns: Sequence[str] | None) -> list[Path]:
    """The annotation shards in order, each one's schema version and `columns` checked."""
    annotations_dir = Path(annotations_dir)
    if not annotations_dir.is_dir():
        raise GlgError(f"{annotations_dir}: annotations folder not found (run annotate first)")
    shards = sorted(annotations_dir.glob(SHARD_GLOB))
    if not shards:
        raise GlgError(f"{annotations_dir}: no annotation shards ({SHARD_GLOB}); "
                       "run annotate first")
    for shard in shards:
        try:
            schema = pq.read_schema(shard)
        except (OSError, pa.ArrowException) as err:
            raise GlgError(f"{shard}: not a readable Parquet file ({err})") from None
        version = (schema.metadata or {}).get(b"glg.schema_version", b"").decode()
        if version != SCHEMA_VERSION:
            raise GlgError(f"{shard}: annotation schema version {version!r}, expected "
                           f"{SCHEMA_VERSION!r}; re-run annotate")
        missing = [c for c in columns or () if c not in schema.names]
        if missing:
            raise GlgError(f"{shard}: annotation column {missing[0]!r} missing")
    return shards


def read_identity_embeddings(annotations_dir: str | Path, identities: Sequence[str]) -> np.ndarray:
    """(I, D) float32: per identity, in the order given, the L2-normalised mean of its clips'
    embeddings from `_identity.parquet` (a person's face embedding, e.g. the LGAN's ID_s)."""
    path = Path(annotations_dir) / IDENTITY_FILE
    if not path.is_file():
        raise GlgError(f"{path}: identity embeddings not found (run annotate first)")
    with reading(path, "identity embedding table"):
        metadata = pq.read_schema(path).metadata or {}
    version = metadata.get(b"glg.schema_version", b"").decode()
    if version != SCHEMA_VERSION:
        raise GlgError(f"{path}: identity schema version {version!r}, expected "
                       f"{SCHEMA_VERSION!r}; re-run annotate")
    with reading(path, "identity embedding table"):
        table = pd.read_parquet(path, columns=["identity", "embedding"])
    table = table.dropna(subset=["embedding"])
    rows = []
    for name in identities:
        own = table.loc[table["identity"] == name, "embedding"]
        if own.empty:
            raise GlgError(f"{path}: no clip of identity {name!r} has an embedding")
        mean = np.stack(own.to_list()).astype(np.float64).mean(0)
        rows.append(mean / max(np.linalg.norm(mean), 1e-12))
    return np.stack(rows).astype(np.float32)
