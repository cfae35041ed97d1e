"""Imported once by extract's fork server: every worker forked from it starts with the modules
loaded and dlib's face detector built (see `glg.extract._worker_pool`)."""

import glg.extract  # noqa: F401  - the workers run its extract_clip
from glg.face_crop import face_detector

face_detector()
