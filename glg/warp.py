"""Flow warping, and the one tensor convention of every glg network.

Conventions, stated once for `glg.models`, `glg.losses` and the trainers:
- images are `(B, 3, H, W)` float in [-1, 1], RGB; one-channel heatmaps `(B, 1, H, W)` in [0, 1];
- landmarks are `(B, 68, 2)` (x, y) in pixels of the S x S network crop (S = `prepare.size`,
  224 in the paper, Sec III-A), x to the right and y down, pixel centres at integer + 0.5;
- a flow is `(B, 2, H, W)`, channels (dx, dy), in normalised grid units: the whole image spans
  2 units, as in `grid_sample` with `align_corners=False`. It is a *backward* flow: output pixel
  p takes the value of the input at p + flow(p). Normalised units make a flow independent of
  resolution, so resizing a flow (224 -> 58 in Sec III-C) needs no rescaling of its values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ALIGN_CORNERS = False  # the one setting every grid_sample/interpolate of a flow uses


def identity_grid(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The sampling grid that reproduces an image: (1, H, W, 2) of (x, y) pixel centres in [-1, 1]."""
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) * (2.0 / height) - 1.0
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) * (2.0 / width) - 1.0
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0)


def resize_flow(flow: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """A flow (B, 2, H, W) resized bilinearly to `size`; its values need no scaling (normalised units)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(flow.shape[-2:]) == size:
        return flow
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp `features` (B, C, H, W) by `flow` (B, 2, H, W): out(p) = features(p + flow(p)).

    The flow is resized to the feature map first (Sec III-C: the 224 flow warps the 58 map r).
    Samples falling outside the map read zeros.
    """
    batch, _, height, width = features.shape
    flow = resize_flow(flow, (height, width)).to(features.dtype)
    grid = identity_grid(height, width, device=features.device, dtype=features.dtype)
    grid = grid + flow.permute(0, 2, 3, 1)  # (B, H, W, 2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=ALIGN_CORNERS)


def pixel_shift_flow(dx: float, dy: float, height: int, width: int, *, batch: int = 1,
                     device=None) -> torch.Tensor:
    """The constant flow (B, 2, H, W) that makes out(x, y) = in(x + dx, y + dy), shifts in pixels."""
    flow = torch.empty(batch, 2, height, width, device=device)
    flow[:, 0] = dx * 2.0 / width
    flow[:, 1] = dy * 2.0 / height
    return flow
