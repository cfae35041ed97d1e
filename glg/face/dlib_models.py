"""dlib's models, each loaded once per process: the HOG face detector (inside dlib) and, as the
`face-recognition-models` wheel ships them, the 68-point shape predictor and the 128-d face
embedder, found on disk (never imported: the package's `__init__` needs the removed
`pkg_resources`). Nothing is downloaded. The loaded models hold no per-call state, so every
backend, reader and synthesizer in a process shares them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
from pathlib import Path

import dlib

from glg.errors import GlgError

SHAPE_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
FACE_EMBEDDER = "dlib_face_recognition_resnet_model_v1.dat"

_detector: dlib.fhog_object_detector | None = None
_building = threading.Lock()


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
    """dlib's HOG frontal face detector. It ships inside dlib compressed, and building it takes
    0.27 s of a core, a tenth of extracting the six real clips on two cores; so it is built
    once per dlib version and kept in dlib's own format at `detector_cache()`, which loads in
    1 ms (the same detector: dlib serialises its filters exactly). A cache file that does not
    load is built again; where the folder cannot be written, every process builds its own."""
    global _detector
    with _building:  # extract's main thread and its pool's starting thread both ask
        if _detector is None:
            path = detector_cache()
            try:
                _detector = dlib.fhog_object_detector(str(path))
            except RuntimeError:  # absent, or not a detector dlib can read
                _detector = dlib.get_frontal_face_detector()
                _keep(_detector, path)
    return _detector


def detector_cache() -> Path:
    """Where the built face detector is kept: `$XDG_CACHE_HOME` or ~/.cache, then glg/."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "glg" / f"dlib-{dlib.__version__}-frontal-face-detector.svm"


def _keep(detector: dlib.fhog_object_detector, path: Path) -> None:
    """Save `detector` at `path` atomically (processes building at once each write their own
    file and rename it), or not at all where that fails."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        detector.save(str(partial))
        os.replace(partial, path)
    except (OSError, RuntimeError):  # a read-only home: the next process builds it again
        with contextlib.suppress(OSError):
            partial.unlink()


@functools.cache
def shape_predictor() -> dlib.shape_predictor:
    """The 68-point shape predictor (a 100 MB file: 0.4 s to load)."""
    return dlib.shape_predictor(str(model_file(SHAPE_PREDICTOR)))


@functools.cache
def face_embedder() -> dlib.face_recognition_model_v1:
    """The 128-d face embedder (ResNet)."""
    return dlib.face_recognition_model_v1(str(model_file(FACE_EMBEDDER)))
