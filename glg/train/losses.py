"""The training losses (Sec III-D, thesis 3.5, Eq. 3.5-3.9), pure functions returning scalars.

L = l1 L1(image) + parts L1(parts) + adversarial L_adv + feature_matching L_FM + perceptual L_P
(Sec III-D), plus the ViT's auxiliary landmark regression (Sec III-A): each weight is the `loss`
param of the term's name (the paper's values: `LossConfig`'s defaults) and `weighted_sum`
applies them. The perceptual loss runs a VGG19 built outside (`build_vgg19`): ImageNet weights
through torchvision when they can be had, otherwise frozen random VGG19 features seeded from
params, with one prominent warning, and the choice recorded in `VggFeatures.weights_used` for
every result.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

# The first 30 layers of an ImageNet VGG in the groups (1, 2), (3, 7), (8, 12), (13, 21),
# (22, 30), 1-based and inclusive (thesis 3.5, Eq. 3.9): slices of torchvision's
# `vgg19().features`. The thesis says only "the VGG model"; VGG19 is our reading (30 layers and
# these groups end at its ReLUs, as pix2pixHD's VGG19 loss slices it).
VGG_GROUPS = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --- L1 (thesis Eq. 3.6) --------------------------------------------------------------------------


def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over pixels and channels (thesis Eq. 3.6)."""
    return (fake - real).abs().mean()


def parts_l1(fake_parts: Sequence[torch.Tensor],
             real_parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """L1 of the re-enacted parts against the driving's, averaged over the four: Sec III-D
    fixes the weight (5), not sum or mean; the mean is our choice (a sum is 4x the weight)."""
    return torch.stack([l1(f, r) for f, r in zip(fake_parts, real_parts, strict=True)]).mean()


def landmark_regression(predicted: torch.Tensor, real: torch.Tensor, size: int) -> torch.Tensor:
    """L1 of the ViT's regressed landmarks (B, 68, 2) px, in crop sides S (Sec III-A)."""
    return (predicted - real).abs().mean() / size


# --- adversarial, DCGAN (thesis Eq. 3.7) ----------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-[log D(real) + log(1 - D(fake))] (thesis Eq. 3.7, DCGAN): real driving -> 1, re-enacted ->
    0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(fake): DCGAN's non-saturating generator loss (Radford et al. 2016)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# --- feature matching (thesis Eq. 3.8) ------------------------------------------------------------


def feature_matching(fake_features: Sequence[torch.Tensor],
                     real_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """sum_k ||D^k(I_d) - D^k(I_g)||_1 over the discriminator's layers (thesis Eq. 3.8), real
    detached."""
    return sum(l1(f, r.detach()) for f, r in zip(fake_features, real_features, strict=True))


# --- perceptual (thesis Eq. 3.9) ------------------------------------------------------------------


class VggFeatures(nn.Module):
    """Image (B, 3, H, W) in [-1, 1] -> the 5 group outputs of VGG19's first 30 layers (thesis Eq.
    3.9).

    Frozen; `weights_used` says which weights ran ("imagenet" or "random").
    """

    def __init__(self, features: nn.Sequential, weights_used: str):
        super().__init__()
        self.groups = nn.ModuleList([features[a:b] for a, b in VGG_GROUPS])
        self.weights_used = weights_used
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> VggFeatures:
        return super().train(False)  # always eval: frozen

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1.0) / 2.0 - self.mean) / self.std
        out = []
        for group in self.groups:
            x = group(x)
            out.append(x)
        return out


def build_vgg19(weights: str, seed: int) -> VggFeatures:
    """VGG19 features for the perceptual loss: `imagenet` (torchvision) or `random` (seeded).

    When `imagenet` cannot be had (offline, no cached file), ONE prominent warning is emitted and
    frozen random VGG19 features seeded by `seed` are used; `weights_used` records which ran.
    """
    if weights == "imagenet":
        try:
            vgg = torchvision.models.vgg19(weights=torchvision.models.VGG19_Weights.IMAGENET1K_V1)
            return VggFeatures(vgg.features[:30], "imagenet")
        except Exception as err:  # no network and nothing in torch.hub's cache
            warnings.warn(
                f"\n{'!' * 78}\nVGG19 ImageNet weights unavailable ({type(err).__name__}: "
                f"{str(err)[:120]}).\nThe perceptual loss (Sec III-D) uses FROZEN RANDOM VGG19 "
                f"features (seed {seed}) instead;\nresults record perceptual_weights: random. "
                f"Put vgg19-dcbb9e9d.pth in {torch.hub.get_dir()}/checkpoints to use ImageNet."
                f"\n{'!' * 78}", RuntimeWarning, stacklevel=2)
    return VggFeatures(random_vgg19_features(seed), "random")


def random_vgg19_features(seed: int) -> nn.Sequential:
    """VGG19's first 30 feature layers, torchvision's initialisation seeded, no classifier."""
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])[:30]
    generator = torch.Generator().manual_seed(seed)
    for layer in features:
        if isinstance(layer, nn.Conv2d):  # as torchvision's VGG.__init__: Kaiming, fan-out, ReLU
            std = (2.0 / (layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1])) ** 0.5
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.zero_()
    return features


def perceptual(vgg: VggFeatures, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """sum_j ||V^j(I_d) - V^j(I_g)||_1 over the 5 VGG19 groups (thesis Eq. 3.9); no gradient via
    real."""
    with torch.no_grad():
        real_features = vgg(real)
    return sum(l1(f, r) for f, r in zip(vgg(fake), real_features, strict=True))


# --- total (thesis Eq. 3.5) -----------------------------------------------------------------------

def weighted(terms: Mapping[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """Each term times its lambda (thesis Eq. 3.5): the field of the same name of a weights config
    (`LossConfig` for the reenactor, `LganConfig`'s `adversarial` and `reconstruction`)."""
    weights = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
               if isinstance(getattr(config, f.name), float)}
    unknown = sorted(set(terms) - set(weights))
    if unknown:
        raise KeyError(f"loss term {unknown[0]!r} has no weight; known: {', '.join(weights)}")
    return {name: weights[name] * value for name, value in terms.items()}


def weighted_sum(terms: Mapping[str, torch.Tensor], config: Any) -> torch.Tensor:
    """L = sum of lambda * term (thesis Eq. 3.5), each weight the config field of the term's
    name."""
    return sum(weighted(terms, config).values())
