"""Test helper: small video clips of a real face (the astronaut) written to disk, and a tiny
extract config, for the decoding, face-crop and extract tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data

from glg.config import ExtractConfig

# The astronaut's face in this 256 px window of skimage's astronaut() is at about
# x 66..182, y 72..189 (dlib's box, FACE); the clips slide this window over a canvas.
FACE_WINDOW = skimage.data.astronaut()[:256, 96:352]
FACE = np.array([66, 72, 182, 189])


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 25.0, fourcc: str = "mp4v",
               color: bool = True) -> Path:
    """RGB frames (or gray ones with `color=False`) -> a video file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height),
                             isColor=color)
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame if not color else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def panning_face(n: int, canvas=(320, 320), step: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames with the face window moving right by `step` px a frame, and each frame's
    window offset `(n, 2)` as x, y."""
    frames, offsets = [], []
    height, width = canvas
    for t in range(n):
        frame = np.full((height, width, 3), 90, np.uint8)
        x, y = 8 + step * t, (height - 256) // 2
        frame[y:y + 256, x:x + 256] = FACE_WINDOW
        frames.append(frame)
        offsets.append((x, y))
    return frames, np.array(offsets)


def small_config(**changes) -> ExtractConfig:
    base = dict(crop_px=64, fps=25.0, max_frames=250, detect_every=3, workers=1, jpeg_quality=90)
    return ExtractConfig(**(base | changes))
