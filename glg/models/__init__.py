"""The glg networks behind one facade, `build_model`: the `model` params pick the variant.

The paper's variants and their params: `glg.config.variants`. `model.landmark_mode` (lst: paper Eq.
3; lgan: the landmark GAN's, built here by `build_landmark_gan` and trained by its own stage)
changes only the landmarks the loader draws (`glg.data`), not the networks. Conventions of every
tensor: `glg.models.warp`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from glg.config import LganConfig, ModelConfig
from glg.errors import GlgError
from glg.face.part_crops import paste_parts
from glg.models.discriminator import Judgement, PatchDiscriminator
from glg.models.flow import FlowEstimator
from glg.models.generator import ImageGenerator
from glg.models.lgan import LandmarkDiscriminator, LandmarkGenerator
from glg.models.parts import PartsReenactor
from glg.models.warp import landmark_flow

__all__ = ["Judgement", "LandmarkDiscriminator", "LandmarkGenerator", "PatchDiscriminator",
           "Reenactment", "Reenactor", "build_discriminator", "build_landmark_gan", "build_model",
           "parameter_counts", "pick_device"]


class Reenactment(NamedTuple):
    image: torch.Tensor  # (B, 3, S, S) in [-1, 1], the re-enacted source
    flow: torch.Tensor | None  # (B, 2, S, S) unit coordinates; None without flow (Style)
    parts: tuple[torch.Tensor, ...]  # 4 x (B, 3, h_k, w_k): re-enacted parts, PART_NAMES order
    parts_image: torch.Tensor  # I_p (B, 3, S, S): the parts pasted at the driving part centres
    source_landmarks: torch.Tensor | None  # (B, 68, 2) px, ViT auxiliary regression of the source
    driving_landmarks: torch.Tensor | None  # (B, 68, 2) px, ... of the driving; None unless ViT


class Reenactor(nn.Module):
    """A batch of `glg.data.Pair`s -> `Reenactment`: flow, parts and generator outputs.

    The guiding landmarks (the driving's, paper Eq. 3's or the LGAN's, `model.landmark_mode`) arrive
    already drawn in the batch (`driving_heatmap`, `driving_heatmap_parts`, `part_centres`):
    the loader makes them (`glg.data`), so the networks are the same in every mode.
    """

    def __init__(self, config: ModelConfig, *, size: int):
        super().__init__()
        config.check()
        self.config, self.size = config, size
        self.flow_estimator = FlowEstimator(config, size) if config.flow else None
        self.parts = PartsReenactor(config)
        self.generator = ImageGenerator(config, size)

    def forward(self, batch: Any) -> Reenactment:
        """Run every network of the variant on a batch with `glg.data.Pair`'s fields (batched)."""
        if self.flow_estimator is not None:
            flow, source_landmarks, driving_landmarks = self.flow_estimator(batch.source,
                                                                            batch.driving)
            if self.config.flow_prior == "landmarks":
                flow = flow + landmark_flow(batch.source_landmarks, batch.reenacted_landmarks,
                                            self.size).to(flow.dtype)
        else:
            flow, source_landmarks, driving_landmarks = None, None, None
        parts = self.parts(batch.source_parts, batch.driving_heatmap_parts)
        parts_image = paste_parts(parts, batch.part_centres, self.size)  # I_p
        image = self.generator(batch.source, flow, parts_image, batch.driving_heatmap)
        return Reenactment(image, flow, parts, parts_image, source_landmarks, driving_landmarks)


def build_model(config: ModelConfig, *, size: int) -> Reenactor:
    """The variant `config` names, for S x S crops (S = prepare.image_px)."""
    return Reenactor(config, size=size)


def build_discriminator(config: ModelConfig) -> PatchDiscriminator:
    """The image discriminator (Sec III-D)."""
    return PatchDiscriminator(config)


def build_landmark_gan(config: LganConfig, *, size: int, identities: int,
                       face_embeddings: torch.Tensor | None = None,
                       ) -> tuple[LandmarkGenerator, LandmarkDiscriminator]:
    """The LGAN's generator and discriminator (Sec III-B-2) for `identities` people at S = size;
    `face_embeddings` (identities, D) with `lgan.identity_input=face_recognition`."""
    return (LandmarkGenerator(config, identities, size, face_embeddings),
            LandmarkDiscriminator(config, identities, size, face_embeddings))


def pick_device(name: str, key: str) -> torch.device:
    """The device the networks run on: `auto` (CUDA when present), `cpu` or `cuda`; `key` names
    the setting in errors."""
    if name not in ("auto", "cpu", "cuda"):
        raise GlgError(f"{key}: expected auto, cpu or cuda, got {name!r}")
    cuda = torch.cuda.is_available() if name == "auto" else name == "cuda"
    if cuda and not torch.cuda.is_available():
        raise GlgError(f"{key}=cuda but torch sees no CUDA device")
    return torch.device("cuda" if cuda else "cpu")


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per direct submodule (and "total"), counting each tensor once."""
    counts = {name: sum(p.numel() for p in child.parameters())
              for name, child in model.named_children()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
