"""Built-in demo dataset: talking-head clips rendered from two public-domain portraits.

Each identity is a portrait (scikit-image's astronaut or matplotlib's Grace Hopper) with its own
3D face shape and colouring. Every frame moves the identity's 68 landmarks in 3D by the frame's
action units (the paper's 18, Sec III-B-2), rotates them by the frame's head pose (pitch, yaw,
roll, `glg.landmarks.rotation_matrix`), projects them with a weak-perspective camera and warps the
portrait piecewise-affinely so that its own landmarks land on the projected ones. The projected
landmarks, the pose and the active AUs are the ground truth, exact by construction.

Conventions: images RGB uint8 `(H, W, 3)`; landmarks `(68, 2)` pixels with pixel centres at
integer coordinates (as OpenCV's remap and dlib); 3D shapes `(N, 3)` in MEAN_FACE_3D's frame.
"""

from __future__ import annotations

import functools
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from glg.config import SynthesizeConfig
from glg.dlib_models import SHAPE_PREDICTOR, model_file
from glg.errors import GlgError
from glg.landmarks import (AU_IDS, AU_PRESENCE, JAW, LEFT_EYE, MOUTH, NOSE, POSE_COLUMNS, RIGHT_EYE,
                           X_COLUMNS, Y_COLUMNS, rotation_matrix)
from glg.mean_face import MEAN_FACE_3D
from glg.synthetic_render import backward_map, border_points, paint_mouth_and_lids

PORTRAITS = ("astronaut", "grace_hopper")  # identity i is deformed from PORTRAITS[i % 2]
GROUND_TRUTH = "ground_truth.parquet"
FOURCC = "mp4v"  # MPEG-4 Part 2 through OpenCV's FFmpeg: deterministic, readable everywhere

# An AU is present in the ground truth when its intensity (0..1, FACS' 0..5 scale / 5) reaches
# 0.4, i.e. FACS intensity 2 ("B", slight evidence); the paper fixes no threshold (Sec IV-A
# takes presence from OpenFace), so this is our choice.
PRESENT_AT = 0.4

FACE_WIDTH = 0.46  # jaw-to-jaw width of a frontal face, as a fraction of the frame side
FACE_CENTRE_Y = 0.50  # height of MEAN_FACE_3D's origin (about the nose tip), fraction of side
PIVOT = np.array([0.0, 30.0, -90.0])  # the head turns about a point behind the face (neck), mm
MAX_POSE = (15.0, 25.0, 15.0)  # |pitch|, |yaw|, |roll| limits of the trajectories, degrees

# Points that move with the head but are not landmarks: forehead, crown, the sides of the head
# and the neck, in MEAN_FACE_3D's frame (mm). They keep the hair and the forehead turning with
# the face instead of stretching between the brows and the frame border.
HEAD_ANCHORS = np.array(
    [[x, -88.0, 8.0 - 0.01 * x * x] for x in (-60.0, -30.0, 0.0, 30.0, 60.0)]  # forehead
    + [[x, -135.0, -30.0 - 0.004 * x * x] for x in (-70.0, 0.0, 70.0)]  # crown
    + [[sx * 92.0, y, -75.0] for sx in (-1.0, 1.0) for y in (-70.0, -20.0, 30.0)]  # head sides
    + [[sx * 60.0, 85.0, -70.0] for sx in (-1.0, 1.0)],  # behind the jaw angles
)
NECK_ANCHORS = np.array([[-45.0, 125.0, -60.0], [0.0, 130.0, -40.0], [45.0, 125.0, -60.0]])

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
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            encoded = np.frombuffer(f.read(), dtype=np.uint8)
        return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    raise GlgError(f"portrait {name!r}: unknown; allowed: {', '.join(PORTRAITS)}")


@functools.cache
def _predictor():
    import dlib

    return dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR)))


@functools.cache
def load_portrait(name: str) -> Portrait:
    """A portrait with the landmarks of its best-scoring dlib face."""
    import dlib

    image = portrait_image(name)
    boxes, scores, _ = dlib.get_frontal_face_detector().run(image, 1, 0)
    if not boxes:
        raise GlgError(f"portrait {name}: dlib found no face")
    box = boxes[int(np.argmax(scores))]
    shape = _predictor()(image, box)
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


# --- expression and pose --------------------------------------------------------------------


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


def smooth_trajectory(rng: np.random.Generator, n: int, fps: float, limit: float) -> np.ndarray:
    """`(n,)` angle in degrees: an offset plus two slow sines, never past +-limit."""
    t = np.arange(n) / fps
    reach = limit * rng.uniform(0.7, 1.0)  # how far this clip may go
    weights = rng.dirichlet([2.0, 2.0, 2.0]) * reach
    frequencies = rng.uniform(0.15, 0.5, size=2)  # Hz: a head turn takes 1..3 s
    phases = rng.uniform(0, 2 * np.pi, size=2)
    offset = weights[0] * rng.choice([-1.0, 1.0])
    waves = sum(w * np.sin(2 * np.pi * f * t + p)
                for w, f, p in zip(weights[1:], frequencies, phases))
    return offset + waves


def au_envelope(n: int, start: int, rise: int, hold: int, fall: int, peak: float) -> np.ndarray:
    """`(n,)` intensity of one AU event: smooth rise, hold at `peak`, smooth fall."""
    t = np.arange(n, dtype=np.float64)
    up = np.clip((t - start) / max(rise, 1), 0, 1)
    down = np.clip((start + rise + hold + fall - t) / max(fall, 1), 0, 1)
    ramp = np.minimum(up, down)
    return peak * (0.5 - 0.5 * np.cos(np.pi * ramp))  # eased ramps


@dataclass(frozen=True)
class ClipPlan:
    """What one clip shows, frame by frame."""

    identity: int  # index of the identity
    name: str  # clip name, e.g. "clip00"
    poses: np.ndarray  # (T, 3) pitch, yaw, roll in degrees
    aus: np.ndarray  # (T, 18) AU intensities 0..1 in AU_IDS order
    shifts: np.ndarray  # (T, 2) head translation, fraction of the frame side
    zooms: np.ndarray  # (T,) head scale factor


def plan_clip(rng: np.random.Generator, identity: int, name: str, n: int, fps: float,
              deck: list[int]) -> ClipPlan:
    """Pose trajectories and AU events of one clip; non-blink AUs are dealt from `deck`, which
    is refilled with a fresh shuffle of all 17 when empty, so every AU recurs evenly."""
    poses = np.stack([smooth_trajectory(rng, n, fps, limit) for limit in MAX_POSE], axis=-1)
    shifts = np.stack([smooth_trajectory(rng, n, fps, 0.03) for _ in range(2)], axis=-1)
    zooms = 1.0 + smooth_trajectory(rng, n, fps, 0.04)
    aus = np.zeros((n, len(AU_IDS)))
    # Expression events: about 2 a second, each 0.4..1.4 s long, a few overlapping.
    start = int(rng.integers(-fps // 2, fps // 4 + 1))
    while start < n:
        if not deck:
            deck.extend(rng.permutation([au for au in AU_IDS if au != 45]).tolist())
        au = deck.pop()
        rise, fall = (int(v) for v in rng.integers(3, 9, size=2))  # onset, offset: 3..8 frames
        hold = int(rng.integers(2, 20))
        curve = au_envelope(n, start, rise, hold, fall, rng.uniform(0.6, 1.0))
        # A dropped jaw parts the lips (FACS codes 25+26 together).
        targets = (au, 25) if au == 26 else (au,)
        for target in targets:
            column = AU_IDS.index(target)
            aus[:, column] = np.maximum(aus[:, column], curve)
        start += int(rng.integers(fps // 4, fps * 3 // 4 + 1))
    # Blinks: one every 0.6..2.5 s, 6..9 frames from open to closed to open (about 0.3 s).
    start = int(rng.integers(0, fps))
    while start < n:
        rise, hold, fall = int(rng.integers(2, 4)), int(rng.integers(1, 3)), int(rng.integers(3, 5))
        blink = au_envelope(n, start, rise, hold, fall, 1.0)
        aus[:, AU_IDS.index(45)] = np.maximum(aus[:, AU_IDS.index(45)], blink)
        start += int(rng.integers(int(0.6 * fps), int(2.5 * fps) + 1))
    return ClipPlan(identity, name, poses, aus, shifts, zooms)


def plan_dataset(config: SynthesizeConfig, seed: int) -> tuple[list[Identity], list[ClipPlan]]:
    """Every identity and every clip plan, drawn in one fixed order from `seed`."""
    rng = np.random.default_rng(seed)
    identities = [make_identity(i, rng) for i in range(config.identities)]
    n = max(1, round(config.seconds * config.fps))
    deck: list[int] = []
    plans = [plan_clip(rng, i, f"clip{c:02d}", n, config.fps, deck)
             for i in range(config.identities) for c in range(config.clips_per_identity)]
    return identities, plans


# --- rendering ------------------------------------------------------------------------------


def frame_camera(size: int) -> tuple[float, np.ndarray]:
    """px per mm and the px position of the 3D origin for a centred frontal face."""
    face_width = MEAN_FACE_3D[16, 0] - MEAN_FACE_3D[0, 0]
    return FACE_WIDTH * size / face_width, np.array([size / 2, FACE_CENTRE_Y * size])


@functools.cache
def triangles(size: int) -> np.ndarray:
    """`(K, 3)` vertex indices of the warp mesh: a Delaunay triangulation of the mean face's
    landmarks (inner lips open, so the mouth has its own triangles), head, neck and border
    anchors, in a frontal frame of side `size`."""
    from scipy.spatial import Delaunay

    scale, offset = frame_camera(size)
    face, _ = project(np.concatenate([MEAN_FACE_3D, HEAD_ANCHORS, NECK_ANCHORS]), np.eye(3),
                      scale, offset)
    return Delaunay(np.concatenate([face, border_points(size)])).simplices.astype(np.int64)


def warp_points(identity: Identity, pose: np.ndarray, intensities: np.ndarray, shift: np.ndarray,
                zoom: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh vertices in the portrait `(N, 2)`, in the frame `(N, 2)` and their depth `(N,)`;
    the first 68 frame vertices are the frame's landmarks."""
    rotation = rotation_matrix(*pose)
    base_scale, base_offset = frame_camera(size)
    scale, offset = base_scale * zoom, base_offset + shift * size
    src_face = identity.portrait.landmarks
    src_head, _ = project(HEAD_ANCHORS, identity.source_pose, identity.source_scale,
                          identity.source_offset)
    src_neck, _ = project(NECK_ANCHORS, identity.source_pose, identity.source_scale,
                          identity.source_offset)
    dst_face, z_face = project(move_by_aus(identity.shape, intensities), rotation, scale, offset)
    dst_head, z_head = project(HEAD_ANCHORS, rotation, scale, offset)
    # The neck follows the head's translation halfway and does not turn with it.
    dst_neck, z_neck = project(NECK_ANCHORS, np.eye(3), base_scale, base_offset + shift * size / 2)
    # The background is a fixed crop of the portrait: frame px -> portrait px.
    dst_border = border_points(size)
    ratio = identity.source_scale / base_scale
    src_border = identity.source_offset + (dst_border - base_offset) * ratio
    src = np.concatenate([src_face, src_head, src_neck, src_border])
    dst = np.concatenate([dst_face, dst_head, dst_neck, dst_border])
    depth = np.concatenate([z_face, z_head, z_neck, np.full(len(dst_border), -1e4)])
    return src, dst, depth


def render_frame(identity: Identity, image: np.ndarray, pose: np.ndarray, intensities: np.ndarray,
                 shift: np.ndarray, zoom: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One frame, RGB uint8 `(size, size, 3)`, and its ground-truth landmarks `(68, 2)`.

    `image` is `identity_image(identity)`, passed in so a clip colours its portrait once.
    """
    src, dst, depth = warp_points(identity, pose, intensities, shift, zoom, size)
    map_x, map_y = backward_map(src, dst, depth, triangles(size), size)
    frame = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    landmarks = dst[:68]
    closure = float(intensities[AU_IDS.index(45)])
    return paint_mouth_and_lids(frame, landmarks, closure), landmarks


def render_clip(identity: Identity, plan: ClipPlan, path: Path, size: int,
                fps: int) -> pd.DataFrame:
    """Render and encode one clip to `path`; its ground truth, one row per frame."""
    cv2.setNumThreads(1)  # one clip per process; also keeps the output independent of threads
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (size, size))
    if not writer.isOpened():
        raise GlgError(f"{path}: OpenCV cannot open an {FOURCC} video writer")
    image = identity_image(identity)
    landmarks = np.zeros((len(plan.poses), 68, 2))
    try:
        for t in range(len(plan.poses)):
            frame, landmarks[t] = render_frame(identity, image, plan.poses[t], plan.aus[t],
                                               plan.shifts[t], plan.zooms[t], size)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return ground_truth_table(identity.name, plan, landmarks)


def ground_truth_table(identity: str, plan: ClipPlan, landmarks: np.ndarray) -> pd.DataFrame:
    """The ground-truth rows of one clip: ids, landmarks (px), pose (degrees), AU presence."""
    n = len(plan.poses)
    columns = {"identity": [identity] * n, "video": [plan.name] * n,
               "frame": np.arange(n, dtype=np.int64)}
    columns |= {c: landmarks[:, i, 0].astype(np.float32) for i, c in enumerate(X_COLUMNS)}
    columns |= {c: landmarks[:, i, 1].astype(np.float32) for i, c in enumerate(Y_COLUMNS)}
    columns |= {c: plan.poses[:, i].astype(np.float32) for i, c in enumerate(POSE_COLUMNS)}
    columns |= {c: (plan.aus[:, i] >= PRESENT_AT).astype(np.int8)
                for i, c in enumerate(AU_PRESENCE)}
    return pd.DataFrame(columns)


def _render_job(job: tuple[Identity, ClipPlan, Path, int, int]) -> pd.DataFrame:
    return render_clip(*job)


def synthesize(out: Path, config: SynthesizeConfig, seed: int) -> pd.DataFrame:
    """Write the demo dataset to `out`: `<identity>/<clip>.mp4` and `ground_truth.parquet`.

    The result depends only on `config` (not `config.workers`) and `seed`. `out` is replaced
    as a whole; an existing folder that is not a previous output is refused.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / GROUND_TRUTH).is_file():
        raise GlgError(f"{out}: exists and is not a synthesize output; refusing to replace it")
    identities, plans = plan_dataset(config, seed)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    jobs = [(identities[p.identity], p, partial / identities[p.identity].name / f"{p.name}.mp4",
             config.size, config.fps) for p in plans]
    if config.workers > 1 and len(jobs) > 1:
        workers = min(config.workers, len(jobs))
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            tables = list(pool.map(_render_job, jobs))
    else:
        tables = [_render_job(job) for job in jobs]
    truth = pd.concat(tables, ignore_index=True)
    truth.to_parquet(partial / GROUND_TRUTH, index=False)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return truth
