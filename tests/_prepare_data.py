"""Test helper: a small frame store and annotation table on disk, shaped like extract's and
annotate's outputs, for the prepare and data tests (and the loader benchmark), and the prepared
frames read back as a table."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa

from _frame_store import write_store

from glg.face.landmarks import AU_PRESENCE, AU_SCORE, X_COLUMNS, Y_COLUMNS
from glg.face.mean_face import MEAN_FACE_3D
from glg.store.annotations import annotation_schema, clear_annotations, write_shard
from glg.store.prepared import SPLITS, PreparedFrames


def face_landmarks(rng: np.random.Generator, side: int, scale: float, jitter: float) -> np.ndarray:
    """(68, 2) frontal landmarks centred in a side x side frame, interocular ~ scale * side."""
    face = MEAN_FACE_3D[:, :2] / 65.7 * scale * side + side / 2
    return face + rng.normal(0.0, jitter * side, size=2) + rng.normal(0.0, 0.004 * side, (68, 2))


def write_dataset(root: Path, identities: int = 4, clips: int = 2, frames: int = 8,
                  side: int = 64, seed: int = 0, failed: float = 0.0,
                  photo: bool = False, marker: bool = False) -> tuple[Path, Path]:
    """A frame store `root/frames` and annotations `root/annotations`; returns both paths.

    Identity k's face is `0.3 + 0.02 k` of the frame wide, so identities differ in landmark
    statistics; each frame's colour encodes (identity, clip, frame) for tests that check what
    was stored. With `photo`, frames are a tinted photograph stored as JPEG (95), as extract
    stores them, for realistic decoding times. With `marker`, a 2 x 2 white block is painted
    where the nose tip (point 30) is and the point moved to the block's centre, for tests that
    check landmarks still mark the same image content after a resize.
    """
    rng = np.random.default_rng(seed)
    if photo:
        from skimage.data import astronaut
        picture = cv2.resize(astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    frames_dir, annotations_dir = root / "frames", root / "annotations"
    frames_dir.mkdir(parents=True)
    annotations_dir.mkdir(parents=True)
    rows, clip_frames = [], []
    for i in range(identities):
        for c in range(clips):
            identity, name = f"id{i:02d}", f"clip{c}"
            images = []
            for f in range(frames):
                image = np.full((side, side, 3), (40 * i % 256, 60 * c % 256, 20 * f % 256),
                                np.uint8)
                if photo:
                    image = cv2.addWeighted(picture, 0.8, image, 0.2, 0.0)
                images.append(image)
                points = face_landmarks(rng, side, 0.3 + 0.02 * i, 0.02)
                if marker:
                    x, y = np.floor(points[30]).astype(int)
                    image[y:y + 2, x:x + 2] = 255
                    points[30] = (x + 0.5, y + 0.5)  # pixel centres at integers: glg.face.landmarks
                row = {"identity": identity, "video": name, "frame": f,
                       "success": bool(rng.random() >= failed), "confidence": 1.0,
                       "box_x0": 0.0, "box_y0": 0.0, "box_x1": float(side), "box_y1": float(side),
                       "pitch": 1.0 * f, "yaw": -2.0, "roll": 0.5}
                row.update(zip(X_COLUMNS, points[:, 0]))
                row.update(zip(Y_COLUMNS, points[:, 1]))
                row.update((a, np.int8((f + k) % 2)) for k, a in enumerate(AU_PRESENCE))
                row.update((a, np.float32(np.nan)) for a in AU_SCORE)
                rows.append(row)
            clip_frames.append((identity, name, images))
    # JPEG (95) as extract stores them when `photo`, else lossless so tests can compare colours.
    write_store(frames_dir, clip_frames, quality=95 if photo else None)
    write_annotations(annotations_dir, pd.DataFrame(rows))
    return frames_dir, annotations_dir


def write_annotations(annotations_dir: Path, table: pd.DataFrame) -> None:
    """`table` as annotate's one shard, typed by the annotation schema (restricted to the
    columns the table has, so a test can leave one out)."""
    clear_annotations(annotations_dir)
    schema = pa.schema([f for f in annotation_schema() if f.name in table.columns])
    write_shard(annotations_dir, 0, [pa.Table.from_pandas(table, schema, preserve_index=False)])


def prepared_table(prepared_dir: Path) -> pd.DataFrame:
    """The prepared frames as one table read through `PreparedFrames`: `identity`, `video`,
    `frame`, `identity_index`, `split` and the landmarks' `x_i`, `y_i`, one row per frame."""
    frames = PreparedFrames(prepared_dir)
    clips = frames.clips.iloc[np.asarray(frames.clip)].reset_index(drop=True)
    table = pd.DataFrame({"identity": clips["identity"], "video": clips["video"],
                          "frame": np.asarray(frames.frame),
                          "identity_index": np.asarray(frames.identity),
                          "split": np.asarray(SPLITS, dtype=object)[np.asarray(frames.split)]})
    landmarks = np.asarray(frames.landmarks)
    return pd.concat([table, pd.DataFrame(landmarks[..., 0], columns=list(X_COLUMNS)),
                      pd.DataFrame(landmarks[..., 1], columns=list(Y_COLUMNS))], axis=1)
