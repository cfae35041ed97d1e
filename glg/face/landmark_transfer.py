"""Landmark style transfer (Sec III-B-1, paper Eq. 3; thesis Eq. 3.3): driving landmarks re-styled
to the source person from each person's landmark statistics, no learning involved (`LSt`).
"""

from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-3  # px: a coordinate that never moves in a person's frames must not divide by 0


def style_transfer(driving: np.ndarray, driving_mean: np.ndarray, driving_std: np.ndarray,
                   source_mean: np.ndarray, source_std: np.ndarray) -> np.ndarray:
    """paper Eq. 3: driving landmarks re-styled to the source person, (..., 68, 2) -> (..., 68, 2).

    Means and standard deviations are per person, per landmark coordinate, (68, 2) each: the
    statistics of that person's landmarks over the dataset (Sec III-B-1).
    """
    return ((np.asarray(driving) - driving_mean) / np.maximum(driving_std, STD_FLOOR) * source_std
            + source_mean)


def centre_on(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Landmarks shifted so their centre (mean point) is the reference landmarks' centre."""
    shift = reference.mean(axis=-2, keepdims=True) - landmarks.mean(axis=-2, keepdims=True)
    return landmarks + shift


def transfer_landmarks(driving: np.ndarray, driving_mean: np.ndarray, driving_std: np.ndarray,
                       source_mean: np.ndarray, source_std: np.ndarray) -> np.ndarray:
    """paper Eq. 3, then shifted so the centre stays the driving landmarks' centre (Sec III-B-1)."""
    reenact = style_transfer(driving, driving_mean, driving_std, source_mean, source_std)
    return centre_on(reenact, np.asarray(driving, dtype=np.float64))


def place_generated(generated: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """The LGAN's landmarks (..., 68, 2) centred on the driving's, as paper Eq. 3's are
    (Sec III-B-1).

    The LGAN sees the driving's pose and AUs but not where the face sits in the crop, so its
    landmarks keep the person's mean place, and the guide would miss the face it guides by the
    driving's head shift (docs/learning.md).
    """
    return centre_on(np.asarray(generated), np.asarray(driving, dtype=np.float64)).astype(
        np.asarray(generated).dtype)
