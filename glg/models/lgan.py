"""The landmark conditional GAN (Sec III-B-2, thesis 3.3.2, Eq. 3.4).

L_reen = g(ID_s, (alpha, beta, gamma), sum_i 1[AU_i] AU_i): the generator maps the source's
identity, the driving's normalised head pose and the sum of the embeddings of the AUs present
on the driving, plus noise, to 68 (x, y) landmarks; the discriminator judges a landmark set
real or generated under the same condition. The MLP widths are Fig. 5's, lost, so chosen.

The identity is a learned embedding per known identity (the paper), or, with
`model.identity_input=face_recognition`, a projection of the source's 128-d face-recognition
embedding, which extends to identities never trained on (thesis 5.2's future work).
"""

from __future__ import annotations

import torch
from torch import nn

from glg.config import ModelConfig
from glg.errors import GlgError
from glg.landmarks import AU_IDS, N_LANDMARKS
from glg.warp import pixels_from_unit, unit_from_pixels

FACE_EMBEDDING_DIM = 128  # dlib / face_recognition's embedding (data/annotations/_identity.parquet)
POSE_SCALE = 90.0  # degrees to "normalised angles" (Eq. 3.4): +-90 deg -> +-1; the scale is chosen


# --- blocks --------------------------------------------------------------------------------


class IdentityInput(nn.Module):
    """ID_s -> (B, identity_dim): (B,) int64 indices via a learned table, or (B, 128) embeddings."""

    def __init__(self, config: ModelConfig, identities: int):
        super().__init__()
        self.mode = config.identity_input
        if self.mode == "embedding":
            self.embed = nn.Embedding(identities, config.lgan_identity_dim)
        else:
            self.embed = nn.Linear(FACE_EMBEDDING_DIM, config.lgan_identity_dim)

    def forward(self, identity: torch.Tensor) -> torch.Tensor:
        if self.mode == "embedding":
            if identity.dtype != torch.int64 or identity.dim() != 1:
                raise GlgError(f"model.identity_input=embedding needs (B,) int64 identity indices, "
                               f"got {tuple(identity.shape)} {identity.dtype}")
            return self.embed(identity)
        if identity.shape[-1:] != (FACE_EMBEDDING_DIM,):
            raise GlgError(f"model.identity_input=face_recognition needs (B, "
                           f"{FACE_EMBEDDING_DIM}) face embeddings, got {tuple(identity.shape)}")
        return self.embed(identity.float())


class Condition(nn.Module):
    """(ID_s, pose in degrees (B, 3), AUs present (B, 18)) -> condition vector (B, id + 3 + au)."""

    def __init__(self, config: ModelConfig, identities: int):
        super().__init__()
        self.identity = IdentityInput(config, identities)
        self.aus = nn.Parameter(torch.randn(len(AU_IDS), config.lgan_au_dim) * 0.1)  # AU_i
        self.width = config.lgan_identity_dim + 3 + config.lgan_au_dim

    def forward(self, identity: torch.Tensor, pose: torch.Tensor,
                aus: torch.Tensor) -> torch.Tensor:
        expression = aus.to(self.aus.dtype) @ self.aus  # sum of present AUs' embeddings (Eq. 3.4)
        return torch.cat([self.identity(identity), pose / POSE_SCALE, expression], 1)


def mlp(width_in: int, hidden: int, width_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.LeakyReLU(0.2, inplace=True),
                         nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, inplace=True),
                         nn.Linear(hidden, width_out))


# --- top-level modules ---------------------------------------------------------------------


class LandmarkGenerator(nn.Module):
    """g(ID_s, pose (B, 3) deg, AUs (B, 18), noise (B, Z)) -> landmarks (B, 68, 2) px (Eq. 3.4)."""

    def __init__(self, config: ModelConfig, identities: int, size: int):
        super().__init__()
        self.size, self.noise_dim = size, config.lgan_noise_dim
        self.condition = Condition(config, identities)
        self.to_landmarks = mlp(self.condition.width + self.noise_dim, config.lgan_hidden,
                                N_LANDMARKS * 2)

    def forward(self, identity: torch.Tensor, pose: torch.Tensor, aus: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(len(pose), self.noise_dim, device=pose.device, dtype=pose.dtype)
        x = torch.cat([self.condition(identity, pose, aus), noise], 1)
        return pixels_from_unit(self.to_landmarks(x).view(-1, N_LANDMARKS, 2), self.size)


class LandmarkDiscriminator(nn.Module):
    """(landmarks (B, 68, 2) px, ID_s, pose, AUs) -> real/fake logit (B, 1), conditioned like g."""

    def __init__(self, config: ModelConfig, identities: int, size: int):
        super().__init__()
        self.size = size
        self.condition = Condition(config, identities)
        self.to_logit = mlp(self.condition.width + N_LANDMARKS * 2, config.lgan_hidden, 1)

    def forward(self, landmarks: torch.Tensor, identity: torch.Tensor, pose: torch.Tensor,
                aus: torch.Tensor) -> torch.Tensor:
        points = unit_from_pixels(landmarks, self.size).flatten(1)  # (B, 136)
        return self.to_logit(torch.cat([points, self.condition(identity, pose, aus)], 1))
