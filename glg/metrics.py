"""Metrics: the annotator against ground truth, and the paper's five evaluation metrics.

`annotation_accuracy` scores the annotate stage against the synthesizer's truth (landmark NME,
pose RMSE, per-AU agreement). The evaluation's metrics (thesis 4.2, Eq. 4.1-4.4; paper Sec
IV-C): `csim`, `ssim`, `psnr`, `prmse`, `aucon`, on images and on what `glg.face_reading` read of
them. `write_metrics` writes any stage's metrics as DVC reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd
import torch

from glg.errors import GlgError
from glg.landmarks import (AU_IDS, AU_PRESENCE, AU_SCORE, POSE_COLUMNS, X_COLUMNS, Y_COLUMNS,
                           interocular, landmarks_from_table, rescale_points)


def nme(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame mean point error (M,) of (M, 68, 2) landmarks over the truth's inter-ocular
    distance."""
    return np.linalg.norm(points - truth, axis=-1).mean(-1) / interocular(truth)


def pose_rmse(angle: np.ndarray, truth: np.ndarray) -> float:
    """RMS error of one pose angle (M,) in degrees; frames where either is NaN are left out."""
    return float(np.sqrt(np.nanmean((np.asarray(angle, np.float64) - truth) ** 2)))


def au_agreement(said: np.ndarray, true: np.ndarray) -> tuple[float, float | None, float]:
    """(agreement, F1 of the positives or None without any, truth rate) of one AU's presence,
    (M,) bool each; agreement is the paper's AUCON per AU (Sec IV-A)."""
    both = int((said & true).sum())
    f1 = float(2 * both / (said.sum() + true.sum())) if said.any() or true.any() else None
    return float((said == true).mean()), f1, float(true.mean())


def annotation_accuracy(annotations: pd.DataFrame, manifest: pd.DataFrame,
                        ground_truth: pd.DataFrame | None, size: int) -> dict:
    """Landmark NME, pose RMSE per angle and per-AU agreement of annotations against the
    synthesizer's truth.

    Rows match on identity, video and the manifest's `source_frame`; ground-truth points map
    into stored-frame pixels (`size` px) through the manifest's crop box. NME is averaged over
    successful matched frames.
    """
    out: dict = {"matched_frames": 0, "nme": None, "pose_rmse": None, "au_agreement": None}
    if ground_truth is None or ground_truth.empty:
        out["note"] = "no ground truth: accuracy not measured"
        return out
    rows = annotations.merge(
        manifest[["identity", "video", "frame", "source_frame", "crop_x0", "crop_y0",
                  "crop_size"]], on=["identity", "video", "frame"], how="inner")
    truth = ground_truth.rename(columns=lambda c: f"gt_{c}" if c not in (
        "identity", "video", "frame") else c).rename(columns={"frame": "source_frame"})
    rows = rows.merge(truth, on=["identity", "video", "source_frame"], how="inner")
    out["matched_frames"] = len(rows)
    if rows.empty:
        out["note"] = "ground truth has no rows for these clips (real data): accuracy not measured"
        return out
    ok = rows[rows["success"]]
    out["matched_success_rate"] = float(len(ok) / len(rows))
    if ok.empty:
        out["note"] = "no matched frame has a successful annotation"
        return out
    crop_side = ok[["crop_size"]].to_numpy()  # (M, 1): source px -> stored px, pixel convention
    gt_x = rescale_points(ok[[f"gt_{c}" for c in X_COLUMNS]].to_numpy()
                          - ok[["crop_x0"]].to_numpy(), crop_side, size)
    gt_y = rescale_points(ok[[f"gt_{c}" for c in Y_COLUMNS]].to_numpy()
                          - ok[["crop_y0"]].to_numpy(), crop_side, size)
    error = nme(landmarks_from_table(ok), np.stack([gt_x, gt_y], -1))  # (M,)
    out["nme"] = float(error.mean())
    out["nme_median"] = float(np.median(error))
    out["pose_rmse"] = {a: pose_rmse(ok[a].to_numpy(), ok[f"gt_{a}"].to_numpy())
                        for a in POSE_COLUMNS if f"gt_{a}" in ok}
    # Most frames show few AUs, so the share of frames the truth marks present and the F1 of
    # the positives are reported beside the agreement.
    agreement, f1, truth_rate = {}, {}, {}
    for au, c, r in zip(AU_IDS, AU_PRESENCE, AU_SCORE):
        name = f"AU{au:02d}"
        if f"gt_{c}" not in ok or ok[r].isna().all():
            agreement[name] = f1[name] = truth_rate[name] = None  # no truth, or not measured
            continue
        agreement[name], f1[name], truth_rate[name] = au_agreement(
            ok[c].to_numpy() == 1, ok[f"gt_{c}"].to_numpy() == 1)
    out["au_agreement"], out["au_f1"], out["au_truth_rate"] = agreement, f1, truth_rate
    return out


def write_metrics(path: str | Path, metrics: dict) -> None:
    """Metrics as sorted, indented JSON (byte-identical for identical runs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


# --- evaluation: the paper's five metrics (thesis 4.2, Eq. 4.1-4.4; paper Sec IV-C) ----------
# Image metrics take RGB uint8 images (N, H, W, 3), numpy or torch (computed on the tensor's
# device, else on `device`), in float64. Face metrics take what a `glg.face_reading.FaceReader`
# read (`FaceReadings`); a pair whose output (or, for CSIM, source) shows no face is NaN in
# `per_pair`, counted in `no_face`, and every `summary()` reports both counts beside the mean.

SSIM_SIGMA = 1.5  # Gaussian window of Wang et al. 2004, as scikit-image's gaussian_weights=True
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scikit-image (scipy) truncates it at 3.5 sigma: 5 px
SSIM_K1, SSIM_K2 = 0.01, 0.03  # C1 = (K1 * 255)^2, C2 = (K2 * 255)^2 (Eq. 4.3's constants)
# Images per SSIM/PSNR step: on a CPU, one keeps the float64 maps of a 224 px pair in cache
# (1.5x faster than 2, 2.6x than 8, measured); a GPU takes larger steps.
IMAGE_CHUNK = {"cpu": 1, "cuda": 32}


class FaceReadings(Protocol):
    """What the face metrics read of N images (`glg.face_reading.Readings` is one)."""

    found: np.ndarray  # (N,) bool
    pose: np.ndarray  # (N, 3) degrees
    au_presence: np.ndarray  # (N, 18) 0/1, AU_IDS order
    embedding: np.ndarray  # (N, D) unit rows, NaN where no face
    annotator: str
    embedder: str | None
    measured_aus: tuple[int, ...]


def _check_rows(name: str, values: np.ndarray, n: int, width: int) -> np.ndarray:
    """`values` as a float64 (n, width) array, or a one-line `GlgError` naming it."""
    values = np.asarray(values, np.float64)
    if values.shape != (n, width):
        raise GlgError(f"{name}: expected shape ({n}, {width}), got {values.shape}")
    return values


def _mean(values: np.ndarray) -> float | None:
    """Mean over the finite values; None (JSON null) when there is none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


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
    """PSNR in dB (Eq. 4.2) per pair (N,): the squared error averaged over all H x W x 3 values
    (as scikit-image's `peak_signal_noise_ratio`, data_range 255); identical images score
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
    """SSIM (Eq. 4.3, alpha = beta = gamma = 1) per pair (N,), as scikit-image's
    `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255, channel_axis=-1)`: local statistics under an 11x11 Gaussian window, the SSIM
    map averaged over the pixels whose window lies inside the image, then over the channels."""
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


class Csim(NamedTuple):
    """CSIM (Eq. 4.1) of N (source, output) pairs."""

    per_pair: np.ndarray  # (N,) cosine similarity; NaN where the source or output has no face
    no_face_output: int  # outputs with no face found: unscored, counted here
    no_face_source: int  # sources with no face found: unscored, counted here
    backend: str  # the face-recognition embedder

    def summary(self) -> dict:
        """Mean over the scored pairs (JSON null without any), beside the unscored counts."""
        return {"csim": _mean(self.per_pair), "scored": int(np.isfinite(self.per_pair).sum()),
                "no_face_output": self.no_face_output, "no_face_source": self.no_face_source,
                "backend": self.backend}


def csim(source: FaceReadings, output: FaceReadings) -> Csim:
    """Cosine similarity of the source's and the output's face embeddings, per pair."""
    if source.embedder is None or source.embedder != output.embedder:
        raise GlgError(f"CSIM needs one embedder for sources and outputs, got "
                       f"{source.embedder!r} and {output.embedder!r}")
    n, dim = output.embedding.shape
    cosine = np.einsum("nd,nd->n", _check_rows("source embeddings", source.embedding, n, dim),
                       output.embedding.astype(np.float64))  # unit rows
    cosine[~(source.found & output.found)] = np.nan
    return Csim(cosine, int((~output.found).sum()), int((~source.found).sum()), output.embedder)


class PoseError(NamedTuple):
    """Head pose error of N outputs against their driving frames (PRMSE, thesis 4.2)."""

    per_pair: np.ndarray  # (N, 3) |output - driving| pitch, yaw, roll in degrees; NaN: no face
    no_face: int  # outputs with no face found: unscored, counted here
    annotator: str

    def summary(self) -> dict:
        """PRMSE over every scored angle, and per angle (RMSE over the scored pairs)."""
        scored = self.per_pair[np.isfinite(self.per_pair).all(1)]  # (M, 3)

        def rmse(errors: np.ndarray) -> float | None:
            return float(np.sqrt(np.mean(errors ** 2))) if len(scored) else None

        return {"prmse": rmse(scored), **{a: rmse(scored[:, k]) for k, a in
                                          enumerate(POSE_COLUMNS)},
                "scored": len(scored), "no_face": self.no_face, "annotator": self.annotator}


def prmse(output: FaceReadings, driving_pose: np.ndarray) -> PoseError:
    """Per-pair pose error of outputs against the driving frames' stored pose (N, 3) degrees."""
    driving_pose = _check_rows("driving pose", driving_pose, len(output.found), 3)
    if not np.isfinite(driving_pose).all():
        raise GlgError("driving pose: NaN rows; driving frames must be successfully annotated ones")
    diff = np.abs((output.pose - driving_pose + 180.0) % 360.0 - 180.0)  # angles wrap at 360
    diff[~output.found] = np.nan
    return PoseError(diff, int((~output.found).sum()), output.annotator)


class AuAgreement(NamedTuple):
    """AUCON (Eq. 4.4) of N outputs against their driving frames."""

    per_pair: np.ndarray  # (N,) (TP + TN) / len(aus); NaN where the output has no face
    no_face: int  # outputs with no face found: unscored, counted here
    aus: tuple[int, ...]  # the AUs compared: the annotator's measured ones, the denominator
    annotator: str

    def summary(self) -> dict:
        """Mean over the scored pairs (JSON null without any), the AUs and the unscored count."""
        return {"aucon": _mean(self.per_pair), "scored": int(np.isfinite(self.per_pair).sum()),
                "no_face": self.no_face, "aus": [f"AU{au:02d}" for au in self.aus],
                "denominator": len(self.aus), "annotator": self.annotator}


def aucon(output: FaceReadings, driving_aus: np.ndarray) -> AuAgreement:
    """Share of the measured AUs whose presence in the output agrees with the driving frame's
    stored presence (N, 18) 0/1 in AU_IDS order; unmeasured AUs are left out, not counted as
    agreeing (the thesis' denominator is 18 with OpenFace, which measures all 18)."""
    columns = [AU_IDS.index(au) for au in output.measured_aus]
    said = np.asarray(output.au_presence)[:, columns] == 1
    true = _check_rows("driving AUs", driving_aus, len(output.found), len(AU_IDS))[:, columns] == 1
    agreement = (said == true).mean(1) if columns else np.full(len(said), np.nan)
    agreement[~output.found] = np.nan
    return AuAgreement(agreement, int((~output.found).sum()), tuple(output.measured_aus),
                       output.annotator)
