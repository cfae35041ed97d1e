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
from glg.parts import PART_NAMES, crop_origin

BLANK = -1.0  # the blank of I_p: black in [-1, 1], as the heatmap's black background


# --- helpers -------------------------------------------------------------------------------


def part_origins(centres: torch.Tensor, height: int, width: int) -> list[list[int]]:
    """Top-left (x, y) pixels of height x width boxes centred at `centres` (B, 2) px, per sample.

    `glg.parts.crop_origin`'s rounding, so the loader's numpy crops and these agree.
    """
    return crop_origin(centres.detach().float().cpu().numpy(), height, width).tolist()


def crop_parts(image: torch.Tensor, centres: torch.Tensor, sizes: Sequence[tuple[int, int]],
               fill: float = BLANK) -> tuple[torch.Tensor, ...]:
    """Crops (B, C, h_k, w_k) of `image` (B, C, H, W) centred at `centres` (B, K, 2) px.

    Outside the image reads `fill`. The inverse of `paste_parts`; it gives the driving's real
    parts, the target of the parts L1 (Sec III-D).
    """
    margin = max(max(h, w) for h, w in sizes)
    padded = nn.functional.pad(image, (margin,) * 4, value=fill)
    crops = []
    for k, (height, width) in enumerate(sizes):
        # A box further out than the margin reads the padding's edge, which is `fill` too.
        origins = [(min(max(x + margin, 0), padded.shape[-1] - width),
                    min(max(y + margin, 0), padded.shape[-2] - height))
                   for x, y in part_origins(centres[:, k], height, width)]
        crops.append(torch.stack([padded[b, :, y:y + height, x:x + width]
                                  for b, (x, y) in enumerate(origins)]))
    return tuple(crops)


def paste_parts(parts: Sequence[torch.Tensor], centres: torch.Tensor, size: int,
                fill: float = BLANK) -> torch.Tensor:
    """I_p (B, C, S, S): parts (B, C, h_k, w_k) pasted on a blank image at `centres` (B, K, 2) px.

    Sec III-B: "directly placed on another blank 224x224 image". Where parts overlap, the later
    one in PART_NAMES order wins; what falls outside the image is cut off.
    """
    batch, channels = parts[0].shape[:2]
    canvas = parts[0].new_full((batch, channels, size, size), fill)
    for k, part in enumerate(parts):
        height, width = part.shape[-2:]
        for b, (x0, y0) in enumerate(part_origins(centres[:, k], height, width)):
            x1, y1 = x0 + width, y0 + height
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
            if cx0 >= cx1 or cy0 >= cy1:
                continue  # the whole part lies outside the image
            canvas[b, :, cy0:cy1, cx0:cx1] = part[b, :, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    return canvas


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
