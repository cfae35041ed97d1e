"""68-point facial landmark semantics (iBUG 300-W order, as dlib and OpenFace use).

Conventions, stated once: landmarks are `(..., 68, 2)` arrays of (x, y) pixels, x to the right
and y down; point 0 is the jaw end on the subject's right, which appears on the image's left.
"""

from __future__ import annotations

import numpy as np

from glg.errors import GlgError

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


# --- B-spline landmark heatmaps (Sec III-B) ------------------------------------------------

# The curves of the heatmap: each part's points joined by one B-spline, closed for eyes and lips
# (Sec III-B: "the outlines of the face, eyes, eye brows, nose and mouth").
HEATMAP_CURVES: tuple[tuple[range, bool], ...] = (
    (JAW, False), (RIGHT_BROW, False), (LEFT_BROW, False), (NOSE_BRIDGE, False),
    (NOSTRILS, False), (RIGHT_EYE, True), (LEFT_EYE, True), (OUTER_LIPS, True), (INNER_LIPS, True),
)
SPLINE_SAMPLES = 8  # curve points drawn per landmark-to-landmark segment (our choice)
_SUBPIXEL_BITS = 4  # cv2 fixed-point bits: curves are drawn at 1/16 px precision


def _spline_basis(points: int, closed: bool) -> np.ndarray:
    """(M, points) matrix taking a part's landmarks to its densely sampled interpolating B-spline.

    The spline is `scipy.interpolate.splprep` with s=0 (it passes through every landmark), cubic
    (lower order for parts of fewer than 4 points), periodic for closed parts, parametrised by the
    landmark index. With s=0 and a fixed parametrisation the fit is linear in the landmarks, so
    fitting each unit impulse once gives the exact fit of any landmarks as one matrix product:
    about 10x faster than splprep calls per frame (0.05 vs 0.56 ms), and degenerate inputs (repeated
    points, a part collapsed to one point), which make splprep fail, cannot occur.
    """
    from scipy.interpolate import splev, splprep

    knots = points + 1 if closed else points  # a closed curve repeats its first point at the end
    u = np.arange(knots, dtype=np.float64)
    dense = np.linspace(0.0, knots - 1.0, (knots - 1) * SPLINE_SAMPLES + 1)
    degree = min(3, knots - 1)
    basis = np.empty((len(dense), points))
    for j in range(points):
        impulse = np.zeros(knots)
        impulse[j] = 1.0
        if closed and j == 0:
            impulse[-1] = 1.0
        tck, _ = splprep([impulse], u=u, k=degree, s=0, per=int(closed))
        basis[:, j] = splev(dense, tck)[0]
    return basis


_BASES: list[np.ndarray] = []  # filled on first use, so importing this module needs no scipy


def _bases() -> list[np.ndarray]:
    if not _BASES:
        _BASES.extend(_spline_basis(len(part), closed) for part, closed in HEATMAP_CURVES)
    return _BASES


def spline_curves(landmarks: np.ndarray) -> list[np.ndarray]:
    """The heatmap's curves of (68, 2) landmarks: one (M_k, 2) array of points per part."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return [basis @ landmarks[part] for basis, (part, _) in zip(_bases(), HEATMAP_CURVES)]


def draw_heatmap(landmarks: np.ndarray, size: int, as_uint8: bool = False) -> np.ndarray:
    """(size, size) float32 heatmap in [0, 1]: B-spline outlines of (68, 2) landmarks (Sec III-B).

    One channel, black background, antialiased 1 px curves (the line width was only in a lost
    figure; our choice). Points far outside the canvas are clipped, never a crash. `as_uint8`
    gives the canvas itself, 0..255, which is the heatmap times 255.
    """
    import cv2

    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (N_LANDMARKS, 2) or not np.isfinite(landmarks).all():
        raise GlgError(f"landmarks: expected finite (68, 2) pixels, got shape {landmarks.shape}")
    scale = 1 << _SUBPIXEL_BITS
    canvas = np.zeros((size, size), dtype=np.uint8)
    curves = [np.clip(c, -4 * size, 5 * size) for c in spline_curves(landmarks)]
    fixed = [np.round(c * scale).astype(np.int32) for c in curves]
    cv2.polylines(canvas, fixed, isClosed=False, color=255, thickness=1, lineType=cv2.LINE_AA,
                  shift=_SUBPIXEL_BITS)
    return canvas if as_uint8 else canvas.astype(np.float32) / 255.0


# --- part crops (Sec III-B) ----------------------------------------------------------------


def part_boxes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and sizes of the four parts' landmark boxes, in PART_NAMES order.

    (..., 68, 2) -> centres (..., 4, 2) as (x, y) and sizes (..., 4, 2) as (width, height).
    A part's centre is the middle of its landmarks' bounding box (Sec III-B: crops are "cropped
    around the centre point of corresponding landmark coordinates").
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    lows = np.stack([landmarks[..., PART_POINTS[p], :].min(axis=-2) for p in PART_NAMES], axis=-2)
    highs = np.stack([landmarks[..., PART_POINTS[p], :].max(axis=-2) for p in PART_NAMES], axis=-2)
    return (lows + highs) / 2.0, highs - lows


def part_centres(landmarks: np.ndarray) -> np.ndarray:
    """(..., 4, 2) centres (x, y) of the four parts of (..., 68, 2) landmarks, PART_NAMES order."""
    return part_boxes(landmarks)[0]


def crop_origin(centre: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """Top-left (x0, y0) integer pixel of the (height, width) box centred on (x, y).

    The one rounding rule for cutting a part out and for pasting a re-enacted part back.
    """
    x, y = float(centre[0]), float(centre[1])
    return int(np.floor(x - width / 2.0 + 0.5)), int(np.floor(y - height / 2.0 + 0.5))


def crop_part(image: np.ndarray, centre: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, ...) window of an (H, W, ...) image centred on (x, y), zero-padded."""
    if not np.isfinite(np.asarray(centre, dtype=np.float64)).all():
        raise GlgError(f"part centre: expected finite (x, y) pixels, got {tuple(centre)}")
    x0, y0 = crop_origin(centre, height, width)
    out = np.zeros((height, width) + image.shape[2:], dtype=image.dtype)
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + width, image.shape[1]), min(y0 + height, image.shape[0])
    if xa < xb and ya < yb:
        out[ya - y0:yb - y0, xa - x0:xb - x0] = image[ya:yb, xa:xb]
    return out


# --- landmark style transfer (Sec III-B-1, Eq. 3; thesis Eq. 3.3) --------------------------

STD_FLOOR = 1e-3  # px: a coordinate that never moves in a person's frames must not divide by 0


def style_transfer(driving: np.ndarray, driving_mean: np.ndarray, driving_std: np.ndarray,
                   source_mean: np.ndarray, source_std: np.ndarray) -> np.ndarray:
    """Eq. 3: driving landmarks re-styled to the source person, (..., 68, 2) -> (..., 68, 2).

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
    """Eq. 3, then shifted so the centre stays the driving landmarks' centre (Sec III-B-1)."""
    reenact = style_transfer(driving, driving_mean, driving_std, source_mean, source_std)
    return centre_on(reenact, np.asarray(driving, dtype=np.float64))
