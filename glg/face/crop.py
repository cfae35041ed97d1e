"""Face crops: dlib's face boxes, the smoothed face track, and each frame's square crop.

Extract (and whatever must crop a clip exactly as extract does) feeds a clip's sampled frames,
from any source, to `crop_clip` or `tracked_crops` and gets back each frame's crop of
`extract.crop_px` px (256, the size VoxCeleb1 and CelebV come in, paper Sec IV-A) and its box.
A crop box is `(x0, y0, side)`: integers in source pixels, possibly past the image edge, where
the crop is padded black; a source point p lands in the crop at
`glg.face.landmarks.rescale_points(p - (x0, y0), side, size)` (glg/face/landmarks.py's pixel
convention). Frames and crops are in BGR order (glg/store/video.py's colour convention).

A clip is streamed, never held whole: dlib's HOG face detector runs on every `detect_every`-th
sampled frame, the face track is interpolated between detections and smoothed with a centred
kernel, and each frame is cropped as soon as the detections ahead of it are known (a bounded
buffer of frames). The `fixed` policy reads the frames twice instead: all detections, then the
crops.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from glg.config import ExtractConfig
from glg.face.dlib_models import face_detector
from glg.store.video import SampledFrame

# `frames(pixels_every)`: a clip's sampled frames from the start, every `pixels_every`-th one
# with its pixels (`glg.store.video.sample_frames` with the path, fps and max_frames bound).
FrameSource = Callable[[int], Iterable[SampledFrame]]


class Crop(NamedTuple):
    """One sampled frame's face crop and where it came from."""

    source_frame: int  # index of the frame in the source video, 0-based
    timestamp: float  # s
    box: np.ndarray  # (3,) int64 x0, y0, side in source pixels
    bgr: np.ndarray  # (size, size, 3) uint8


@dataclass
class CropCounts:
    """What cropping one clip saw, for the stage's log and its frames/s figure."""

    n_sampled: int = 0  # frames sampled, cropped or not
    last_source_frame: int = -1  # of the last frame sampled
    n_faces: int = 0  # detector runs that found a face
    most_faces: int = 0  # most faces in one frame
    dropped: int = 0  # sampled frames before the first face, left out


# --- face boxes ------------------------------------------------------------------------------


def detect_faces(gray: np.ndarray, detect_size: int) -> np.ndarray:
    """Face boxes `(N, 4)` as x0, y0, x1, y1 in pixels of a grayscale frame `(H, W)`, largest
    first; the detector sees the frame downscaled so its longer side is at most `detect_size`."""
    height, width = gray.shape[:2]
    scale = min(1.0, detect_size / max(height, width))
    if scale < 1.0:
        gray = cv2.resize(gray, (round(width * scale), round(height * scale)),
                          interpolation=cv2.INTER_AREA)
    rects = face_detector()(gray, 0)
    boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                     dtype=np.float64).reshape(-1, 4) / scale
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[np.argsort(-area, kind="stable")]


def face_centre(box: np.ndarray) -> np.ndarray:
    """A face box x0, y0, x1, y1 as cx, cy, side (the mean of width and height)."""
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, ((x1 - x0) + (y1 - y0)) / 2])


def smoothing_reach(config: ExtractConfig) -> int:
    """Half-width of the box smoothing window, sampled frames: where `smoothing^k` falls under
    1 %, so the truncated kernel loses nothing visible (0 for `per_frame` or no smoothing)."""
    if config.crop != "smoothed" or config.smoothing == 0:
        return 0
    return int(np.ceil(np.log(0.01) / np.log(config.smoothing)))


def crop_box(index: int, keys: list[int], faces: list[np.ndarray], last: int,
             config: ExtractConfig) -> np.ndarray:
    """The square crop box of sampled frame `index` as integer x0, y0, side, source pixels.

    The face track (cx, cy, side) is the detections `faces` at sampled indices `keys`,
    interpolated linearly and held past the ends; `smoothed` averages it over
    `index +- smoothing_reach` (clipped to 0..`last`) with weights `smoothing^|k - index|`, a
    centred exponential kernel: no lag, no jitter. The crop side is `crop_scale` x the face's.
    """
    reach = smoothing_reach(config)
    window = np.arange(max(0, index - reach), min(last, index + reach) + 1)
    values = np.array(faces)  # (D, 3)
    track = np.stack([np.interp(window, keys, values[:, c]) for c in range(3)], axis=1)
    weights = config.smoothing ** np.abs(window - index) if reach else np.ones(len(window))
    cx, cy, face = weights @ track / weights.sum()
    side = max(round(face * config.crop_scale), 2)
    return np.array([round(cx - side / 2), round(cy - side / 2), side], dtype=np.int64)


def fixed_box(faces: list[np.ndarray], config: ExtractConfig) -> np.ndarray:
    """Policy `fixed`: one crop for the clip, centred on the union of all detected face boxes
    `(D, 4)` and `crop_scale` x that union's longer side."""
    boxes = np.array(faces)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    side = max(round(max(x1 - x0, y1 - y0) * config.crop_scale), 2)
    return np.array([round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2), side],
                    dtype=np.int64)


def crop_frame(image: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """The square `side` px box at (x0, y0) of a frame (either colour order), padded black past
    the edges, resized to `size` with `INTER_AREA`: `(H, W, 3)` -> `(size, size, 3)`.

    A box of 1.5 `size` or more is first resampled bilinearly to exactly k x `size` (k the
    nearest integer ratio), then area-averaged by k: about 2x faster than OpenCV's non-integer
    `INTER_AREA` and within a grey level of it on average.
    """
    height, width = image.shape[:2]
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + side, width), min(y0 + side, height)
    if ix1 <= ix0 or iy1 <= iy0:
        return np.zeros((size, size, 3), np.uint8)
    region = image[iy0:iy1, ix0:ix1]
    pads = (iy0 - y0, y0 + side - iy1, ix0 - x0, x0 + side - ix1)
    if any(pads):
        region = cv2.copyMakeBorder(region, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    k = round(side / size)
    if k >= 2 and side != k * size:
        region = cv2.resize(region, (k * size, k * size), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


# --- one clip, streamed ----------------------------------------------------------------------


def crop_clip(frames: FrameSource, config: ExtractConfig, counts: CropCounts) -> Iterator[Crop]:
    """A clip's face crops under `config.crop`, in frame order, streamed; `counts` fills as
    they come. `smoothed` and `per_frame` read `frames` once, `fixed` twice."""
    if config.crop == "fixed":
        return fixed_crops(frames, config, counts)
    return tracked_crops(frames(1), config, counts)


def tracked_crops(frames: Iterable[SampledFrame], config: ExtractConfig,
                  counts: CropCounts) -> Iterator[Crop]:
    """Policies `smoothed` and `per_frame` in one pass over `frames` (every one with pixels).

    A frame is cropped once the detections reach `smoothing_reach` frames past it (or the frames
    end, or the buffer is full: then the last face is held), so at most `smoothing_reach + 2
    detect_every` frames are held; frames before the first face are left out past a full buffer.
    """
    reach = smoothing_reach(config)
    capacity = reach + 2 * config.detect_every
    keys: list[int] = []  # sampled indices with a detected face
    faces: list[np.ndarray] = []  # their cx, cy, side
    pending: collections.deque[SampledFrame] = collections.deque()

    def crop_first(last: int) -> Crop:
        frame = pending.popleft()
        box = crop_box(frame.index, keys, faces, last, config)
        return Crop(frame.source_frame, frame.timestamp, box,
                    crop_frame(frame.bgr, *map(int, box), config.crop_px))

    for frame in frames:
        counts.n_sampled = frame.index + 1
        counts.last_source_frame = frame.source_frame
        if frame.index % config.detect_every == 0:
            face = _largest_face(frame.bgr, config, counts)
            if face is not None:
                keys.append(frame.index)
                faces.append(face_centre(face))
        pending.append(frame)
        while pending and keys and keys[-1] >= pending[0].index + reach:
            yield crop_first(pending[0].index + reach)
        while len(pending) > capacity:
            if keys:
                yield crop_first(pending[0].index + reach)
            else:
                pending.popleft()
                counts.dropped += 1
    while pending and keys:
        yield crop_first(counts.n_sampled - 1)
    counts.dropped += len(pending)


def fixed_crops(frames: FrameSource, config: ExtractConfig,
                counts: CropCounts) -> Iterator[Crop]:
    """Policy `fixed` in two passes: the detections on every `detect_every`-th frame first, then
    every frame cropped to the one box around them all."""
    faces = []
    for frame in frames(config.detect_every):
        counts.n_sampled = frame.index + 1
        counts.last_source_frame = frame.source_frame
        if frame.index % config.detect_every == 0:
            face = _largest_face(frame.bgr, config, counts)
            if face is not None:
                faces.append(face)
    if not faces:
        return
    box = fixed_box(faces, config)
    # pass 2 may decode fewer frames than pass 1 (a stream cut short): those are kept
    for frame in itertools.islice(frames(1), counts.n_sampled):
        yield Crop(frame.source_frame, frame.timestamp, box,
                   crop_frame(frame.bgr, *map(int, box), config.crop_px))


def _largest_face(bgr: np.ndarray, config: ExtractConfig,
                  counts: CropCounts) -> np.ndarray | None:
    """The largest face box x0, y0, x1, y1 in a frame, or None; counts faces for the log."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    faces = detect_faces(gray, config.detect_size)
    if not len(faces) and max(gray.shape) > config.detect_size:
        # dlib finds faces of 80 px and up: look for a smaller one at twice the size
        faces = detect_faces(gray, 2 * config.detect_size)
    counts.most_faces = max(counts.most_faces, len(faces))
    counts.n_faces += bool(len(faces))
    return faces[0] if len(faces) else None
