"""dlib's models, each loaded once per process: the HOG face detector (inside dlib) and, as the
`face-recognition-models` wheel ships them, the 68-point shape predictor and the 128-d face
embedder, found on disk (never imported: the package's `__init__` needs the removed
`pkg_resources`). Nothing is downloaded. The loaded models hold no per-call state, so every
backend, reader and synthesizer in a process shares them.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
from pathlib import Path

import dlib

from glg.errors import GlgError

SHAPE_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
FACE_EMBEDDER = "dlib_face_recognition_resnet_model_v1.dat"

_detector: dlib.fhog_object_detector | None = None


def model_file(name: str) -> Path:
    """The path of one of the wheel's model files; one-line `GlgError` if absent."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise GlgError(f"face_recognition_models: package not installed (needed for dlib's {name})")
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise GlgError(f"{path}: dlib model file missing")
    return path


def face_detector() -> dlib.fhog_object_detector:
    """dlib's HOG frontal face detector (it ships inside dlib, compressed: building it takes
    0.3 s of a core, unpickling a built one 1 ms)."""
    global _detector
    if _detector is None:
        _detector = dlib.get_frontal_face_detector()
    return _detector


def use_face_detector(pickled: bytes) -> None:
    """Make `face_detector()` the detector another process built and pickled."""
    global _detector
    _detector = pickle.loads(pickled)


@functools.cache
def shape_predictor() -> dlib.shape_predictor:
    """The 68-point shape predictor (a 100 MB file: 0.4 s to load)."""
    return dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR)))


@functools.cache
def face_embedder() -> dlib.face_recognition_model_v1:
    """The 128-d face embedder (ResNet)."""
    return dlib.face_recognition_model_v1(str(model_file(FACE_EMBEDDER)))
