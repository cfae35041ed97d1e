"""68-point facial landmark semantics (iBUG 300-W order, as dlib and OpenFace use).

Conventions, stated once: landmarks are `(..., 68, 2)` arrays of (x, y) pixels, x to the right
and y down; point 0 is the jaw end on the subject's right, which appears on the image's left.
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 68

# The paper's 18 action units (Sec III-B-2; the OpenFace set: thesis Ch. 3.3).
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

# The four individually re-enacted parts (Sec III-B), in the order every tensor uses.
PART_NAMES = ("left_eye", "right_eye", "nose", "mouth")
PART_POINTS = {"left_eye": LEFT_EYE, "right_eye": RIGHT_EYE, "nose": NOSE, "mouth": MOUTH}

# OpenFace's mean 3D face of the 68 points (its "wild" PDM, the model the paper's head pose
# came from, Sec IV-A), in mm-like units: x to the image right, y down, z toward the camera.
MEAN_FACE_3D = np.array(
    [
        [ -73.393523,  -29.801432,  -47.667532],  # 0
        [ -72.775014,  -10.949766,  -45.909403],  # 1
        [ -70.533638,    7.929818,  -44.842580],  # 2
        [ -66.850058,   26.074280,  -43.141114],  # 3
        [ -59.790187,   42.564390,  -38.635298],  # 4
        [ -48.368973,   56.481080,  -30.750622],  # 5
        [ -34.121101,   67.246992,  -18.456453],  # 6
        [ -17.875411,   75.056892,   -3.609035],  # 7
        [   0.098749,   77.061286,    0.881698],  # 8
        [  17.477031,   74.758448,   -5.181201],  # 9
        [  32.648966,   66.929021,  -19.176563],  # 10
        [  46.372358,   56.311389,  -30.770570],  # 11
        [  57.343480,   42.419126,  -37.628629],  # 12
        [  64.388482,   25.455880,  -40.886309],  # 13
        [  68.212038,    6.990805,  -42.281449],  # 14
        [  70.486405,  -11.666193,  -44.142567],  # 15
        [  71.375822,  -30.365191,  -47.140426],  # 16
        [ -61.119406,  -49.361602,  -14.254422],  # 17
        [ -51.287588,  -58.769795,   -7.268147],  # 18
        [ -37.804800,  -61.996155,   -0.442051],  # 19
        [ -24.022754,  -61.033399,    6.606501],  # 20
        [ -11.635713,  -56.686759,   11.967398],  # 21
        [  12.056636,  -57.391033,   12.051204],  # 22
        [  25.106256,  -61.902186,    7.315098],  # 23
        [  38.338588,  -62.777713,    1.022953],  # 24
        [  51.191007,  -59.302347,   -5.349435],  # 25
        [  60.053851,  -50.190255,  -11.615746],  # 26
        [   0.653940,  -42.193790,   13.380835],  # 27
        [   0.804809,  -30.993721,   21.150853],  # 28
        [   0.992204,  -19.944596,   29.284036],  # 29
        [   1.226783,   -8.414541,   36.948060],  # 30
        [ -14.772472,    2.598255,   20.132003],  # 31
        [  -7.180239,    4.751589,   23.536684],  # 32
        [   0.555920,    6.562900,   25.944448],  # 33
        [   8.272499,    4.661005,   23.695741],  # 34
        [  15.214351,    2.643046,   20.858157],  # 35
        [ -46.047290,  -37.471411,   -7.037989],  # 36
        [ -37.674688,  -42.730510,   -3.021217],  # 37
        [ -27.883856,  -42.711517,   -1.353629],  # 38
        [ -19.648268,  -36.754742,    0.111088],  # 39
        [ -28.272965,  -35.134493,    0.147273],  # 40
        [ -38.082418,  -34.919043,   -1.476612],  # 41
        [  19.265868,  -37.032306,    0.665746],  # 42
        [  27.894191,  -43.342445,   -0.247660],  # 43
        [  37.437529,  -43.110822,   -1.696435],  # 44
        [  45.170805,  -38.086515,   -4.894163],  # 45
        [  38.196454,  -35.532024,   -0.282961],  # 46
        [  28.764989,  -35.484289,    1.172675],  # 47
        [ -28.916267,   28.612716,    2.240310],  # 48
        [ -17.533194,   22.172187,   15.934335],  # 49
        [  -6.684590,   19.029051,   22.611355],  # 50
        [   0.381001,   20.721118,   23.748437],  # 51
        [   8.375443,   19.035460,   22.721995],  # 52
        [  18.876618,   22.394109,   15.610679],  # 53
        [  28.794412,   28.079924,    3.217393],  # 54
        [  19.057574,   36.298248,   14.987997],  # 55
        [   8.956375,   39.634575,   22.554245],  # 56
        [   0.381549,   40.395647,   23.591626],  # 57
        [  -7.428895,   39.836405,   22.406106],  # 58
        [ -18.160634,   36.677899,   15.121907],  # 59
        [ -24.377490,   28.677771,    4.785684],  # 60
        [  -6.897633,   25.475976,   20.893742],  # 61
        [   0.340663,   26.014269,   22.220479],  # 62
        [   8.444722,   25.326198,   21.025520],  # 63
        [  24.474473,   28.323008,    5.712776],  # 64
        [   8.449166,   30.596216,   20.671489],  # 65
        [   0.205322,   31.408738,   21.903670],  # 66
        [  -7.198266,   30.844876,   20.328022],  # 67
    ],
    dtype=np.float64,
)


def landmarks_from_row(row) -> np.ndarray:
    """(68, 2) landmarks from a table row holding x_0..x_67 and y_0..y_67."""
    return np.stack([np.asarray([row[c] for c in X_COLUMNS], dtype=np.float64),
                     np.asarray([row[c] for c in Y_COLUMNS], dtype=np.float64)], axis=-1)


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
    a, b, c = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a rotation built as in `rotation_matrix`."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return tuple(float(v) for v in np.degrees([pitch, yaw, roll]))
