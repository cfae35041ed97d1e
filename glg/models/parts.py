"""Individual part reenactment: four CNNs for the eyes, nose and mouth (Sec III-B, thesis 3.2).

Each network takes the source's RGB crop of its part and the driving heatmap's crop of the same
part, encodes each with convolutions and max-pooling, adds the two feature maps element-wise
and decodes the sum with transposed convolutions into the re-enacted part. The four parts are
pasted on a blank S x S image I_p, centred on the driving parts' centres.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glg.config import ModelConfig
from glg.parts import PART_NAMES

BLANK = -1.0  # the blank of I_p: black in [-1, 1], as the heatmap's black background


# --- helpers -------------------------------------------------------------------------------


def part_origins(centres: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Top-left (x, y) pixels (B, 2) int64 of height x width boxes centred at `centres` (B, 2) px.

    `glg.parts.crop_origin`'s rounding in float64, so the loader's numpy crops and these agree;
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


# --- blocks --------------------------------------------------------------------------------


class PartEncoder(nn.Module):
    """(B, C, h, w) -> (B, c * 2^(L-1), h / 2^L, w / 2^L): L levels of conv, LeakyReLU, max-pool."""

    def __init__(self, in_channels: int, channels: int, levels: int):
        super().__init__()
        layers, width = [], in_channels
        for level in range(levels):
            out = channels * 2**level
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                       nn.MaxPool2d(2)]
            width = out
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PartReenactor(nn.Module):
    """Source part (B, 3, h, w) + driving heatmap part (B, 1, h, w) -> re-enacted part (B, 3, h, w).

    Sec III-B / Fig. 3(b); widths and depth are the figure's, lost, so chosen (`part_channels`,
    `part_levels`). Fully convolutional: the part size comes from the data (parts.json).
    """

    def __init__(self, channels: int, levels: int):
        super().__init__()
        self.levels = levels
        self.encode_rgb = PartEncoder(3, channels, levels)
        self.encode_heatmap = PartEncoder(1, channels, levels)
        self.decoder = nn.ModuleList()
        for level in reversed(range(levels)):
            width = channels * 2**level
            self.decoder.append(nn.ConvTranspose2d(width, max(width // 2, channels), 4,
                                                   stride=2, padding=1))
        self.activation = nn.LeakyReLU(0.2)
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, source_part: torch.Tensor, heatmap_part: torch.Tensor) -> torch.Tensor:
        height, width = source_part.shape[-2:]
        # Sizes each level had on the way down, so the transposed convolutions come back exactly.
        sizes = [(height >> level, width >> level) for level in range(self.levels)]
        x = self.encode_rgb(source_part) + self.encode_heatmap(heatmap_part)  # element-wise sum
        for layer, size in zip(self.decoder, reversed(sizes)):
            x = self.activation(layer(x, output_size=size))
        return torch.tanh(self.to_rgb(x))  # (B, 3, h, w) in [-1, 1]


# --- top-level module ----------------------------------------------------------------------


class PartsReenactor(nn.Module):
    """The four part networks of one architecture, in PART_NAMES order (Sec III-B)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.parts = nn.ModuleList([PartReenactor(config.part_channels, config.part_levels)
                                    for _ in PART_NAMES])

    def forward(self, source_parts: Sequence[torch.Tensor],
                heatmap_parts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(net(rgb, heatmap)
                     for net, rgb, heatmap in zip(self.parts, source_parts, heatmap_parts))
