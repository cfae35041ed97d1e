"""The four face parts re-enacted one by one (Sec III-B): their landmarks, boxes, centres and the
one rounding rule that places a fixed-size part crop, for numpy here and for torch batches in
`glg.face.part_crops`. Landmarks follow `glg.face.landmarks`' pixel convention.
"""

from __future__ import annotations

import numpy as np

from glg.errors import GlgError
from glg.face.landmarks import LEFT_EYE, MOUTH, NOSE, RIGHT_EYE

# The four individually re-enacted parts (Sec III-B), in the order every tensor uses.
PART_NAMES = ("left_eye", "right_eye", "nose", "mouth")
PART_POINTS = {"left_eye": LEFT_EYE, "right_eye": RIGHT_EYE, "nose": NOSE, "mouth": MOUTH}


def part_boxes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and sizes of the four parts' landmark boxes, in PART_NAMES order.

    (..., 68, 2) -> centres (..., 4, 2) as (x, y) and sizes (..., 4, 2) as (width, height).
    A part's centre is the middle of its landmarks' bounding box (Sec III-B: crops are "cropped
    around the centre point of corresponding landmark coordinates").
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    lows = np.stack([landmarks[..., PART_POINTS[p], :].min(axis=-2) for p in PART_NAMES], axis=-2)
    highs = np.stack([landmarks[..., PART_POINTS[p], :].max(axis=-2) for p in PART_NAMES], axis=-2)
    return (lows + highs) / 2.0, highs - lows


def part_centres(landmarks: np.ndarray) -> np.ndarray:
    """(..., 4, 2) centres (x, y) of the four parts of (..., 68, 2) landmarks, PART_NAMES order."""
    return part_boxes(landmarks)[0]


def crop_origin(centres: np.ndarray, height: int, width: int) -> np.ndarray:
    """Top-left (x0, y0) integer pixels (..., 2) of height x width boxes centred on (..., 2) (x, y).

    The one rounding rule for cutting a part out and for pasting a re-enacted part back (torch's:
    `glg.face.part_crops.part_origins`): a box's middle pixel, x0 + (width - 1) / 2 in
    `glg.face.landmarks`' convention, is the one nearest to the centre (halves round up).
    """
    half = (np.array([width, height]) - 1) / 2.0
    return np.floor(np.asarray(centres, dtype=np.float64) - half + 0.5).astype(np.int64)


def crop_part(image: np.ndarray, centre: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, ...) window of an (H, W, ...) image centred on (x, y), zero-padded."""
    if not np.isfinite(np.asarray(centre, dtype=np.float64)).all():
        raise GlgError(f"part centre: expected finite (x, y) pixels, got {tuple(centre)}")
    x0, y0 = crop_origin(centre, height, width).tolist()
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + width, image.shape[1]), min(y0 + height, image.shape[0])
    if xa < xb and ya < yb:
        out[ya - y0:yb - y0, xa - x0:xb - x0] = image[ya:yb, xa:xb]
    return out
