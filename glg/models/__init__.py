"""The glg networks behind one facade, `build_model`: the `model` params pick the variant.

The paper's variants and their params: `glg.variants`. `model.landmark_mode=lst` changes only
the landmarks the loader draws (Eq. 3, in `glg.data`), not the networks. Conventions of every
tensor: `glg.warp`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from glg.config import ModelConfig
from glg.errors import GlgError
from glg.models.discriminator import Judgement, PatchDiscriminator
from glg.models.flow import FlowEstimator
from glg.models.generator import ImageGenerator
from glg.models.lgan import FACE_EMBEDDING_DIM, LandmarkDiscriminator, LandmarkGenerator
from glg.models.parts import PartsReenactor, crop_parts, paste_parts

__all__ = ["Judgement", "LandmarkDiscriminator", "PatchDiscriminator", "Reenactment", "Reenactor",
           "build_discriminator", "build_landmark_discriminator", "build_model", "crop_parts",
           "parameter_counts", "paste_parts"]


class Reenactment(NamedTuple):
    image: torch.Tensor  # (B, 3, S, S) in [-1, 1], the re-enacted source
    flow: torch.Tensor | None  # (B, 2, S, S) unit coordinates; None without flow (Style)
    parts: tuple[torch.Tensor, ...]  # 4 x (B, 3, h_k, w_k): re-enacted parts, PART_NAMES order
    parts_image: torch.Tensor  # I_p (B, 3, S, S): the parts pasted at the driving part centres
    source_landmarks: torch.Tensor | None  # (B, 68, 2) px, ViT auxiliary regression of the source
    driving_landmarks: torch.Tensor | None  # (B, 68, 2) px, ... of the driving; None unless ViT
    generated_landmarks: torch.Tensor | None  # (B, 68, 2) px from the LGAN; None unless lgan


class Reenactor(nn.Module):
    """A batch of `glg.data.Pair`s -> `Reenactment`: flow, parts, generator and LGAN outputs.

    The LGAN, when on, generates landmarks from (source identity, driving pose, driving AUs);
    drawing their heatmap for cross-identity inference happens outside, with the data code.
    """

    def __init__(self, config: ModelConfig, *, size: int, identities: int):
        super().__init__()
        config.check()
        self.config, self.size = config, size
        self.flow_estimator = FlowEstimator(config, size) if config.flow else None
        self.parts = PartsReenactor(config)
        self.generator = ImageGenerator(config, size)
        self.lgan = None
        if config.landmark_mode == "lgan":
            self.lgan = LandmarkGenerator(config, identities, size)
        # face_recognition: the 128-d embedding of each identity in the prepare stage's table,
        # filled by `set_identity_embeddings` from data/annotations/_identity.parquet.
        unset = torch.full((identities, FACE_EMBEDDING_DIM), float("nan"))
        self.register_buffer("identity_embeddings",
                             unset if config.identity_input == "face_recognition" else None)

    def set_identity_embeddings(self, table: torch.Tensor) -> None:
        """Fill the (identities, 128) face-recognition embeddings the LGAN reads as ID_s."""
        if self.identity_embeddings is None:
            raise GlgError("identity embeddings: model.identity_input is embedding, not "
                           "face_recognition")
        if table.shape != self.identity_embeddings.shape:
            raise GlgError(f"identity embeddings: expected shape "
                           f"{tuple(self.identity_embeddings.shape)}, got {tuple(table.shape)}")
        self.identity_embeddings.copy_(table)

    def identity_input(self, identity: torch.Tensor) -> torch.Tensor:
        """ID_s for the LGAN from (B,) identity indices: the indices, or their face embeddings."""
        if self.identity_embeddings is None:
            return identity
        embeddings = self.identity_embeddings[identity]  # (B, 128)
        if torch.isnan(embeddings).any():
            raise GlgError("model.identity_input=face_recognition: identity embeddings were never "
                           "set (call set_identity_embeddings with the _identity.parquet table)")
        return embeddings

    def forward(self, batch: Any, noise: torch.Tensor | None = None) -> Reenactment:
        """Run every network of the variant on a batch with `glg.data.Pair`'s fields (batched)."""
        if self.flow_estimator is not None:
            flow, source_landmarks, driving_landmarks = self.flow_estimator(batch.source,
                                                                            batch.driving)
        else:
            flow, source_landmarks, driving_landmarks = None, None, None
        parts = self.parts(batch.source_parts, batch.driving_heatmap_parts)
        parts_image = paste_parts(parts, batch.part_centres, self.size)  # I_p
        image = self.generator(batch.source, flow, parts_image, batch.driving_heatmap)
        generated = None
        if self.lgan is not None:
            generated = self.lgan(self.identity_input(batch.source_identity), batch.driving_pose,
                                  batch.driving_aus, noise)
        return Reenactment(image, flow, parts, parts_image, source_landmarks, driving_landmarks,
                           generated)


def build_model(config: ModelConfig, *, size: int, identities: int) -> Reenactor:
    """The variant `config` names, for S x S crops (S = prepare.size) and `identities` people."""
    if identities < 1:
        raise GlgError(f"identities: expected at least 1 known identity, got {identities}")
    return Reenactor(config, size=size, identities=identities)


def build_discriminator(config: ModelConfig) -> PatchDiscriminator:
    """The image discriminator (Sec III-D)."""
    return PatchDiscriminator(config)


def build_landmark_discriminator(config: ModelConfig, *, size: int,
                                 identities: int) -> LandmarkDiscriminator:
    """The LGAN's discriminator (Sec III-B-2); its ID_s input is `Reenactor.identity_input`'s."""
    return LandmarkDiscriminator(config, identities, size)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per direct submodule (and "total"), counting each tensor once."""
    counts = {name: sum(p.numel() for p in child.parameters())
              for name, child in model.named_children()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
