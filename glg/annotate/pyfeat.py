"""The py-feat backend (extra `glg[pyfeat]`): py-feat 2.1's `Detectorv1` mapped to glg's schema.

Models: img2pose (face box and 6-DoF head pose), mobilefacenet (68 landmarks), xgb (AU
probabilities from HOG + landmarks), ArcFace R50 (512-d identity). Weights live in py-feat's
Hugging Face cache (`<feat>/resources`); nothing is downloaded here: the cache is checked before
py-feat is imported, and a missing file fails at once with one `GlgError` naming it.

Mapping onto the schema (`from_fex`):
- py-feat's pose convention is +pitch = up, +yaw = turn to the subject's right, +roll = tilt to
  the subject's right (`feat/detector.py`); glg's (`glg.face.landmarks.rotation_matrix`) has yaw > 0
  nose toward the image right (the subject's left) and roll > 0 clockwise in the image, so
  pitch = Pitch, yaw = -Yaw, roll = -Roll.
- AUs: `AUxx_r` is py-feat's probability, `AUxx_c` = probability >= 0.5. py-feat has no AU45
  (blink); its AU43 (eyes closed) stands in for it. py-feat's AU11 and AU24 are not in the
  paper's set and are dropped.
- Several faces in a frame: the one with the highest face score is kept.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from glg.errors import GlgError
from glg.face.landmarks import AU_IDS, N_LANDMARKS, X_COLUMNS, Y_COLUMNS
from glg.store.annotations import ClipResult, failed_result

AU_THRESHOLD = 0.5  # presence when py-feat's AU probability reaches this
BATCH = 16  # frames per py-feat forward pass
# (repo, file name, alternatives) of every weight file Detectorv1 loads in this configuration.
REQUIRED_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("py-feat/img2pose", ("config.json",)),
    ("py-feat/img2pose", ("model.safetensors",)),
    ("py-feat/mobilefacenet", ("mobilefacenet_model_best.pth.tar",)),
    ("py-feat/xgb_au", ("xgb_au_classifier_v2.skops", "xgb_au_classifier.skops")),
    ("py-feat/arcface_r50", ("arcface_r50.safetensors",)),
)
# py-feat's AU column feeding each of the paper's AUs (AU45 from AU43, see above).
FEAT_AU = {au: f"AU{au:02d}" for au in AU_IDS} | {45: "AU43"}


def cache_dir() -> Path:
    """py-feat's model cache (`feat.utils.io.get_resource_path`), found without importing feat."""
    spec = importlib.util.find_spec("feat")
    if spec is None or not spec.submodule_search_locations:
        raise GlgError("annotate.backend=pyfeat: py-feat is not installed (install glg[pyfeat])")
    return Path(spec.submodule_search_locations[0]) / "resources"


def missing_weights(cache: Path) -> list[str]:
    """`repo/file` of every required weight file absent from a Hugging Face cache folder."""
    missing = []
    for repo, names in REQUIRED_FILES:
        snapshots = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
        if repo == "py-feat/arcface_r50" and os.environ.get("FEAT_ARCFACE_R50_PATH"):
            if Path(os.environ["FEAT_ARCFACE_R50_PATH"]).is_file():
                continue
        if not any(next(snapshots.glob(f"*/{n}"), None) for n in names):
            missing.append(f"{repo}/{names[0]}")
    return missing


def check_weights() -> None:
    """Raise one `GlgError` naming every missing weight file; imports nothing heavy (< 1 s)."""
    cache = cache_dir()
    missing = missing_weights(cache)
    if missing:
        raise GlgError(
            f"{cache}: py-feat weights missing ({', '.join(missing)}); fetch them once online, "
            "e.g. `python -c \"from feat.detector import Detectorv1; Detectorv1(face_model="
            "'img2pose', emotion_model=None, gaze_model=None)\"`, "
            "or use annotate.backend=dlib")


def load_detector(device: str = "cpu"):
    """py-feat's `Detectorv1` from cached weights only; one `GlgError` naming what is missing."""
    check_weights()
    os.environ["HF_HUB_OFFLINE"] = "1"  # everything is cached: never wait on the network
    from feat.detector import Detectorv1

    return Detectorv1(face_model="img2pose", landmark_model="mobilefacenet", au_model="xgb",
                      emotion_model=None, identity_model="arcface", gaze_model=None,
                      device=device)


def from_fex(fex: pd.DataFrame, frames: np.ndarray) -> ClipResult:
    """Map py-feat's `Fex` (rows: faces, column `frame` = position in `frames`) onto the schema.

    `frames` (N,) are the clip's frame indices; a frame without a face gets a failed row.
    """
    n = len(frames)
    if n == 0:
        return failed_result(0)
    box = np.full((n, 4), np.nan, np.float32)
    conf = np.zeros(n, np.float32)
    points = np.full((n, N_LANDMARKS, 2), np.nan, np.float32)
    pose = np.full((n, 3), np.nan, np.float32)
    au_score = np.full((n, len(AU_IDS)), np.nan, np.float32)
    identity = None
    faces = pd.DataFrame(fex).dropna(subset=["FaceRectX", "FaceScore"])
    faces = faces.sort_values(["frame", "FaceScore"], ascending=[True, False], kind="stable")
    faces = faces.drop_duplicates("frame")  # the most confident face per frame
    pos = faces["frame"].to_numpy(np.int64)
    x0, y0 = faces["FaceRectX"].to_numpy(), faces["FaceRectY"].to_numpy()
    box[pos] = np.stack([x0, y0, x0 + faces["FaceRectWidth"].to_numpy(),
                         y0 + faces["FaceRectHeight"].to_numpy()], -1)
    conf[pos] = faces["FaceScore"].to_numpy()
    points[pos] = np.stack([faces[list(X_COLUMNS)].to_numpy(), faces[list(Y_COLUMNS)].to_numpy()],
                           -1)
    # py-feat: +pitch up, +yaw to the subject's right, +roll to the subject's right (see above).
    pose[pos] = np.stack([faces["Pitch"], -faces["Yaw"], -faces["Roll"]], -1)
    for k, au in enumerate(AU_IDS):
        if FEAT_AU[au] in faces:
            au_score[pos, k] = faces[FEAT_AU[au]].to_numpy()
    success = np.isfinite(points).all((1, 2)) & np.isfinite(box).all(1)
    points[~success], pose[~success], au_score[~success] = np.nan, np.nan, np.nan
    conf[~success] = 0.0
    presence = (np.nan_to_num(au_score, nan=0.0) >= AU_THRESHOLD).astype(np.int8)
    id_columns = [c for c in faces.columns if c.startswith("Identity_")]
    if id_columns and success.any():
        ok = faces[success[pos]]
        vectors = ok[sorted(id_columns, key=lambda c: int(c.split("_")[1]))].to_numpy(np.float64)
        vectors = vectors[np.isfinite(vectors).all(1)]
        if len(vectors):
            mean = vectors.mean(0)
            identity = (mean / np.linalg.norm(mean)).astype(np.float32)
    return ClipResult(frame=np.asarray(frames, np.int64), success=success, confidence=conf,
                      box=box, landmarks=points, pose=pose, au_presence=presence,
                      au_score=au_score, embedding=identity)


class PyFeatBackend:
    """py-feat's detector over a clip's frames, in batches of `BATCH`."""

    name = "pyfeat"

    def __init__(self, device: str = "cpu"):
        self.detector = load_detector(device)

    def annotate_clip(self, frames: Iterable[tuple[int, np.ndarray]]) -> ClipResult:
        """Annotate one clip's frames (index, RGB uint8 (H, W, 3)) in order."""
        import torch

        index, images = [], []
        for i, image in frames:
            index.append(i)
            images.append(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
        if not index:
            return failed_result(0)
        fex = self.detector.detect(torch.stack(images), data_type="tensor", batch_size=BATCH,
                                   progress_bar=False)  # (faces, columns); frame = position
        return from_fex(fex, np.asarray(index, np.int64))
