"""Optical flow estimator: a ViT or ResNet-34 trunk and the flow head (Sec III-A, thesis 3.1).

Both trunks turn one image into two flow features u (B, 2, D); the ViT also regresses the
image's 68 landmarks from a third token (an auxiliary task, Sec III-A). The head compresses
u_s and u_d to 2x128 each, flattens and concatenates them (512), maps them with an MLP to 6272
= 128x7x7 and decodes that with transposed convolutions into a flow (B, 2, S, S) in the
unit coordinates of `glg.models.warp`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision
from einops import rearrange
from torch import nn

from glg.config import ModelConfig
from glg.errors import GlgError
from glg.face.landmarks import N_LANDMARKS
from glg.models.warp import FLOW_MAP_SIDE, flow_upsamplings, pixels_from_unit

FLOW_TOKENS = 2  # rows of t that carry flow features (Sec III-A)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of the one-channel patch input


# --- blocks --------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Q = vW_q, K = vW_k, V = vW_v; softmax(QK^T / sqrt(d_k)) V (paper Eq. 1-2), then a
    projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.to_qkv(tokens), "b n (three h d) -> three b h n d",
                            three=3, h=self.heads)
        mixed = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, D/h)
        return self.to_out(rearrange(mixed, "b h n d -> b n (h d)"))


class TransformerBlock(nn.Module):
    """One pre-norm ViT block: self-attention then an MLP, each with a residual (Sec III-A)."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attention(self.norm_attention(tokens))
        return tokens + self.mlp(self.norm_mlp(tokens))


class ViTFeatures(nn.Module):
    """Image (B, 3, S, S) -> flow features (B, 2, D) and landmarks (B, 68, 2) in pixels (Sec III-A).

    A patch flattens to 196 values in thesis 3.1, which is one channel of 14x14: by default
    (`vit_patch_input=luma`) the RGB image is turned to luma first, as the text's count says;
    flow and landmark positions are geometric and need no colour. `rgb` gives 588 values.
    Three blocks at d = 768 with ViT-Base's MLP of 3072 hold 21.3M parameters, 12% above the
    paper's "19M" (Sec IV-D); the text gives no MLP width, so ViT-Base's is kept.
    """

    def __init__(self, config: ModelConfig, size: int):
        super().__init__()
        patch, dim = config.vit_patch, config.vit_dim
        if size % patch:
            raise GlgError(f"model.vit_patch must divide prepare.image_px ({size}), got {patch}")
        self.size, self.patch, self.luma = size, patch, config.vit_patch_input == "luma"
        channels = 1 if self.luma else 3
        patches = (size // patch) ** 2  # 256 at 224 (Sec III-A)
        self.to_patches = nn.Linear(channels * patch * patch, dim)
        self.tokens = nn.Parameter(torch.randn(1, FLOW_TOKENS + 1, dim) * 0.02)  # t, 3 x 768
        # Positions are not described; a learned embedding as in ViT (Dosovitskiy et al.).
        self.positions = nn.Parameter(torch.randn(1, FLOW_TOKENS + 1 + patches, dim) * 0.02)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, config.vit_heads, config.vit_mlp)
                                      for _ in range(config.vit_layers)])
        self.norm = nn.LayerNorm(dim)
        self.to_landmarks = nn.Linear(dim, N_LANDMARKS * 2)
        if self.luma:
            self.register_buffer("luma_weights", torch.tensor(LUMA).view(1, 3, 1, 1),
                                 persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.luma:
            image = (image * self.luma_weights.to(image.dtype)).sum(1, keepdim=True)
        patches = rearrange(image, "b c (h p) (w q) -> b (h w) (c p q)", p=self.patch, q=self.patch)
        tokens = torch.cat([self.tokens.expand(len(image), -1, -1), self.to_patches(patches)], 1)
        tokens = self.norm(self.blocks(tokens + self.positions))  # (B, 3 + N, D): 259 at 224
        landmarks = self.to_landmarks(tokens[:, FLOW_TOKENS]).view(-1, N_LANDMARKS, 2)
        return tokens[:, :FLOW_TOKENS], pixels_from_unit(landmarks, self.size)


class ResNetFeatures(nn.Module):
    """Image (B, 3, S, S) -> flow features (B, 2, D): ResNet-34's pooled 512 projected to 2 x 768.

    The paper names the landmark token only for the ViT, so this trunk regresses no landmarks.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        trunk = torchvision.models.resnet34(weights=resnet34_weights(config.resnet_weights))
        trunk.fc = nn.Identity()  # keep up to the global average pool (Sec III-A)
        self.trunk = trunk
        self.to_tokens = nn.Linear(512, FLOW_TOKENS * config.vit_dim)
        self.dim = config.vit_dim

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, None]:
        pooled = self.trunk(image)  # (B, 512)
        return self.to_tokens(pooled).view(-1, FLOW_TOKENS, self.dim), None


def resnet34_weights(choice: str):
    """torchvision's ImageNet weights for ResNet-34 when asked and already cached, else None."""
    if choice == "none":
        return None
    weights = torchvision.models.ResNet34_Weights.IMAGENET1K_V1
    try:
        weights.get_state_dict(progress=False)  # fetches into torch.hub's cache if it can
    except Exception as err:  # offline: no silent fallback for an explicit request
        raise GlgError(f"model.resnet_weights=imagenet: torchvision could not provide "
                       f"{weights} ({type(err).__name__}); use none or fill torch.hub's cache "
                       f"at {torch.hub.get_dir()}") from None
    return weights


class FlowHead(nn.Module):
    """(u_s, u_d) each (B, 2, D) -> flow (B, 2, S, S) in units (Sec III-A)."""

    def __init__(self, config: ModelConfig, size: int):
        super().__init__()
        code, channels = config.flow_code, config.flow_channels
        self.channels = channels
        self.compress = nn.Linear(config.vit_dim, code)  # 2x768 -> 2x128 per image
        self.to_map = nn.Sequential(
            nn.Linear(2 * FLOW_TOKENS * code, config.flow_hidden), nn.ReLU(inplace=True),
            nn.Linear(config.flow_hidden, channels * FLOW_MAP_SIDE**2))  # 512 -> 6272
        # Transposed convolutions 7 -> 14 -> ... -> S; widths halve (figure lost, chosen).
        layers, width = [], channels
        for _ in range(flow_upsamplings(size)):
            out = max(width // 2, 8)
            layers += [nn.ConvTranspose2d(width, out, 4, stride=2, padding=1),
                       nn.LeakyReLU(0.2, inplace=True)]
            width = out
        self.upsample = nn.Sequential(*layers)
        self.to_flow = nn.Conv2d(width, 2, 3, padding=1)
        # Start from the zero flow (the identity warp) so early training does not scramble r.
        nn.init.zeros_(self.to_flow.weight)
        nn.init.zeros_(self.to_flow.bias)

    def forward(self, source_features: torch.Tensor,
                driving_features: torch.Tensor) -> torch.Tensor:
        codes = torch.cat([self.compress(source_features).flatten(1),
                           self.compress(driving_features).flatten(1)], 1)  # (B, 512)
        f = self.to_map(codes).view(-1, self.channels, FLOW_MAP_SIDE, FLOW_MAP_SIDE)
        return self.to_flow(self.upsample(f))  # (B, 2, S, S)


# --- top-level module ----------------------------------------------------------------------


class FlowEstimate(NamedTuple):
    flow: torch.Tensor  # (B, 2, S, S), unit coordinates (glg.models.warp)
    source_landmarks: torch.Tensor | None  # (B, 68, 2) px, ViT auxiliary output; None for ResNet
    driving_landmarks: torch.Tensor | None  # (B, 68, 2) px


class FlowEstimator(nn.Module):
    """Source and driving (B, 3, S, S) -> backward flow, driving pose to source (Sec III-A).

    One trunk (`model.backbone`) encodes both images with shared weights.
    """

    def __init__(self, config: ModelConfig, size: int):
        super().__init__()
        if config.backbone == "vit":
            self.features = ViTFeatures(config, size)
        else:
            self.features = ResNetFeatures(config)
        self.head = FlowHead(config, size)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> FlowEstimate:
        both, landmarks = self.features(torch.cat([source, driving], 0))  # one pass, 2B images
        source_features, driving_features = both.chunk(2, 0)  # (B, 2, D) each
        flow = self.head(source_features, driving_features)
        if landmarks is None:
            return FlowEstimate(flow, None, None)
        source_landmarks, driving_landmarks = landmarks.chunk(2, 0)
        return FlowEstimate(flow, source_landmarks, driving_landmarks)
