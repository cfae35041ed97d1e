"""glg.warp: the identity grid, zero and known-shift flows, resizing a flow."""

import torch

from glg.warp import identity_grid, pixel_shift_flow, resize_flow, warp


def test_identity_grid_holds_pixel_centres():
    grid = identity_grid(4, 8)
    assert grid.shape == (1, 4, 8, 2)
    assert torch.allclose(grid[0, 0, :, 0], (torch.arange(8) + 0.5) / 4 - 1)
    assert torch.allclose(grid[0, :, 0, 1], (torch.arange(4) + 0.5) / 2 - 1)


def test_zero_flow_warps_to_itself():
    torch.manual_seed(0)
    r = torch.randn(2, 5, 58, 58)
    assert torch.allclose(warp(r, torch.zeros(2, 2, 224, 224)), r, atol=1e-5)


def test_known_shift_comes_back_shifted():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 20, 30)
    out = warp(image, pixel_shift_flow(3, -2, 20, 30))
    # out(x, y) = in(x + 3, y - 2) wherever that lies inside the image
    assert torch.allclose(out[..., 2:, :-3], image[..., :-2, 3:], atol=1e-5)
    assert torch.all(out[..., :2, :] == 0) and torch.all(out[..., :, -3:] == 0)


def test_shift_at_a_coarser_resolution_keeps_its_normalised_size():
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
