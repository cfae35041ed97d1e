"""Test helper: a frame store written from in-memory clips, shaped like extract's output."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glg.frames import ROW_GROUP_FRAMES, SPOOL_SCHEMA, FrameStoreWriter, encode_bgr


def write_store(out: str | Path, clips: Iterable[tuple[str, str, Sequence[np.ndarray]]],
                quality: int | None = 95, fps: float = 25.0) -> None:
    """A frame store in `out` from in-memory clips `(identity, video, RGB frames)`, the same
    layout `glg.extract.extract` writes; crop boxes are the whole frame. `quality=None` stores
    the frames losslessly (PNG bytes), for tests that compare pixels."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = FrameStoreWriter(out, shard_mb=256)
    for identity, name, frames in clips:
        spool = out / f".spool-{store.clips:06d}.parquet"
        with pq.ParquetWriter(spool, SPOOL_SCHEMA, compression="none") as writer:
            bgrs = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
            data = [encode_bgr(bgr, quality) if quality is not None
                    else cv2.imencode(".png", bgr)[1].tobytes() for bgr in bgrs]
            for start in range(0, len(data), ROW_GROUP_FRAMES):
                writer.write_table(pa.table({"jpeg": pa.array(data[start:start + ROW_GROUP_FRAMES],
                                                              pa.binary())}))
        n, side = len(frames), frames[0].shape[0]
        store.add(identity, name, f"{identity}/{name}.mp4", spool, range(n),
                  [f / fps for f in range(n)], np.tile(np.float32([0, 0, side]), (n, 1)))
    store.close()
