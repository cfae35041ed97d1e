"""The four face parts re-enacted one by one (Sec III-B): their landmarks, boxes, centres and the
one rounding rule that places a fixed-size part crop, for numpy images and for torch batches
(the loader's and the training step's crops, the reenactor's paste). Landmarks follow
`glg.face.landmarks`' pixel convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from glg.errors import GlgError
from glg.face.landmarks import LEFT_EYE, MOUTH, NOSE, RIGHT_EYE

# The four individually re-enacted parts (Sec III-B), in the order every tensor uses.
PART_NAMES = ("left_eye", "right_eye", "nose", "mouth")
PART_POINTS = {"left_eye": LEFT_EYE, "right_eye": RIGHT_EYE, "nose": NOSE, "mouth": MOUTH}
BLANK = -1.0  # the blank of I_p: black in [-1, 1], as the heatmap's black background


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
    `part_origins`): a box's middle pixel, x0 + (width - 1) / 2 in
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


# --- torch, on the tensors' device: the same rule for batches -----------------------------


def part_origins(centres: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Top-left (x, y) pixels (B, 2) int64 of height x width boxes centred at `centres` (B, 2) px.

    `crop_origin`'s rounding in float64, so the loader's numpy crops and these agree;
    computed where `centres` are, so a GPU step never waits to read them back.
    """
    half = centres.new_tensor([(width - 1) / 2.0, (height - 1) / 2.0], dtype=torch.float64)
    return torch.floor(centres.detach().float().double() - half + 0.5).long()


def _box_pixels(origins: torch.Tensor, height: int, width: int, side: tuple[int, int],
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tensors (B, 1, 1, 1), (B, 1, h, 1), (B, 1, 1, w) of the boxes at `origins` (B, 2)
    in an image of `side` (H, W) framed by a 1-pixel border: a pixel outside the image maps
    onto the border, whose row or column is 0 or H + 1 (W + 1)."""
    origins = origins.to(device)
    rows = (origins[:, 1, None] + torch.arange(height, device=device)).clamp(-1, side[0]) + 1
    cols = (origins[:, 0, None] + torch.arange(width, device=device)).clamp(-1, side[1]) + 1
    batch = torch.arange(len(origins), device=device)
    return batch[:, None, None, None], rows[:, None, :, None], cols[:, None, None, :]


def crop_parts(image: torch.Tensor, centres: torch.Tensor, sizes: Sequence[tuple[int, int]],
               fill: float = BLANK) -> tuple[torch.Tensor, ...]:
    """Crops (B, C, h_k, w_k) of `image` (B, C, H, W) centred at `centres` (B, K, 2) px.

    Outside the image reads `fill`. The inverse of `paste_parts`; it gives the driving's real
    parts, the target of the parts L1 (Sec III-D). One gather per part, on the image's device.
    """
    framed = nn.functional.pad(image, (1, 1, 1, 1), value=fill)  # the border reads `fill`
    channels = torch.arange(image.shape[1], device=image.device)[None, :, None, None]
    crops = []
    for k, (height, width) in enumerate(sizes):
        batch, rows, cols = _box_pixels(part_origins(centres[:, k], height, width), height,
                                        width, image.shape[-2:], image.device)
        crops.append(framed[batch, channels, rows, cols])  # (B, C, h, w)
    return tuple(crops)


def paste_parts(parts: Sequence[torch.Tensor], centres: torch.Tensor, size: int,
                fill: float = BLANK) -> torch.Tensor:
    """I_p (B, C, S, S): parts (B, C, h_k, w_k) pasted on a blank image at `centres` (B, K, 2) px.

    Sec III-B: "directly placed on another blank 224x224 image". Where parts overlap, the later
    one in PART_NAMES order wins; what falls outside the image is cut off (written onto a
    1-pixel border that is cut away). One scatter per part, on the parts' device.
    """
    batch, channels = parts[0].shape[:2]
    canvas = parts[0].new_full((batch, channels, size + 2, size + 2), fill)
    channel = torch.arange(channels, device=canvas.device)[None, :, None, None]
    for k, part in enumerate(parts):
        height, width = part.shape[-2:]
        index, rows, cols = _box_pixels(part_origins(centres[:, k], height, width), height,
                                        width, (size, size), canvas.device)
        canvas = canvas.index_put((index, channel, rows, cols), part)
    return canvas[:, :, 1:-1, 1:-1]
