"""SSIM and PSNR (thesis 4.2, Eq. 4.2-4.3), output against driving, on RGB uint8 images
(N, H, W, 3), numpy or torch (computed on the tensor's device, else on `device`), in float64."""

from __future__ import annotations

import numpy as np
import torch

from glg.errors import GlgError

SSIM_SIGMA = 1.5  # Gaussian window of Wang et al. 2004, as scikit-image's gaussian_weights=True
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scikit-image (scipy) truncates it at 3.5 sigma: 5 px
# C1 = (K1 * 255)^2, C2 = (K2 * 255)^2: thesis Eq. 4.3 says only "close-to-zero constants"; these
# are Wang et al.'s [51]
SSIM_K1, SSIM_K2 = 0.01, 0.03
# Images per SSIM/PSNR step: on a CPU, one keeps the float64 maps of a 224 px pair in cache
# (1.5x faster than 2, 2.6x than 8, measured); a GPU takes larger steps.
IMAGE_CHUNK = {"cpu": 1, "cuda": 32}


def _images(images, device: str | torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) numpy or torch -> float64 (N, 3, H, W) on its device (numpy: `device`)."""
    t = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise GlgError(f"images: expected uint8 (N, H, W, 3), got {t.dtype} {tuple(t.shape)}")
    t = t if isinstance(images, torch.Tensor) else t.to(device)
    return t.permute(0, 3, 1, 2).to(torch.float64)


def _image_pairs(output, driving, device):
    """Matching chunks of the two image batches as float64 (n, 3, H, W) tensors."""
    if tuple(output.shape) != tuple(driving.shape):
        raise GlgError(f"output {tuple(output.shape)} and driving {tuple(driving.shape)} images "
                       "differ in shape")
    on = output.device if isinstance(output, torch.Tensor) else torch.device(device)
    step = IMAGE_CHUNK.get(on.type, IMAGE_CHUNK["cpu"])
    for start in range(0, len(output), step):
        a = _images(output[start:start + step], on)
        yield a, _images(driving[start:start + step], on).to(on)


def psnr_cap(shape: tuple[int, ...]) -> float:
    """The PSNR given to identical images (N, H, W, 3): the largest finite PSNR two uint8 images
    of this size can have, one value one level apart (10 log10(255^2 H W 3))."""
    return float(10 * np.log10(255.0 ** 2 * np.prod(shape[-3:])))


def psnr(output, driving, device: str | torch.device = "cpu") -> np.ndarray:
    """PSNR in dB (thesis Eq. 4.2) per pair (N,): the squared error averaged over all H x W x 3
    values (as scikit-image's `peak_signal_noise_ratio`, data_range 255); identical images score
    `psnr_cap` instead of infinity, so means stay finite."""
    if len(output) == 0:
        return np.zeros(0)
    cap = psnr_cap(tuple(output.shape))
    values = []
    for a, b in _image_pairs(output, driving, device):
        mse = (a - b).square().mean((1, 2, 3))  # (n,)
        values.append((10 * torch.log10(255.0 ** 2 / mse)).clamp(max=cap).cpu().numpy())
    return np.concatenate(values)


def _blur(maps: torch.Tensor) -> torch.Tensor:
    """'Valid' separable Gaussian blur of float64 maps (..., H, W) -> (..., H - 2r, W - 2r), the
    taps of scipy's `gaussian_filter` at SSIM_SIGMA. Shifted sums: on a CPU, float64 `conv2d` is
    4x slower (measured)."""
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1)
    taps = np.exp(-0.5 * x ** 2 / SSIM_SIGMA ** 2)
    taps = taps / taps.sum()
    for axis in (-1, -2):
        size = maps.shape[axis] - 2 * SSIM_RADIUS
        blurred = maps.narrow(axis, 0, size) * taps[0]
        for k in range(1, len(taps)):
            blurred.add_(maps.narrow(axis, k, size), alpha=float(taps[k]))
        maps = blurred
    return maps


def ssim(output, driving, device: str | torch.device = "cpu") -> np.ndarray:
    """SSIM (thesis Eq. 4.3, alpha = beta = gamma = 1) per pair (N,), as scikit-image's
    `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255, channel_axis=-1)`: local statistics under an 11x11 Gaussian window, the SSIM
    map averaged over the pixels whose window lies inside the image, then over the channels.
    thesis Eq. 4.3 writes the means and deviations as whole-image ones; the windowed form is that of
    Wang et al. [51], the paper the thesis cites for SSIM (our reading)."""
    if len(output) == 0:
        return np.zeros(0)
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    values = []
    for a, b in _image_pairs(output, driving, device):
        # One 'valid' blur of x, y, x^2 + y^2 (only the sum of the variances enters) and xy: the
        # border scikit-image crops is exactly where its reflected padding entered the window.
        mu_a, mu_b, squares, ab = _blur(torch.stack([a, b, a * a + b * b, a * b]))
        mu_ab, mu_squares = mu_a * mu_b, mu_a ** 2 + mu_b ** 2  # (n, 3, H - 2r, W - 2r) each
        s = ((2 * mu_ab + c1) * (2 * (ab - mu_ab) + c2)
             / ((mu_squares + c1) * (squares - mu_squares + c2)))
        values.append(s.mean((2, 3)).mean(1).cpu().numpy())
    return np.concatenate(values)
