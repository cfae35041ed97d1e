"""The landmark conditional GAN (Sec III-B-2, thesis 3.3.2, Eq. 3.4).

L_reen = g(ID_s, (alpha, beta, gamma), sum_i 1[AU_i] AU_i): the generator maps the source's
identity, the driving's normalised head pose and the sum of the embeddings of the AUs present
on the driving (plus noise only when `lgan.noise_dim` > 0; thesis Eq. 3.4 has none) to 68 (x, y)
landmarks; the discriminator judges a landmark set real or generated under the same condition.
The MLP widths are Fig. 5's, lost, so chosen (the `lgan` params).

ID_s is always a (B,) identity index, a row of the prepare stage's identity table. With
`lgan.identity_input=embedding` it selects a learned embedding per known identity (the paper);
with `face_recognition` it selects that person's face-recognition embedding (a frozen buffer,
`glg.store.annotations.read_identity_embeddings`), projected by a learned layer, which extends to
identities never trained on (thesis 5.2's future work).
"""

from __future__ import annotations

import torch
from torch import nn

from glg.config import LganConfig
from glg.errors import GlgError
from glg.face.landmarks import AU_IDS, N_LANDMARKS
from glg.models.warp import pixels_from_unit, unit_from_pixels

# degrees to "normalised angles" (thesis Eq. 3.4): +-90 deg -> +-1; the scale is chosen
POSE_SCALE = 90.0


# --- blocks --------------------------------------------------------------------------------


class IdentityInput(nn.Module):
    """(B,) identity indices -> (B, identity_dim): a learned table, or projected face embeddings."""

    def __init__(self, config: LganConfig, identities: int, face_embeddings: torch.Tensor | None):
        super().__init__()
        if (config.identity_input == "face_recognition") != (face_embeddings is not None):
            raise GlgError(f"lgan.identity_input={config.identity_input}: face embeddings are "
                           f"{'needed' if face_embeddings is None else 'not used'}")
        if face_embeddings is None:
            self.embed = nn.Embedding(identities, config.identity_dim)
            self.register_buffer("face_embeddings", None)
        else:
            if face_embeddings.shape[0] != identities:
                raise GlgError(f"face embeddings: expected one row per identity ({identities}), "
                               f"got {face_embeddings.shape[0]}")
            self.embed = nn.Linear(face_embeddings.shape[1], config.identity_dim)
            self.register_buffer("face_embeddings", face_embeddings.float().clone())  # (I, D)

    def forward(self, identity: torch.Tensor) -> torch.Tensor:
        if self.face_embeddings is None:
            return self.embed(identity)
        return self.embed(self.face_embeddings[identity])


class Condition(nn.Module):
    """(ID_s (B,), pose in degrees (B, 3), AUs present (B, 18)) -> condition (B, id + 3 + au)."""

    def __init__(self, config: LganConfig, identities: int, face_embeddings: torch.Tensor | None):
        super().__init__()
        self.identity = IdentityInput(config, identities, face_embeddings)
        self.aus = nn.Parameter(torch.randn(len(AU_IDS), config.au_dim) * 0.1)  # AU_i
        self.width = config.identity_dim + 3 + config.au_dim

    def forward(self, identity: torch.Tensor, pose: torch.Tensor,
                aus: torch.Tensor) -> torch.Tensor:
        expression = aus.to(self.aus.dtype) @ self.aus  # thesis Eq. 3.4: present AUs' sum
        return torch.cat([self.identity(identity), pose / POSE_SCALE, expression], 1)


def mlp(width_in: int, hidden: int, width_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.LeakyReLU(0.2, inplace=True),
                         nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, inplace=True),
                         nn.Linear(hidden, width_out))


# --- top-level modules ---------------------------------------------------------------------


class LandmarkGenerator(nn.Module):
    """g(ID_s (B,), pose (B, 3) deg, AUs (B, 18), noise (B, Z)) -> landmarks (B, 68, 2) px, thesis
    Eq. 3.4.

    Without `noise` (or with `lgan.noise_dim` 0) the noise input is zero, the prior's mean: the
    loader's and the evaluation's landmarks are then one deterministic set per condition.
    """

    def __init__(self, config: LganConfig, identities: int, size: int,
                 face_embeddings: torch.Tensor | None = None):
        super().__init__()
        self.size, self.noise_dim = size, config.noise_dim
        self.condition = Condition(config, identities, face_embeddings)
        self.to_landmarks = mlp(self.condition.width + self.noise_dim, config.hidden,
                                N_LANDMARKS * 2)

    def add_face(self, face_embedding: torch.Tensor) -> int:
        """Append a person's face embedding (D,) as a new identity row and return its index:
        with `lgan.identity_input=face_recognition` the generator places anyone's landmarks."""
        identity = self.condition.identity
        if identity.face_embeddings is None:
            raise GlgError("lgan.identity_input=embedding: the generator knows only the people "
                           "it was trained on")
        expected = tuple(identity.face_embeddings.shape[1:])
        if tuple(face_embedding.shape) != expected:
            raise GlgError(f"face embedding: expected shape {expected}, "
                           f"got {tuple(face_embedding.shape)}")
        identity.face_embeddings = torch.cat([identity.face_embeddings,
                                              face_embedding.to(identity.face_embeddings)[None]])
        return len(identity.face_embeddings) - 1

    def forward(self, identity: torch.Tensor, pose: torch.Tensor, aus: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = pose.new_zeros(len(pose), self.noise_dim)
        x = torch.cat([self.condition(identity, pose, aus), noise], 1)
        return pixels_from_unit(self.to_landmarks(x).view(-1, N_LANDMARKS, 2), self.size)


class LandmarkDiscriminator(nn.Module):
    """(landmarks (B, 68, 2) px, ID_s, pose, AUs) -> real/fake logit (B, 1), conditioned like g."""

    def __init__(self, config: LganConfig, identities: int, size: int,
                 face_embeddings: torch.Tensor | None = None):
        super().__init__()
        self.size = size
        self.condition = Condition(config, identities, face_embeddings)
        self.to_logit = mlp(self.condition.width + N_LANDMARKS * 2, config.hidden, 1)

    def forward(self, landmarks: torch.Tensor, identity: torch.Tensor, pose: torch.Tensor,
                aus: torch.Tensor) -> torch.Tensor:
        points = unit_from_pixels(landmarks, self.size).flatten(1)  # (B, 136)
        return self.to_logit(torch.cat([points, self.condition(identity, pose, aus)], 1))
