"""68-point facial landmark semantics (iBUG 300-W order, as dlib and OpenFace use).

Conventions, stated once for every module that holds points in pixels:
- landmarks are `(..., 68, 2)` arrays of (x, y) pixels, x to the right and y down; point 0 is
  the jaw end on the subject's right, which appears on the image's left;
- pixel centres sit at integer coordinates, as dlib's landmarks, OpenCV's drawing and remap, and
  cv2.resize have them: pixel (i, j) is centred on (i, j) and an image S px wide spans
  [-0.5, S - 0.5]. `rescale_points` moves points between image sizes under this convention.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

N_LANDMARKS = 68

# The paper's 18 action units (Sec III-B-2, Fig. 4; thesis 3.3: "commonly used for face
# reenactment evaluation"; all 18 are among the AUs OpenFace reads).
AU_IDS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)
AU_PRESENCE = tuple(f"AU{au:02d}_c" for au in AU_IDS)  # 0/1 columns
AU_SCORE = tuple(f"AU{au:02d}_r" for au in AU_IDS)  # float columns, NaN where unknown
X_COLUMNS = tuple(f"x_{i}" for i in range(N_LANDMARKS))
Y_COLUMNS = tuple(f"y_{i}" for i in range(N_LANDMARKS))
POSE_COLUMNS = ("pitch", "yaw", "roll")  # degrees

# Index ranges of the facial parts in the 68-point scheme; "right" is the subject's right.
JAW = range(0, 17)
RIGHT_BROW = range(17, 22)
LEFT_BROW = range(22, 27)
NOSE_BRIDGE = range(27, 31)
NOSTRILS = range(31, 36)
RIGHT_EYE = range(36, 42)  # closed contour
LEFT_EYE = range(42, 48)  # closed contour
OUTER_LIPS = range(48, 60)  # closed contour
INNER_LIPS = range(60, 68)  # closed contour
NOSE = range(27, 36)
MOUTH = range(48, 68)


def landmarks_from_table(table) -> np.ndarray:
    """(N, 68, 2) landmarks from a DataFrame holding x_0..x_67 and y_0..y_67."""
    return np.stack([table[list(X_COLUMNS)].to_numpy(np.float64),
                     table[list(Y_COLUMNS)].to_numpy(np.float64)], axis=-1)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right and left eye, (..., 2) each."""
    return (landmarks[..., RIGHT_EYE, :].mean(axis=-2), landmarks[..., LEFT_EYE, :].mean(axis=-2))


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres, (...,): the face-size unit of NME and the AU rules."""
    right, left = eye_centres(landmarks)
    return np.linalg.norm(left - right, axis=-1)


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """(3, 3) head rotation R = Rz(roll) Ry(yaw) Rx(pitch) from angles in degrees.

    In MEAN_FACE_3D's frame (x image right, y down, z toward the camera): yaw > 0 moves the nose
    toward the image right, pitch > 0 moves it up, roll > 0 turns the eye line clockwise in the
    image. Every pose in glg (ground truth, annotations, conditioning) uses this convention.
    """
    return Rotation.from_euler("ZYX", [roll, yaw, pitch], degrees=True).as_matrix()


def pose_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a rotation built as in `rotation_matrix`."""
    roll, yaw, pitch = Rotation.from_matrix(np.asarray(rotation, np.float64)).as_euler(
        "ZYX", degrees=True)
    return float(pitch), float(yaw), float(roll)



def rescale_points(points: np.ndarray, from_size: float, to_size: float) -> np.ndarray:
    """Points in pixels of a `from_size` image -> the same places in the image resized to
    `to_size` (pixel centres at integers: (p + 0.5) * to / from - 0.5, as cv2.resize maps)."""
    return (np.asarray(points, np.float64) + 0.5) * (to_size / from_size) - 0.5
