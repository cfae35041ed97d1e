"""The image discriminator: a patch discriminator returning its intermediate features (Sec III-D).

Driving images are "real", re-enacted images "fake" (Sec III-D, thesis Eq. 3.7); the features of
every layer feed the GAN feature matching loss (thesis Eq. 3.8). The paper gives no architecture;
this is pix2pix's 70x70 PatchGAN (Isola et al. 2017), the discriminator of the works it builds on.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from glg.config import ModelConfig


class Judgement(NamedTuple):
    logits: torch.Tensor  # (B, 1, h, w): one real/fake logit per patch
    features: tuple[torch.Tensor, ...]  # D^k(I) of every layer before the logits (thesis Eq. 3.8)


class PatchDiscriminator(nn.Module):
    """Image (B, 3, S, S) -> patch logits (B, 1, h, w) and the K intermediate feature maps."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, layers = config.discriminator_channels, config.discriminator_layers
        blocks = [nn.Sequential(nn.Conv2d(3, c, 4, stride=2, padding=1),
                                nn.LeakyReLU(0.2, inplace=True))]
        width = c
        for i in range(1, layers + 1):
            out = c * 2 ** min(i, 3)
            stride = 2 if i < layers else 1  # the last feature layer keeps its size (PatchGAN)
            blocks.append(nn.Sequential(nn.Conv2d(width, out, 4, stride=stride, padding=1),
                                        nn.InstanceNorm2d(out, affine=True),
                                        nn.LeakyReLU(0.2, inplace=True)))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.to_logits = nn.Conv2d(width, 1, 4, padding=1)

    def forward(self, image: torch.Tensor) -> Judgement:
        features, x = [], image
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return Judgement(self.to_logits(x), tuple(features))
