"""Decoding: the clips under `data.videos`, opened and sampled in time, frame by frame.

A clip is a video file or a folder of images (CelebV ships frames, paper Sec IV-A): a folder
holding image files is one clip, its images in natural name order (`2.jpg` before `10.jpg`) its
frames. A folder holds no frame rate, so its images are taken as consecutive frames at
`extract.fps`: every image is kept, up to `extract.max_frames`.

Colour convention, stated once for glg: images in numpy are RGB uint8 `(H, W, 3)`. OpenCV's BGR
order exists only where frames come from or go to OpenCV's codecs (decoding, cropping before
JPEG encoding, the JPEG helpers of glg/store/frames.py), and an array in BGR order is always named
`bgr`: extract crops and encodes decoded frames in BGR and never pays for a colour conversion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import re

import cv2
import numpy as np

from glg.errors import GlgError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

# --- finding the clips -----------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One video file or folder of images and its key: `identity` is the top folder, `video`
    the rest of the path."""

    path: Path
    source: str  # path relative to data.videos, '/' separators
    identity: str
    video: str


def clip_key(source: str) -> tuple[str, str]:
    """`(identity, video)` of a path relative to data.videos (the layouts `data.videos` accepts).

    `<identity>/<clip>.mp4` -> (identity, clip); `<identity>/<yt_id>/<clip>.mp4` ->
    (identity, 'yt_id/clip'). A file right under data.videos is its own identity: (stem, stem).
    A folder of images, written with a trailing '/', keys the same way with nothing to strip.
    """
    *folders, name = source.rstrip("/").split("/")
    stem = name if source.endswith("/") else name.rsplit(".", 1)[0]
    if not folders:
        return stem, stem
    return folders[0], "/".join(folders[1:] + [stem])


def find_clips(videos: Path) -> list[Clip]:
    """Every video (`VIDEO_SUFFIXES`) and every folder of images (`IMAGE_SUFFIXES`) under
    `videos`, recursively, sorted by relative path (a folder's ends with '/')."""
    if not videos.is_dir():
        what = "is not a folder" if videos.exists() else "folder not found"
        raise GlgError(f"{videos}: data.videos {what} (expected a folder of "
                       f"<identity>/<clip>.mp4 or <identity>/<clip>/<frame>.jpg)")
    clips, folders = [], set()
    for path in videos.rglob("*"):
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES and path.is_file():
            source = printable(path.relative_to(videos).as_posix())
            clips.append(Clip(path, source, *clip_key(source)))
        elif suffix in IMAGE_SUFFIXES and path.is_file():
            folders.add(path.parent)
    if videos in folders:
        raise GlgError(f"{videos}: images right under data.videos; put each clip's images in a "
                       "folder of its own (<identity>/<clip>/<frame>.jpg)")
    for folder in folders:
        source = printable(folder.relative_to(videos).as_posix()) + "/"
        clips.append(Clip(folder, source, *clip_key(source)))
    if not clips:
        raise GlgError(f"{videos}: no videos ({', '.join(VIDEO_SUFFIXES)}) or folders of images "
                       f"({', '.join(IMAGE_SUFFIXES)}) found")
    keys: dict[tuple[str, str], str] = {}
    for clip in sorted(clips, key=lambda c: c.source):
        other = keys.setdefault((clip.identity, clip.video), clip.source)
        if other != clip.source:
            raise GlgError(f"{videos}: {other} and {clip.source} are both clip "
                           f"{clip.identity}/{clip.video}; rename one")
    return sorted(clips, key=lambda c: c.source)


def printable(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (Python keeps them as lone surrogates) as
    backslash escapes, so the name can be shown and written to a UTF-8 file."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def opencv_path(path: Path) -> str:
    """`path` as OpenCV takes it, or `SkipClip` when its name is not UTF-8: OpenCV's FFmpeg
    backend crashes the process on such a name (a segmentation fault, not an error)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise SkipClip("the path is not valid UTF-8 (OpenCV cannot open it); rename it") from None
    return str(path)


# --- decoding and sampling -------------------------------------------------------------------


class SkipClip(Exception):
    """A clip that cannot be used; the message is the reason recorded in skipped.csv."""


class SampledFrame(NamedTuple):
    """One sampled frame of a clip and where it came from."""

    index: int  # position among the clip's sampled frames, 0-based
    source_frame: int  # index of the frame in the decoded source video, 0-based
    timestamp: float  # s, source_frame / source fps
    bgr: np.ndarray | None  # (H, W, 3) uint8 in the decoder's order; None where not retrieved


def _open(path: Path) -> tuple[cv2.VideoCapture, float]:
    """An opened capture and its frame rate, or `SkipClip` saying why not."""
    if path.stat().st_size == 0:
        raise SkipClip("empty file (0 bytes)")
    # one decoder thread: parallelism comes from extract.workers processes, not oversubscription;
    # OpenCV's own WARN lines on a file it cannot open are off: the reason below says it once
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        capture = cv2.VideoCapture(opencv_path(path), cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_N_THREADS, 1])
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        raise SkipClip("not a readable video (corrupt, truncated or not a video file)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (np.isfinite(fps) and 0.0 < fps <= 1000.0):
        capture.release()
        raise SkipClip(f"no valid frame rate in the container (got {fps})")
    return capture, fps


def sample_frames(path: Path, fps: float, max_frames: int,
                  pixels_every: int = 1) -> Iterator[SampledFrame]:
    """A video's frames sampled at `fps`, at most `max_frames` of them, streamed.

    A source frame is kept when it starts a new `1 / fps` time slot, so a source slower than
    `fps` keeps every frame. Only every `pixels_every`-th sampled frame is retrieved (the others
    come with `bgr` None: decoded, never converted); gray decoder output comes as BGR.
    """
    if path.is_dir():
        yield from _sample_images(path, fps, max_frames, pixels_every)
        return
    capture, source_fps = _open(path)
    try:
        kept, last_slot, index = 0, -1, -1
        while kept < max_frames and capture.grab():
            index += 1
            timestamp = index / source_fps
            slot = int(np.floor(timestamp * fps + 1e-6))
            if slot <= last_slot:
                continue
            last_slot = slot
            bgr = None
            if kept % pixels_every == 0:
                ok, decoded = capture.retrieve()
                if not ok or decoded is None:
                    break  # a truncated stream: keep what decoded
                colour = decoded.ndim == 3 and decoded.shape[2] == 3
                bgr = decoded if colour else cv2.cvtColor(decoded, cv2.COLOR_GRAY2BGR)
            yield SampledFrame(kept, index, timestamp, bgr)
            kept += 1
    finally:
        capture.release()


def _sample_images(folder: Path, fps: float, max_frames: int,
                   pixels_every: int) -> Iterator[SampledFrame]:
    """A folder's images as consecutive frames at `fps` (see the module docstring); an image
    that does not decode, or whose size differs from the first's, skips the clip naming it."""
    images = sorted((p for p in folder.iterdir()
                     if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural)
    first_shape = None
    for index, image in enumerate(images[:max_frames]):
        bgr = None
        if index % pixels_every == 0 or first_shape is None:
            bgr = cv2.imread(opencv_path(image), cv2.IMREAD_COLOR)  # gray files come as BGR too
            if bgr is None:
                raise SkipClip(f"{image.name}: not a readable image")
            first_shape = first_shape or bgr.shape
            if bgr.shape != first_shape:
                raise SkipClip(f"{image.name} is {bgr.shape[1]}x{bgr.shape[0]} px, the folder's "
                               f"first image {first_shape[1]}x{first_shape[0]}")
            bgr = bgr if index % pixels_every == 0 else None
        yield SampledFrame(index, index, index / fps, bgr)


def _natural(path: Path) -> list:
    """Sort key: digit runs compare as numbers, so frame 2 comes before frame 10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]
