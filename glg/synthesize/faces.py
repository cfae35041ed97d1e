"""The demo identities: two public-domain portraits, their 3D faces, and the 18 AUs' moves.

Each identity is a portrait (scikit-image's astronaut or matplotlib's Grace Hopper) with its
dlib landmarks, lifted to a 3D neutral face by a weak-perspective fit of MEAN_FACE_3D, given its
own face shape and colouring. `move_by_aus` moves that face by the frame's action units (the
paper's 18, Sec III-B-2); `project` turns and projects it.

Images are RGB uint8 `(H, W, 3)` (glg/store/video.py); landmarks `(68, 2)` px under
glg/face/landmarks.py's pixel convention; 3D shapes `(N, 3)` in MEAN_FACE_3D's frame, mm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import skimage.data
from matplotlib import cbook

from glg.errors import GlgError
from glg.face.dlib_models import face_detector, shape_predictor
from glg.face.landmarks import AU_IDS, JAW, LEFT_EYE, MOUTH, NOSE, RIGHT_EYE
from glg.face.mean_face import MEAN_FACE_3D

PORTRAITS = ("astronaut", "grace_hopper")  # identity i is deformed from PORTRAITS[i % 2]
PIVOT = np.array([0.0, 30.0, -90.0])  # the head turns about a point behind the face (neck), mm
UPPER_LIDS = {37: 41, 38: 40, 43: 47, 44: 46}  # upper-lid point -> lower-lid point below it

# --- action units ----------------------------------------------------------------------------
# Each AU moves landmarks of the neutral 3D face by (dx, dy, dz) mm at full intensity; x to the
# image right, y down, z toward the camera. "+-" entries are mirrored: (-dx) for the subject's
# right side (image left, points with x < 0). Magnitudes are our choice (the paper's Fig. 4 only
# names the AUs); about 5 mm is 8 % of the inter-ocular distance.


def _mirrored(points: dict[tuple[int, int], tuple[float, float, float]]):
    """Expand {(right, left): (dx, dy, dz)} with dx pointing outward into per-point moves."""
    moves = {}
    for (right, left), (dx, dy, dz) in points.items():
        moves[right] = (-dx, dy, dz)
        moves[left] = (dx, dy, dz)
    return moves


AU_MOVES: dict[int, dict[int, tuple[float, float, float]]] = {
    # AU1 inner brow raiser: the inner brow ends go up 7 mm, the middle 4 mm.
    1: _mirrored({(21, 22): (0, -7, 0), (20, 23): (0, -5.5, 0), (19, 24): (0, -3, 0)}),
    # AU2 outer brow raiser: the outer brow ends go up 7 mm.
    2: _mirrored({(17, 26): (0, -6, 0), (18, 25): (0, -7, 0), (19, 24): (0, -5, 0),
                  (20, 23): (0, -2.5, 0)}),
    # AU4 brow lowerer: brows down 5 mm, inner ends also drawn 3 mm together.
    4: _mirrored({(21, 22): (-3, 6, 1), (20, 23): (-2, 5, 0), (19, 24): (-1, 4, 0),
                  (18, 25): (0, 3, 0), (17, 26): (0, 2, 0)}),
    # AU5 upper lid raiser: the upper lids go up 3 mm (eyes wide open).
    5: _mirrored({(37, 44): (0, -3, 0), (38, 43): (0, -3, 0)}),
    # AU6 cheek raiser: lower lids up 2 mm, outer eye corners up 1 mm, cheeks lift the corners.
    6: _mirrored({(41, 46): (0, -2, 0), (40, 47): (0, -2, 0), (36, 45): (0, -1, 0),
                  (48, 54): (0, -1.5, 0)}),
    # AU7 lid tightener: lower lids up 2.5 mm, upper lids down 1 mm (narrowed eyes).
    7: _mirrored({(41, 46): (0, -2.5, 0), (40, 47): (0, -2.5, 0), (37, 44): (0, 1, 0),
                  (38, 43): (0, 1, 0)}),
    # AU9 nose wrinkler: nostrils up 3 mm, upper lip up 1.5 mm, inner brows down 3 mm.
    9: {31: (0, -3, 0), 32: (0, -3, 0), 33: (0, -2.5, 0), 34: (0, -3, 0), 35: (0, -3, 0),
        30: (0, -1.5, 0), 50: (0, -1.5, 0), 51: (0, -1.5, 0), 52: (0, -1.5, 0), 21: (1, 3, 0),
        22: (-1, 3, 0)},
    # AU10 upper lip raiser: the upper lip's outer edge up 3.5 mm, its inner edge 1 mm.
    10: {49: (0, -3, 0), 50: (0, -3.5, 0), 51: (0, -3.5, 0), 52: (0, -3.5, 0), 53: (0, -3, 0),
         61: (0, -1, 0), 62: (0, -1, 0), 63: (0, -1, 0)},
    # AU12 lip corner puller (smile): corners 6 mm out and 5 mm up, the lips follow.
    12: _mirrored({(48, 54): (6, -5, -3), (60, 64): (5, -4.5, -2), (49, 53): (2.5, -2.5, -1),
                   (59, 55): (3, -3, -1), (50, 52): (1, -1, 0), (58, 56): (1, -1.5, 0),
                   (61, 63): (1.5, -1.5, 0), (67, 65): (1.5, -1.5, 0)}),
    # AU14 dimpler: corners pulled 2.5 mm out and 4 mm back into the cheeks.
    14: _mirrored({(48, 54): (2.5, -0.5, -4), (60, 64): (2, -0.5, -3)}),
    # AU15 lip corner depressor: corners 5 mm down.
    15: _mirrored({(48, 54): (0, 5, 0), (60, 64): (0, 4, 0), (59, 55): (0, 2, 0),
                   (49, 53): (0, 1.5, 0), (61, 63): (0, 1, 0), (67, 65): (0, 1, 0)}),
    # AU17 chin raiser: the chin 3.5 mm up, pushing the lower lip (and the closed mouth) up.
    17: {7: (0, -2.5, 0), 8: (0, -3.5, 0), 9: (0, -2.5, 0), 55: (0, -2, 1), 56: (0, -2.5, 1.5),
         57: (0, -3, 1.5), 58: (0, -2.5, 1.5), 59: (0, -2, 1), 65: (0, -1.5, 0),
         66: (0, -1.5, 0), 67: (0, -1.5, 0), 61: (0, -1.5, 0), 62: (0, -1.5, 0),
         63: (0, -1.5, 0), 50: (0, -1, 0), 51: (0, -1, 0), 52: (0, -1, 0)},
    # AU20 lip stretcher: corners 7 mm out and 1.5 mm down.
    20: _mirrored({(48, 54): (7, 1.5, -2), (60, 64): (6, 1.5, -2), (49, 53): (3.5, 0.5, 0),
                   (59, 55): (3.5, 0.5, 0), (61, 63): (2, 0, 0), (67, 65): (2, 0, 0)}),
    # AU23 lip tightener: lips 2 mm thinner each, corners 2 mm inward.
    23: _mirrored({(48, 54): (-2, 0, 0), (60, 64): (-2, 0, 0), (49, 53): (-1, 1.5, 0),
                   (50, 52): (0, 2, 0), (59, 55): (-1, -1.5, 0), (58, 56): (0, -2, 0)})
    | {51: (0, 2, 0), 57: (0, -2, 0)},
    # AU25 lips apart: the lower lip 6 mm down, the upper lip 1 mm up (jaw closed).
    25: _mirrored({(60, 64): (0, 1, 0), (67, 65): (0, 6, 0), (59, 55): (0, 4, 0),
                   (58, 56): (0, 5, 0), (61, 63): (0, -1, 0), (48, 54): (0, 1, 0)})
    | {66: (0, 6.5, 0), 57: (0, 5.5, 0), 62: (0, -1, 0)},
    # AU26 jaw drop: the chin 10 mm down, the lower lip with it, the jaw line following.
    26: _mirrored({(3, 13): (0, 1.5, 0), (4, 12): (0, 3, 0), (5, 11): (0, 5, 0),
                   (6, 10): (0, 7.5, -1), (7, 9): (0, 9, -1.5), (48, 54): (0, 3, 0),
                   (60, 64): (0, 3, 0), (59, 55): (0, 8, -1), (58, 56): (0, 9, -1),
                   (67, 65): (0, 9, -1)})
    | {8: (0, 10, -2), 57: (0, 9.5, -1), 66: (0, 9.5, -1)},
    # AU28 lip suck: both lips rolled in, 2.5 mm thinner and 3 mm back.
    28: _mirrored({(49, 53): (0, 2, -3), (50, 52): (0, 2.5, -3), (59, 55): (0, -2, -3),
                   (58, 56): (0, -2.5, -3), (48, 54): (-1, 0, -2)})
    | {51: (0, 2.5, -3), 57: (0, -2.5, -3)},
    # AU45 blink: the upper lids close onto the lower lids; see `move_by_aus` (shape dependent).
    45: {},
}
assert set(AU_MOVES) == set(AU_IDS)


# --- portraits and identities ----------------------------------------------------------------


@dataclass(frozen=True)
class Portrait:
    """A base photograph and its 68 dlib landmarks, `(H, W, 3)` and `(68, 2)`."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class Identity:
    """One demo person: a portrait, its 3D neutral face `(68, 3)` and its colouring."""

    name: str
    portrait: Portrait
    shape: np.ndarray  # (68, 3) neutral face in MEAN_FACE_3D's frame, mm
    source_pose: np.ndarray  # (3, 3) rotation of the face in the portrait
    source_scale: float  # portrait px per mm
    source_offset: np.ndarray  # (2,) portrait px of the 3D origin
    gain: np.ndarray  # (3,) per-channel colour gain (tone)
    gamma: float  # brightness: < 1 brighter, > 1 darker


def portrait_image(name: str) -> np.ndarray:
    """The public-domain portrait `name` as RGB uint8 `(H, W, 3)`."""
    if name == "astronaut":
        return np.ascontiguousarray(skimage.data.astronaut())
    if name == "grace_hopper":
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            encoded = np.frombuffer(f.read(), dtype=np.uint8)
        return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    raise GlgError(f"portrait {name!r}: unknown; allowed: {', '.join(PORTRAITS)}")


@functools.cache
def load_portrait(name: str) -> Portrait:
    """A portrait with the landmarks of its best-scoring dlib face."""
    image = portrait_image(name)
    boxes, scores, _ = face_detector().run(image, 1, 0)
    if not boxes:
        raise GlgError(f"portrait {name}: dlib found no face")
    box = boxes[int(np.argmax(scores))]
    shape = shape_predictor()(image, box)
    landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    return Portrait(name, image, landmarks)


def fit_pose(landmarks: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Weak-perspective fit of MEAN_FACE_3D to `(68, 2)` landmarks: rotation, px/mm, offset."""
    centred_3d = MEAN_FACE_3D - MEAN_FACE_3D.mean(axis=0)
    centred_2d = landmarks - landmarks.mean(axis=0)
    # Affine camera by least squares, then its nearest scaled orthographic rows.
    m, *_ = np.linalg.lstsq(centred_3d, centred_2d, rcond=None)  # (3, 2)
    u, sv, vt = np.linalg.svd(m.T, full_matrices=False)  # m.T = (2, 3)
    rows = u @ vt  # (2, 3) orthonormal rows
    scale = float(sv.mean())
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    offset = landmarks.mean(axis=0) - scale * (rotation @ MEAN_FACE_3D.mean(axis=0))[:2]
    return rotation, scale, offset


def project(points: np.ndarray, rotation: np.ndarray, scale: float, offset: np.ndarray):
    """Weak-perspective projection of `(N, 3)` points turned about PIVOT: `(N, 2)` px, `(N,)` z."""
    turned = (points - PIVOT) @ rotation.T + PIVOT
    return scale * turned[:, :2] + offset, turned[:, 2]


def lift_to_3d(landmarks: np.ndarray, rotation: np.ndarray, scale: float,
               offset: np.ndarray) -> np.ndarray:
    """`(68, 3)` face nearest MEAN_FACE_3D that projects exactly onto `landmarks`."""
    projected, _ = project(MEAN_FACE_3D, rotation, scale, offset)
    # The smallest 3D change per point that closes the 2D residual (pseudo-inverse of the camera).
    camera = scale * rotation[:2]  # (2, 3)
    return MEAN_FACE_3D + (landmarks - projected) @ np.linalg.pinv(camera).T


def make_identity(index: int, rng: np.random.Generator) -> Identity:
    """Identity `index`: portrait `index % 2` with random face-shape changes and colouring."""
    portrait = load_portrait(PORTRAITS[index % len(PORTRAITS)])
    rotation, scale, offset = fit_pose(portrait.landmarks)
    shape = lift_to_3d(portrait.landmarks, rotation, scale, offset)
    # A neutral face has closed lips: both inner-lip edges meet on their middle line.
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        middle = (shape[upper] + shape[lower]) / 2
        shape[upper], shape[lower] = middle, middle
    eye_centre_y = shape[[*RIGHT_EYE, *LEFT_EYE], 1].mean()
    # Eye spacing: each eye (and its brow, half as much) shifts outward by up to 4 mm.
    spread = rng.uniform(-4.0, 4.0)
    for eye, brow, side in ((RIGHT_EYE, range(17, 22), -1), (LEFT_EYE, range(22, 27), 1)):
        shape[list(eye), 0] += side * spread
        shape[list(brow), 0] += side * spread / 2
        # Eye size: scaled about its own centre by 0.85..1.2.
        centre = shape[list(eye)].mean(axis=0)
        shape[list(eye)] = centre + (shape[list(eye)] - centre) * rng.uniform(0.85, 1.2)
    # Nose: length 0.9..1.15 (from the bridge top), nostril width 0.85..1.25.
    nose = list(NOSE)
    shape[nose, 1] = shape[27, 1] + (shape[nose, 1] - shape[27, 1]) * rng.uniform(0.9, 1.15)
    nostrils = list(range(31, 36))
    nostril_width = rng.uniform(0.85, 1.25)
    shape[nostrils, 0] = shape[33, 0] + (shape[nostrils, 0] - shape[33, 0]) * nostril_width
    # Mouth width: 0.85..1.2 about the mouth centre.
    mouth = list(MOUTH)
    centre_x = shape[mouth, 0].mean()
    shape[mouth, 0] = centre_x + (shape[mouth, 0] - centre_x) * rng.uniform(0.85, 1.2)
    # Jaw width: the lower jaw (strongest at the chin's sides) 0.88..1.12.
    jaw_scale = rng.uniform(0.88, 1.12)
    for i in JAW:
        weight = np.clip((shape[i, 1] - eye_centre_y) / 110.0, 0.0, 1.0)
        shape[i, 0] = shape[8, 0] + (shape[i, 0] - shape[8, 0]) * (1 + (jaw_scale - 1) * weight)
    # Face length: everything below the eyes stretched 0.92..1.1 downward.
    below = shape[:, 1] > eye_centre_y
    shape[below, 1] = eye_centre_y + (shape[below, 1] - eye_centre_y) * rng.uniform(0.92, 1.1)
    gain = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.12, 0.12) * np.array([1.0, 0.0, -1.0])
    gain = gain * rng.uniform(0.95, 1.05, size=3)  # tone: warmer/cooler, slightly tinted
    gamma = float(rng.uniform(0.8, 1.25))  # brightness
    return Identity(f"id{index:02d}", portrait, shape, rotation, scale, offset, gain, gamma)


def identity_image(identity: Identity) -> np.ndarray:
    """The identity's portrait with its tone and brightness, RGB uint8 `(H, W, 3)`."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    luts = [np.clip(255.0 * levels**identity.gamma * g, 0, 255).round().astype(np.uint8)
            for g in identity.gain]
    return np.stack([lut[identity.portrait.image[..., c]] for c, lut in enumerate(luts)], axis=-1)


# --- expression ------------------------------------------------------------------------------


def move_by_aus(shape: np.ndarray, intensities: np.ndarray) -> np.ndarray:
    """The neutral `(68, 3)` face with the 18 AUs of `intensities` (0..1, AU_IDS order) applied."""
    moved = shape.copy()
    for au, value in zip(AU_IDS, intensities):
        if value <= 0:
            continue
        for point, move in AU_MOVES[au].items():
            moved[point] += value * np.asarray(move)
    closure = intensities[AU_IDS.index(45)]
    if closure > 0:
        # AU45 blink: each upper-lid point travels to 95 % of the way to the lower lid below it.
        for upper, lower in UPPER_LIDS.items():
            moved[upper] += 0.95 * closure * (moved[lower] - moved[upper])
    return moved
