"""The first-order-model lineage's metrics (Siarohin et al. 2019, "First Order Motion Model for
Image Animation", Sec 4.1 "Metrics"), beside the paper's five, on the same images and on what
the same `glg.evaluate.face_reading.FaceReader` read; docs/scoring.md states them with their
sources.

- `l1`: mean absolute difference of output and driving on [0, 1] images, every pixel and
  channel: the lineage's reconstruction L1, meaningful in self-reenactment only.
- `akd`: average keypoint distance: the mean euclidean distance in pixels of the image as read
  (`evaluate.read_size`) between the 68 landmarks read of the driving frame and of the output.
  The lineage reads them with Bulat et al.'s face-alignment; glg with the annotate backend.
- `aed`: average euclidean distance between the identity embeddings of a reference face and
  the output (the lineage: OpenFace's; glg: the CSIM embedder's unit vectors, so per pair
  AED = sqrt(2 - 2 CSIM) against the same reference). The reference is the driving frame in
  self-reenactment, as the lineage's reconstruction does, and the source across identities.

A pair where either face is not found is NaN, counted by the caller (as CSIM's and PRMSE's).
"""

from __future__ import annotations

import numpy as np

from glg.errors import GlgError


def l1(output: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """Mean absolute error per pair (N,) of uint8 RGB images (N, H, W, 3) as values in [0, 1]."""
    output, driving = np.asarray(output), np.asarray(driving)
    if output.shape != driving.shape or output.dtype != np.uint8 or driving.dtype != np.uint8:
        raise GlgError(f"L1: expected two uint8 (N, H, W, 3) batches of one shape, got "
                       f"{output.dtype} {output.shape} and {driving.dtype} {driving.shape}")
    difference = np.abs(output.astype(np.int16) - driving.astype(np.int16))
    return difference.reshape(len(output), -1).mean(1, dtype=np.float64) / 255.0


def akd(driving, output) -> np.ndarray:
    """Mean distance per pair (N,) between the (N, 68, 2) landmarks read of the driving frames
    and of the outputs, in pixels of the images read; NaN where either has no face."""
    if driving.landmarks.shape != output.landmarks.shape:
        raise GlgError(f"AKD: driving landmarks {driving.landmarks.shape} and output landmarks "
                       f"{output.landmarks.shape} differ in shape")
    distance = np.linalg.norm(np.asarray(output.landmarks, np.float64) - driving.landmarks,
                              axis=-1).mean(-1)
    distance[~(driving.found & output.found)] = np.nan
    return distance


def aed(reference, output) -> np.ndarray:
    """Euclidean distance per pair (N,) between the unit identity embeddings (N, D) of the
    reference faces and of the outputs; NaN where either has no face."""
    if reference.embedder is None or reference.embedder != output.embedder:
        raise GlgError(f"AED needs one embedder for references and outputs, got "
                       f"{reference.embedder!r} and {output.embedder!r}")
    if reference.embedding.shape != output.embedding.shape:
        raise GlgError(f"AED: reference embeddings {reference.embedding.shape} and output "
                       f"embeddings {output.embedding.shape} differ in shape")
    distance = np.linalg.norm(np.asarray(output.embedding, np.float64) - reference.embedding,
                              axis=-1)
    distance[~(reference.found & output.found)] = np.nan
    return distance
