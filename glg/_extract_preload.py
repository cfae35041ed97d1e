"""Imported once by extract's fork server: every worker forked from it starts with the modules
loaded and dlib's face detector built (see `glg.video._worker_pool`)."""

import pyarrow.parquet  # noqa: F401  - the workers write Parquet parts
import pandas  # noqa: F401  - pyarrow imports it lazily on the first table

from glg import video

video._face_detector()
