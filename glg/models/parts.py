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
from glg.face.parts import PART_NAMES


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
