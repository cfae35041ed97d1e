"""The four face parts cut from and pasted into batches of images (B, C, H, W), on the tensors'
device: the loader's source parts, the training step's real driving parts and the reenactor's
I_p (Sec III-B). The rounding rule is `glg.face.parts.crop_origin`'s; points in pixels as
`glg.face.landmarks` says.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

BLANK = -1.0  # the blank of I_p: black in [-1, 1], as the heatmap's black background


def part_origins(centres: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Top-left (x, y) pixels (B, 2) int64 of height x width boxes centred at `centres` (B, 2) px.

    `glg.face.parts.crop_origin`'s rounding in float64, so the loader's numpy crops and these
    agree; computed where `centres` are, so a GPU step never waits to read them back.
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
