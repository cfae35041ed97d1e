"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", Eq. 1), output against driving: the AlexNet variant of richzhang/PerceptualSimilarity's
v0.1 weights (`lpips.LPIPS(net="alex")`), the one papers report.

Per pair: the activations of AlexNet's five ReLUs for both images, each unit-normalised over its
channels, their squared difference weighted per channel by LPIPS's linear layers, averaged over
the map, summed over the five layers. Lower is closer; identical images score 0.

Two files make it, neither shipped nor downloaded here (docs/scoring.md says where to get
them), both in the folder `evaluate.lpips_weights`: torchvision's ImageNet AlexNet and LPIPS's
linear layers. Without them `load_lpips` fails with one line naming the folder, as ArcFace's
loader does; nothing stands in for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from glg.errors import GlgError

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet state dict
ALEXNET_SOURCE = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
LINEAR_FILE = "alex.pth"  # LPIPS v0.1's linear layers (the lpips wheel's lpips/weights/v0.1/)
LINEAR_SOURCE = ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/"
                 "v0.1/alex.pth")
# LPIPS's ScalingLayer: inputs in [-1, 1] to ImageNet's statistics
SHIFT, SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)
TAPS = (1, 4, 7, 9, 11)  # the ReLUs of torchvision's `alexnet().features` LPIPS reads
CHANNELS = (64, 192, 384, 256, 256)  # their channels
EPS = 1e-10  # LPIPS's normalize_tensor
BATCH = 32  # pairs per forward


class AlexFeatures(nn.Sequential):
    """torchvision's `alexnet().features` up to its fifth ReLU, with its layer indices, so its
    state dict's `features.*` keys load as they are: (B, 3, H, W) -> (B, 256, H', W')."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())


class Lpips(nn.Module):
    """LPIPS-Alex: two batches (B, 3, H, W) in [-1, 1] -> (B,) distances."""

    def __init__(self):
        super().__init__()
        self.features = AlexFeatures()
        self.to_weights = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def forward(self, output: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([output, driving]) - self.shift) / self.scale  # (2B, 3, H, W)
        distance = torch.zeros(len(output), device=x.device)
        taps = iter(self.to_weights)
        for k, layer in enumerate(self.features):
            x = layer(x)
            if k in TAPS:
                unit = x / (x.square().sum(1, keepdim=True).sqrt() + EPS)  # (2B, C, h, w)
                a, b = unit.chunk(2)
                distance = distance + next(taps)((a - b).square()).mean((1, 2, 3))
        return distance


def _state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is one bad input
        raise GlgError(f"{path}: not a readable torch state dict ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise GlgError(f"{path}: not a torch state dict")
    return state


def load_lpips(folder: str | Path, device: str | torch.device = "cpu",
               key: str = "evaluate.lpips_weights") -> Lpips:
    """LPIPS-Alex with the two weight files of `folder` (params key `key`), frozen, on `device`;
    a one-line `GlgError` naming the folder and where to get a missing file."""
    folder = Path(folder)
    for name, source in ((ALEXNET_FILE, ALEXNET_SOURCE), (LINEAR_FILE, LINEAR_SOURCE)):
        if not (folder / name).is_file():
            raise GlgError(
                f"{folder / name}: LPIPS weights not found ({key}); put torchvision's ImageNet "
                f"AlexNet ({ALEXNET_SOURCE}) and LPIPS's linear layers ({LINEAR_SOURCE}) in "
                f"{folder}, as {ALEXNET_FILE} and {LINEAR_FILE} (docs/scoring.md)")
    net = Lpips()
    alexnet = {k.removeprefix("features."): v for k, v in _state(folder / ALEXNET_FILE).items()
               if k.startswith("features.") and int(k.split(".")[1]) < len(net.features)}
    linear = _state(folder / LINEAR_FILE)
    # the lpips package puts a dropout before each 1x1 conv: `lin<k>.model.1.weight`
    to_weights = {f"{k}.weight": linear.get(f"lin{k}.model.1.weight") for k in range(len(CHANNELS))}
    for name, module, state in ((ALEXNET_FILE, net.features, alexnet),
                                (LINEAR_FILE, net.to_weights, to_weights)):
        try:
            module.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GlgError(f"{folder / name}: LPIPS-Alex weights do not fit ({reason})") from None
    return net.to(device).eval().requires_grad_(False)


def lpips(output, driving, net: Lpips) -> np.ndarray:
    """LPIPS per pair (N,) of uint8 RGB images (N, H, W, 3), numpy, on the net's device, `BATCH`
    pairs a forward; float32 inside, as the reference implementation."""
    output, driving = np.asarray(output), np.asarray(driving)
    if output.shape != driving.shape or output.dtype != np.uint8 or output.ndim != 4:
        raise GlgError(f"LPIPS: expected two uint8 (N, H, W, 3) batches of one shape, got "
                       f"{output.dtype} {output.shape} and {driving.dtype} {driving.shape}")
    device = next(net.parameters()).device

    def tensor(images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0

    values = []
    with torch.inference_mode():
        for start in range(0, len(output), BATCH):
            values.append(net(tensor(output[start:start + BATCH]),
                              tensor(driving[start:start + BATCH])).double().cpu().numpy())
    return np.concatenate(values) if values else np.zeros(0)
