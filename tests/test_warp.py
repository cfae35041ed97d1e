"""glg.models.warp: unit coordinates against pixels, the identity grid, zero and known-shift
flows."""

import pytest
import torch
import torch.nn.functional as F

from glg.errors import GlgError
from glg.face.mean_face import MEAN_FACE_3D
from glg.models.warp import (ALIGN_CORNERS, flow_upsamplings, identity_grid, landmark_flow,
                             pixels_from_unit, resize_flow, unit_from_pixels, warp)


def pixel_shift_flow(dx: float, dy: float, height: int, width: int) -> torch.Tensor:
    """The constant flow (1, 2, H, W) that makes out(x, y) = in(x + dx, y + dy), dx, dy in px."""
    shift = torch.tensor([dx * 2.0 / width, dy * 2.0 / height])
    return shift.view(1, 2, 1, 1).expand(1, 2, height, width).contiguous()


def test_a_landmark_in_pixels_samples_its_own_pixel():
    """Pixel (x, y) holds the value at landmark (x, y): glg.face.landmarks' integer pixel
    centres."""
    size = 12
    image = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
    points = torch.tensor([[0.0, 0.0], [3.0, 7.0], [11.0, 5.0], [11.0, 11.0]])  # (x, y)
    grid = unit_from_pixels(points, size).view(1, 1, -1, 2)
    sampled = F.grid_sample(image, grid, mode="bilinear", align_corners=ALIGN_CORNERS)
    # grid_sample's float path rounds the coordinates (3 px -> 3.0000002); neighbours differ by >= 1
    torch.testing.assert_close(sampled.flatten(), torch.tensor(
        [float(y * size + x) for x, y in points.int().tolist()]), rtol=0, atol=1e-4)
    torch.testing.assert_close(pixels_from_unit(unit_from_pixels(points, size), size), points)


def test_identity_grid_holds_each_pixels_unit_coordinates():
    grid = identity_grid(4, 8)  # (1, H, W, 2) of (x, y)
    assert grid.shape == (1, 4, 8, 2)
    torch.testing.assert_close(grid[0, ..., 0], unit_from_pixels(torch.arange(8.0), 8).expand(4, 8))
    torch.testing.assert_close(grid[0, ..., 1], unit_from_pixels(torch.arange(4.0), 4)[:, None]
                               .expand(4, 8))


def test_zero_flow_warps_to_itself():
    torch.manual_seed(0)
    r = torch.randn(2, 5, 58, 58)
    torch.testing.assert_close(warp(r, torch.zeros(2, 2, 224, 224)), r, atol=1e-4, rtol=0)


def test_known_shift_comes_back_shifted():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 20, 30)
    out = warp(image, pixel_shift_flow(3, -2, 20, 30))
    # out(x, y) = in(x + 3, y - 2) wherever that lies inside the image
    assert torch.allclose(out[..., 2:, :-3], image[..., :-2, 3:], atol=1e-5)
    # outside: samples land a rounding error (affine_grid, grid_sample) beyond the border pixels
    for outside in (out[..., :2, :], out[..., :, -3:]):
        torch.testing.assert_close(outside, torch.zeros_like(outside), rtol=0, atol=1e-5)


def test_shift_at_a_coarser_resolution_keeps_its_unit_size():
    image = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 8, 16).contiguous()
    flow = pixel_shift_flow(8, 0, 64, 128)  # 8 of 128 px = 1 of 16 px
    assert torch.allclose(warp(image, flow)[..., :-1], image[..., 1:], atol=1e-5)


def test_resize_flow_keeps_values():
    flow = pixel_shift_flow(5, 7, 224, 224)
    small = resize_flow(flow, 58)
    assert small.shape == (1, 2, 58, 58)
    assert torch.allclose(small[0, :, 10, 10], flow[0, :, 0, 0])


def test_warp_passes_gradients_to_features_and_flow():
    r = torch.randn(1, 2, 8, 8, requires_grad=True)
    flow = (torch.randn(1, 2, 8, 8) * 0.1).requires_grad_()
    warp(r, flow).sum().backward()
    assert r.grad.abs().sum() > 0 and flow.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [14, 56, 224])
def test_the_flow_head_doubles_7x7_up_to_the_crop(size):
    assert 7 * 2 ** flow_upsamplings(size) == size


@pytest.mark.parametrize("size", [0, 7, 100, 225])
def test_other_crop_sizes_are_refused(size):
    with pytest.raises(GlgError, match="prepare.image_px"):
        flow_upsamplings(size)


def test_a_larger_flow_warping_a_smaller_map_gets_a_gradient_at_every_pixel():
    """The 224 flow warps the 58 map r (Sec III-C): each flow pixel must count, or the pixels
    between those a plain bilinear shrink reads never train."""
    torch.manual_seed(0)
    features = torch.randn(1, 4, 30, 30)
    flow = torch.zeros(1, 2, 112, 112, requires_grad=True)
    warp(features, flow).square().sum().backward()
    assert (flow.grad.abs() > 0).float().mean() > 0.99


def face_landmarks(size: int) -> torch.Tensor:
    """(1, 68, 2) px: the mean face's 68 points scaled into a size x size crop."""
    points = torch.tensor(MEAN_FACE_3D[:, :2], dtype=torch.float32)
    points = points - points.mean(0)
    return (points / points.abs().max() * size * 0.3 + size / 2)[None]


def test_the_landmark_flow_of_a_shifted_guide_is_that_shift():
    """A guide that is the source moved by (dx, dy) px: the source warped by the flow is moved
    by as much, everywhere (the spline's affine part; no bending is needed)."""
    size, source = 56, face_landmarks(56)
    flow = landmark_flow(source, source + torch.tensor([3.0, -2.0]), size)
    # out(p) = in(p - shift): the sampling offset is minus the shift, in units
    torch.testing.assert_close(flow, pixel_shift_flow(-3, 2, size, size).expand_as(flow),
                               rtol=0, atol=1e-4)


def test_the_landmark_flow_takes_each_guide_landmark_to_the_source_landmark():
    """Where the guide puts a landmark, the warped source shows the source's landmark there,
    for a guide that is the source bigger, moved and with its mouth open (not affine): within
    half a pixel on average and 3 px at worst (the 5 px jaw drop), as the smoothed spline
    passes near its points, not through them."""
    size = 112
    source = face_landmarks(size)
    guide = source * 1.1 - size * 0.05
    guide[0, [6, 7, 8, 9, 10, 56, 57, 58, 65, 66, 67], 1] += 5.0  # jaw and lower lip drop 5 px
    flow = landmark_flow(source, guide, size)
    grid = identity_grid(size, size)[0] + flow[0].permute(1, 2, 0)  # where each pixel samples
    sampled_at_guide = F.grid_sample(grid.permute(2, 0, 1)[None],
                                     unit_from_pixels(guide, size).view(1, 1, 68, 2),
                                     align_corners=ALIGN_CORNERS)  # (1, 2, 1, 68) units
    landed = pixels_from_unit(sampled_at_guide.view(2, 68).T, size)
    miss = (landed - source[0]).norm(dim=-1)  # px
    assert miss.mean() < 0.6 and miss.max() < 3.0


def test_the_landmark_flow_solves_coinciding_landmarks():
    """Closed lips put landmarks on top of each other: the smoothed spline still solves."""
    source = face_landmarks(56)
    source[0, 65:68] = source[0, 61:64]  # inner lips closed
    flow = landmark_flow(source, source.clone(), 56)
    assert torch.isfinite(flow).all() and flow.abs().max() < 1e-4
