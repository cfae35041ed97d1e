"""The style transfer branch: StyleGAN2 modulated convolutions styled by a heatmap (Sec III-C-1).

Instead of StyleGAN2's random input, the style code w is encoded from the one-channel B-spline
heatmap of the (driving or LGAN-generated) landmarks, never from the driving's RGB, so no
driving identity leaks in through the style (Sec III-C-1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEMODULATION_EPS = 1e-8  # StyleGAN2's epsilon under the square root


# --- blocks --------------------------------------------------------------------------------


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated, demodulated convolution: (B, C, H, W), styles (B, C) -> (B, O, H, W).

    The weight is scaled per sample by the styles along its input channels; demodulation then
    rescales each output channel to unit expected norm (Karras et al. 2020, their Eq. 1-3).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 demodulate: bool = True):
        super().__init__()
        self.demodulate, self.padding = demodulate, kernel_size // 2
        fan_in = in_channels * kernel_size**2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size)
                                   / math.sqrt(fan_in))

    def forward(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        batch, in_channels, height, width = x.shape
        weight = self.weight[None] * styles[:, None, :, None, None]  # (B, O, C, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum((2, 3, 4), keepdim=True)
                                          + DEMODULATION_EPS)
        # One grouped convolution runs every sample with its own weight.
        out = F.conv2d(x.reshape(1, batch * in_channels, height, width),
                       weight.reshape(-1, in_channels, *weight.shape[-2:]).to(x.dtype),
                       padding=self.padding, groups=batch)
        return out.view(batch, -1, height, width)


class StyleEncoder(nn.Module):
    """Heatmap (B, 1, S, S) -> style code w (B, style_dim): stride-2 convolutions to 7x7, pool, MLP.

    Widths double up to style_dim (the figure is lost; chosen). The two-layer MLP stands in for
    StyleGAN2's eight-layer mapping network, whose input here is already an image code.
    """

    def __init__(self, style_dim: int, downsamplings: int):
        super().__init__()
        layers, width = [], 1
        for i in range(downsamplings):
            out = max(style_dim >> (downsamplings - 1 - i), 8)
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1),
                       nn.LeakyReLU(0.2, inplace=True)]
            width = out
        self.encode = nn.Sequential(*layers)
        self.style_mlp = nn.Sequential(nn.Linear(width, style_dim), nn.LeakyReLU(0.2, inplace=True),
                                       nn.Linear(style_dim, style_dim))

    def forward(self, heatmap: torch.Tensor) -> torch.Tensor:
        pooled = self.encode(heatmap).mean((2, 3))  # (B, C) after the 7x7 map at S = 224
        return self.style_mlp(pooled)


class StyledConv(nn.Module):
    """One generator convolution, modulated by w when styled, else conv + instance norm.

    Demodulation normalises like instance norm does, so the two settings differ only by the style.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 style_dim: int | None):
        super().__init__()
        self.styled = style_dim is not None
        if self.styled:
            self.to_styles = nn.Linear(style_dim, in_channels)
            nn.init.ones_(self.to_styles.bias)  # start as an unmodulated convolution (StyleGAN2)
            self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size)
            self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
            self.norm = nn.InstanceNorm2d(out_channels, affine=True)
        self.activation = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        if self.styled:
            return self.activation(self.conv(x, self.to_styles(w)) + self.bias)
        return self.activation(self.norm(self.conv(x)))
