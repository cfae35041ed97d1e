"""The image generator, a U-Net-like CNN with one skip (Sec III-C, thesis 3.4).

The source goes through three convolutions to a 58x58 feature map r; the flow, resized to
58x58, warps r into r*; I_p (the pasted re-enacted parts), resized to 58x58, is concatenated;
intermediate convolutions keep 58x58; r* is concatenated again through the skip; bilinear
upsampling and convolutions give the S x S RGB image (bilinear against checkerboard artefacts,
Sec III-C). With the style branch on, the intermediate and upsampling convolutions are
StyleGAN2 modulated convolutions styled from the landmark heatmap (Sec III-C-1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glg.config import ModelConfig
from glg.models.style import StyledConv, StyleEncoder
from glg.models.warp import ALIGN_CORNERS, flow_upsamplings, warp


# --- helpers -------------------------------------------------------------------------------


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to side x side (antialiased, in float32, when shrinking)."""
    if side < x.shape[-1]:  # the antialiased kernel has no bfloat16 CPU implementation
        return F.interpolate(x.float(), size=(side, side), mode="bilinear",
                             align_corners=ALIGN_CORNERS, antialias=True).to(x.dtype)
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=ALIGN_CORNERS)


# --- blocks --------------------------------------------------------------------------------


class SourceEncoder(nn.Module):
    """Source (B, 3, S, S) -> r (B, 4c, S/4 + 2, S/4 + 2): three convolutions (Sec III-C).

    Kernels and paddings are the figure's, lost: 7x7 at full size, then two stride-2 3x3, the
    last padded by 3 so that 224 comes to exactly the paper's 58.
    """

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.layers = nn.Sequential(
            nn.Conv2d(3, c, 7, padding=3), nn.InstanceNorm2d(c, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c, affine=True),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=3), nn.InstanceNorm2d(4 * c, affine=True),
            nn.LeakyReLU(0.2, inplace=True))

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.layers(source)


# --- top-level module ----------------------------------------------------------------------


class ImageGenerator(nn.Module):
    """(source, flow or None, I_p, heatmap (B, 1, S, S)) -> re-enacted image (B, 3, S, S).

    `flow=None` is Table V's "Style" baseline: r is used unwarped. The heatmap is read only when
    the style branch is on. `model.output: residual` (not in the paper) returns the source warped
    by the flow plus the generator's correction, which starts at zero: training starts from the
    warped source instead of from noise.
    """

    def __init__(self, config: ModelConfig, size: int):
        super().__init__()
        c, self.size = config.generator_channels, size
        style_dim = config.style_dim if config.style else None
        self.style_encoder = None
        if config.style:  # 224 -> 7 x 7 in as many stride-2 steps as the flow head goes up
            self.style_encoder = StyleEncoder(config.style_dim, flow_upsamplings(size))
        self.encode_source = SourceEncoder(c)
        self.body = nn.ModuleList(
            [StyledConv(4 * c + 3 if i == 0 else 4 * c, 4 * c, 3, style_dim)
             for i in range(config.generator_blocks)])
        self.merge_skip = StyledConv(8 * c, 4 * c, 3, style_dim)
        self.up_half = StyledConv(4 * c, 2 * c, 3, style_dim)  # at S / 2
        self.up_full = StyledConv(2 * c, c, 3, style_dim)  # at S
        self.to_rgb = nn.Conv2d(c, 3, 3, padding=1)
        self.residual = config.output == "residual"
        if self.residual:
            nn.init.zeros_(self.to_rgb.weight)
            nn.init.zeros_(self.to_rgb.bias)

    def forward(self, source: torch.Tensor, flow: torch.Tensor | None, parts_image: torch.Tensor,
                heatmap: torch.Tensor | None) -> torch.Tensor:
        w = None if self.style_encoder is None else self.style_encoder(heatmap)  # (B, style_dim)
        r = self.encode_source(source)  # (B, 4c, 58, 58)
        warped = warp(r, flow) if flow is not None else r  # r*
        x = torch.cat([warped, resize(parts_image, r.shape[-1])], 1)  # r*_cat, (B, 4c + 3, 58, 58)
        for conv in self.body:
            x = conv(x, w)  # (B, 4c, 58, 58)
        x = self.merge_skip(torch.cat([x, warped], 1), w)  # the one skip: r* again
        x = self.up_half(resize(x, self.size // 2), w)  # (B, 2c, S/2, S/2)
        x = self.up_full(resize(x, self.size), w)  # (B, c, S, S)
        if self.residual:
            base = warp(source, flow) if flow is not None else source
            return (base + self.to_rgb(x)).clamp(-1.0, 1.0)
        return torch.tanh(self.to_rgb(x))
