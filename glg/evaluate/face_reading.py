"""Faces of independent images for the evaluation (thesis 4.2): whether a face is found, its 68
landmarks, pose, AUs and identity embedding, read by the `annotate` backend and a
`glg.evaluate.face_id` embedder, each keyed image once.

Unlike `annotate`, which tracks a face through a clip, every image here stands alone: the dlib
backend detects and fits it afresh (the detection path of `glg.annotate.dlib`, with its shape
check), py-feat reads it as it reads any frame. Landmarks are in the image's pixels
(`glg.face.landmarks`), pose in degrees (`glg.face.landmarks.rotation_matrix`).

AU baselines (dlib): the geometric rules of `glg.annotate.aus` compare a face with the neutral
of its clip. An image read here is compared with the neutral of the clip whose person it shows,
taken from that clip's stored annotations (`clip_neutrals`): a generated output shows the source
person, so the caller passes the source's clip, for a driving frame read as an output (the
oracle row) too; the driving frame read as the reference passes its own clip. In
self-reenactment source and driving share one clip, so "driving as output" differs from the
stored annotations only by the annotator's own noise (a fresh detection instead of tracking, the
224 px frame instead of the stored one). py-feat reads AUs per image and
needs no neutral.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal, NamedTuple

import cv2
import numpy as np
import pandas as pd

from glg.annotate.aus import GEOMETRIC_AUS, action_units, neutral
from glg.annotate.dlib import MAX_SHAPE_RESIDUAL, DlibBackend, shape_residual
from glg.errors import GlgError
from glg.evaluate.face_id import Embedder
from glg.face.landmarks import AU_IDS, N_LANDMARKS, landmarks_from_table
from glg.face.mean_face import head_pose

Clip = tuple[str, str]  # (identity, video) of a stored clip
Annotator = Literal["dlib", "pyfeat"]


def measured_aus(annotator: Annotator) -> tuple[int, ...]:
    """The AUs an annotator measures: AUCON's denominator (thesis Eq. 4.4) counts only these."""
    if annotator == "dlib":
        return GEOMETRIC_AUS  # 68 points cannot show AUs 6, 9, 14, 28 (glg.annotate.aus)
    return AU_IDS  # py-feat scores all 18 (AU45 through its AU43, glg.annotate.pyfeat)


def clip_neutrals(annotations: pd.DataFrame) -> dict[Clip, dict[str, float]]:
    """Each clip's neutral AU baseline from its stored annotation rows (`identity`, `video`,
    `success`, `x_i`, `y_i`; any pixel size), over its successful frames as `annotate` took it."""
    ok = annotations[annotations["success"].astype(bool)]
    return {(str(i), str(v)): neutral(landmarks_from_table(rows))
            for (i, v), rows in ok.groupby(["identity", "video"], sort=False)}


class Readings(NamedTuple):
    """What was read of N images; rows without a face hold NaN (AU presence 0)."""

    found: np.ndarray  # (N,) bool: a face was found and fitted
    landmarks: np.ndarray  # (N, 68, 2) float64, pixels of the image
    pose: np.ndarray  # (N, 3) float64, pitch yaw roll in degrees
    au_presence: np.ndarray  # (N, 18) int8 in AU_IDS order; 0 where not measured
    embedding: np.ndarray  # (N, D) float32 unit rows; (N, 0) without an embedder
    annotator: str
    embedder: str | None
    measured_aus: tuple[int, ...]  # the AUs `au_presence` measures


class _Face(NamedTuple):
    """One image's reading, independent of any neutral (what the cache holds)."""

    found: bool
    landmarks: np.ndarray  # (68, 2)
    pose: np.ndarray  # (3,)
    au_presence: np.ndarray | None  # (18,) per image (py-feat); None: from the neutral (dlib)
    embedding: np.ndarray  # (D,)


class FaceReader:
    """Reads faces of images with the `annotator` backend and an optional embedder; an image given
    with a key is read once, later calls with the key reuse it (sources repeat across pairs).

    `neutrals` maps each clip to its AU baseline (`clip_neutrals`); the dlib annotator needs the
    clip of every image it reads. `images_read` counts the images actually read.
    """

    def __init__(self, annotator: Annotator = "dlib", embedder: Embedder | None = None,
                 neutrals: Mapping[Clip, dict[str, float]] | None = None, device: str = "cpu"):
        self.annotator = annotator
        self.embedder = embedder
        self.neutrals = dict(neutrals or {})
        self.images_read = 0
        self._cache: dict[Hashable, _Face] = {}
        if annotator == "dlib":
            self._backend = DlibBackend()
        elif annotator == "pyfeat":
            from glg.annotate.pyfeat import PyFeatBackend  # torch and py-feat: only when asked

            self._backend = PyFeatBackend(device)
        else:
            raise GlgError(f"annotate.backend: unknown backend {annotator!r}")

    def read(self, images: np.ndarray | Sequence[np.ndarray], clips: Sequence[Clip] | None,
             keys: Sequence[Hashable] | None = None) -> Readings:
        """Read N RGB uint8 images (H, W, 3); `clips` (N,) give each image's AU neutral (dlib),
        `keys` (N,) identify images worth caching (None: read every image)."""
        n = len(images)
        for name, given in (("keys", keys), ("clips", clips)):
            if given is not None and len(given) != n:
                raise ValueError(f"{n} images but {len(given)} {name}")
        if self.annotator == "dlib" and n:
            if clips is None:
                raise GlgError("the dlib annotator needs each image's clip for its AU neutral")
            missing = sorted({c for c in map(tuple, clips) if c not in self.neutrals})
            if missing:
                raise GlgError(f"no AU neutral for clip {'/'.join(missing[0])} (no successful "
                               f"annotated frame of it in the neutrals given)")
        faces: list[_Face | None] = [None] * n
        todo: dict[Hashable, list[int]] = {}  # key -> positions; unkeyed images by position
        for i in range(n):
            key = ("image", i) if keys is None else ("key", keys[i])
            if key in self._cache:
                faces[i] = self._cache[key]
            else:
                todo.setdefault(key, []).append(i)
        if todo:
            first = [at[0] for at in todo.values()]
            for key, face in zip(todo, self._read_faces([images[i] for i in first])):
                for i in todo[key]:
                    faces[i] = face
                if keys is not None:
                    self._cache[key] = face
            self.images_read += len(first)
        return self._collect(faces, clips)

    # --- reading ---------------------------------------------------------------------------

    def _read_faces(self, images: list[np.ndarray]) -> list[_Face]:
        """Annotate and embed images that were not read before."""
        if self.annotator == "dlib":
            found, landmarks, pose = self._dlib_faces(images)
            presence = [None] * len(images)
        else:
            result = self._backend.annotate_clip(enumerate(images))  # py-feat: per image anyway
            found = result.success.astype(bool)
            landmarks, pose = result.landmarks.astype(np.float64), result.pose.astype(np.float64)
            presence = list(result.au_presence)
        dim = 0 if self.embedder is None else self.embedder.dim
        embedding = np.zeros((len(images), dim), np.float32)
        if self.embedder is not None and len(images):
            embedding = self.embedder.embed(np.stack(images), landmarks)
        return [_Face(bool(found[i]), landmarks[i], pose[i], presence[i], embedding[i])
                for i in range(len(images))]

    def _dlib_faces(self, images: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """dlib's detection path of `DlibBackend.annotate_clip` on each image alone."""
        n = len(images)
        found = np.zeros(n, bool)
        landmarks = np.full((n, N_LANDMARKS, 2), np.nan)
        pose = np.full((n, 3), np.nan)
        for i, image in enumerate(images):
            gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
            detected = self._backend.detect(gray)
            if detected is None:
                continue
            fitted = self._backend.fit(gray, detected[0])
            if shape_residual(fitted) >= MAX_SHAPE_RESIDUAL:
                continue  # not face-shaped: the annotate stage rejects such a fit too
            angles = head_pose(fitted, gray.shape[1], gray.shape[0])
            if np.isfinite(angles).all():
                found[i], landmarks[i], pose[i] = True, fitted, angles
        return found, landmarks, pose

    def _collect(self, faces: list[_Face], clips: Sequence[Clip] | None) -> Readings:
        """Stack per-image readings; dlib's AU presence from each image's clip neutral."""
        n = len(faces)
        dim = 0 if self.embedder is None else self.embedder.dim
        found = np.array([f.found for f in faces], bool)
        landmarks = np.array([f.landmarks for f in faces]).reshape(n, N_LANDMARKS, 2)
        presence = np.zeros((n, len(AU_IDS)), np.int8)
        if self.annotator == "dlib":
            groups: dict[Clip, list[int]] = {}
            for i, clip in enumerate(clips or ()):
                groups.setdefault(tuple(clip), []).append(i)
            for clip, at in groups.items():
                presence[at] = action_units(landmarks[at], found[at], self.neutrals[clip])[0]
        elif n:
            presence = np.stack([f.au_presence for f in faces])
        return Readings(
            found=found, landmarks=landmarks,
            pose=np.array([f.pose for f in faces]).reshape(n, 3),
            au_presence=presence,
            embedding=np.array([f.embedding for f in faces], np.float32).reshape(n, dim),
            annotator=self.annotator,
            embedder=None if self.embedder is None else self.embedder.name,
            measured_aus=measured_aus(self.annotator))
