"""dlib's model files as the `face-recognition-models` wheel ships them: the 68-point shape
predictor and the 128-d face embedder, found on disk (never imported: the package's `__init__`
needs the removed `pkg_resources`). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from glg.errors import GlgError

SHAPE_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
FACE_EMBEDDER = "dlib_face_recognition_resnet_model_v1.dat"


def model_file(name: str) -> Path:
    """The path of one of the wheel's model files; one-line `GlgError` if absent."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise GlgError(f"face_recognition_models: package not installed (needed for dlib's {name})")
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise GlgError(f"{path}: dlib model file missing")
    return path
