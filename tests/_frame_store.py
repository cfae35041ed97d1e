"""Test helper: a frame store written from in-memory clips, shaped like extract's output."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from glg.extract import EXTRACT_COLUMNS
from glg.store.frames import FrameStoreWriter, encode_bgr


def write_store(out: str | Path, clips: Iterable[tuple[str, str, Sequence[np.ndarray]]],
                quality: int | None = 95, fps: float = 25.0) -> None:
    """A frame store in `out` from in-memory clips `(identity, video, RGB frames)`, with
    extract's columns; crop boxes are the whole frame. `quality=None` stores the frames
    losslessly (PNG files, which the store's decoder reads too), for tests that compare pixels."""
    store = FrameStoreWriter(Path(out), shard_mb=256, columns=EXTRACT_COLUMNS)
    for identity, name, frames in clips:
        bgrs = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        files = [encode_bgr(bgr, quality) if quality is not None
                 else cv2.imencode(".png", bgr)[1].tobytes() for bgr in bgrs]
        n, side = len(frames), frames[0].shape[0]
        store.add(identity, name, range(n), [len(f) for f in files], b"".join(files), {
            "source_frame": range(n), "timestamp": [f / fps for f in range(n)],
            "crop_x0": np.zeros(n), "crop_y0": np.zeros(n), "crop_size": np.full(n, side),
            "source": [f"{identity}/{name}.mp4"] * n})
    store.close()
