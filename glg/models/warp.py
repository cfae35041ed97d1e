"""Flow warping, and the one tensor convention of every glg network.

Conventions, stated once for `glg.models`, `glg.train.losses` and the trainers:
- images are `(B, 3, H, W)` float in [-1, 1], RGB; one-channel heatmaps `(B, 1, H, W)` in [0, 1];
- landmarks are `(B, 68, 2)` (x, y) in pixels of the S x S network crop (S = `prepare.image_px`,
  224 in the paper, Sec III-A), in `glg.face.landmarks`' pixel convention;
- unit coordinates put the image's outer edges at -1 and 1, as `grid_sample` with
  `align_corners=False` reads them: `unit_from_pixels` and `pixels_from_unit` convert;
- a flow is `(B, 2, H, W)`, channels (dx, dy), in unit coordinates: the whole image spans
  2 units. It is a *backward* flow: output pixel p takes the value of the input at p + flow(p).
  Unit coordinates make a flow independent of resolution, so resizing a flow (224 -> 58 in
  Sec III-C) needs no rescaling of its values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from glg.errors import GlgError

ALIGN_CORNERS = False  # the one setting every grid_sample/interpolate of a flow uses
FLOW_MAP_SIDE = 7  # the flow head's first map is 128 x 7 x 7 (Sec III-A)


def unit_from_pixels(coords: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 2) pixels of the size x size crop -> unit coordinates, edges at -1 and 1."""
    return (coords + 0.5) * (2.0 / size) - 1.0


def pixels_from_unit(coords: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 2) unit coordinates, edges at -1 and 1 -> pixels of the size x size crop."""
    return (coords + 1.0) * (size / 2.0) - 0.5


def flow_upsamplings(size: int) -> int:
    """How many x2 steps take the flow head's 7x7 map to `size` (= 7 * 2^k, Sec III-A)."""
    steps = (size // FLOW_MAP_SIDE).bit_length() - 1
    if size < 2 * FLOW_MAP_SIDE or FLOW_MAP_SIDE << steps != size:
        raise GlgError(f"prepare.image_px must be 7 * 2^k (e.g. 224, Sec III-A) for the flow "
                       f"head, got {size}")
    return steps


def identity_grid(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The sampling grid (1, H, W, 2) that reproduces an image: each pixel's (x, y) in units."""
    theta = torch.eye(2, 3, device=device, dtype=dtype)[None]
    return F.affine_grid(theta, [1, 1, height, width], align_corners=ALIGN_CORNERS)


def resize_flow(flow: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """A flow (B, 2, H, W) resized bilinearly to `size`; its values need no scaling (units).

    Shrinking is antialiased: every flow pixel then counts. Plain bilinear at 224 -> 58 reads
    4 of every ~15 pixels, so the rest of the flow got no gradient and drifted freely.
    """
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(flow.shape[-2:]) == size:
        return flow
    if size[0] < flow.shape[-2] or size[1] < flow.shape[-1]:  # no bf16 CPU antialias kernel
        return F.interpolate(flow.float(), size=size, mode="bilinear",
                             align_corners=ALIGN_CORNERS, antialias=True).to(flow.dtype)
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp `features` (B, C, H, W) by `flow` (B, 2, H, W): out(p) = features(p + flow(p)).

    The flow is resized to the feature map first (Sec III-C: the 224 flow warps the 58 map r).
    Samples falling outside the map read zeros.
    """
    _, _, height, width = features.shape
    flow = resize_flow(flow, (height, width)).to(features.dtype)
    grid = identity_grid(height, width, device=features.device, dtype=features.dtype)
    grid = grid + flow.permute(0, 2, 3, 1)  # (B, H, W, 2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=ALIGN_CORNERS)


def landmark_flow(source_landmarks: torch.Tensor, guide_landmarks: torch.Tensor, size: int,
                  stiffness: float = 1.0) -> torch.Tensor:
    """The backward flow (B, 2, S, S) of the thin-plate spline that takes each guiding landmark
    to the source's (B, 68, 2 px each): the source warped by it wears the guide's face.

    Not in the paper, whose flow is the estimator's alone (Sec III-A): `model.flow_prior`. The
    spline is fitted in unit coordinates with `stiffness` on its bending term (lambda of a
    smoothing spline): landmarks that coincide (closed lips) leave the system solvable, and
    1.0 keeps the warp smooth between the 68 points (chosen on the demo data, docs/learning.md).
    Always float32: the solve has no bfloat16 kernel and is tiny (71 x 71 per image).
    """
    with torch.autocast(source_landmarks.device.type, enabled=False):
        guide = unit_from_pixels(guide_landmarks.float(), size)  # control points (B, n, 2)
        target = unit_from_pixels(source_landmarks.float(), size)
        batch, n, _ = guide.shape
        affine = torch.cat([guide.new_ones(batch, n, 1), guide], -1)  # (B, n, 3)
        system = guide.new_zeros(batch, n + 3, n + 3)
        system[:, :n, :n] = _spline_kernel(guide, guide) + stiffness * torch.eye(
            n, device=guide.device)
        system[:, :n, n:] = affine
        system[:, n:, :n] = affine.transpose(1, 2)
        rhs = torch.cat([target, guide.new_zeros(batch, 3, 2)], 1)
        solution = torch.linalg.solve(system, rhs)  # (B, n + 3, 2): bending weights, affine
        grid = identity_grid(size, size, device=guide.device).reshape(1, -1, 2)  # (1, S*S, 2)
        mapped = (solution[:, n:n + 1] + grid @ solution[:, n + 1:]
                  + _spline_kernel(grid.expand(batch, -1, -1), guide) @ solution[:, :n])
        return (mapped - grid).reshape(batch, size, size, 2).permute(0, 3, 1, 2)


def _spline_kernel(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 between (B, M, 2) points and (B, n, 2) centres: (B, M, n)."""
    squared = torch.cdist(points, centres).square()
    return squared * torch.log(squared.clamp_min(1e-12))
