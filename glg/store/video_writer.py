"""Writing `glg reenact`'s video: H.264 frames through PyAV with another video's audio track
copied, under a temporary name renamed only when complete, and the face pasted back into a frame.
Frames are RGB uint8 (colour convention: glg/store/video.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from glg.errors import GlgError

PASTE_FEATHER = 0.1  # of the crop side: the pasted face fades into the frame over this margin


def paste(frame: np.ndarray, box: np.ndarray, face: np.ndarray) -> np.ndarray:
    """The S px `face` (RGB) blended into a copy of the RGB `frame` at its crop `box` (x0, y0,
    side), fading in over `PASTE_FEATHER` of the side; cropped to even sides for H.264."""
    x0, y0, side = map(int, box)
    scaled = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    ramp = np.clip((np.minimum(np.arange(side), np.arange(side)[::-1]) + 0.5)
                   / max(PASTE_FEATHER * side, 1.0), 0.0, 1.0)
    alpha = np.minimum.outer(ramp, ramp)[..., None]  # (side, side, 1)
    height, width = frame.shape[:2]
    out = frame.astype(np.float32)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if ix0 < ix1 and iy0 < iy1:
        inner = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
        region = out[iy0:iy1, ix0:ix1]
        out[iy0:iy1, ix0:ix1] = region + alpha[inner] * (scaled[inner] - region)
    return out[:height // 2 * 2, :width // 2 * 2].round().astype(np.uint8)


@contextlib.contextmanager
def partial_output(out: Path) -> Iterator[Path]:
    """A hidden temporary file beside `out`, renamed to `out` when the block succeeds and
    removed when it fails: `out` is complete or absent."""
    if out.is_dir():
        raise GlgError(f"{out}: is a folder, expected the output video's file name")
    partial = out.parent / f".{out.name}.partial{out.suffix}"
    try:
        partial.touch()
    except OSError as err:
        raise GlgError(f"{out}: cannot write the output ({err.strerror})") from None
    try:
        yield partial
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


class VideoWriter:
    """H.264 frames (RGB uint8 (H, W, 3), H and W even) at `rate` into `path`, the video
    `audio_from`'s first audio track copied after them."""

    def __init__(self, path: Path, rate: Fraction, audio_from: Path):
        self.path, self.rate, self.audio_from = path, rate, audio_from
        self.stream = None
        self.count = 0

    def __enter__(self) -> VideoWriter:
        try:
            self.container = av.open(str(self.path), "w")
        except (av.FFmpegError, ValueError) as err:
            raise GlgError(f"{self.path}: cannot write a video of this type ({err})") from None
        self.source, self.audio = None, None
        if self.audio_from.is_file():
            self.source = av.open(str(self.audio_from))
            if self.source.streams.audio:
                # added before the first packet: the MP4 header lists every track
                self.audio = self.container.add_stream_from_template(self.source.streams.audio[0])
        return self

    def write(self, rgb: np.ndarray) -> None:
        if self.stream is None:
            self.stream = self.container.add_stream("libx264", rate=self.rate)
            self.stream.height, self.stream.width = rgb.shape[:2]
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = 1 / self.rate
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.count
        self.count += 1
        self.container.mux(self.stream.encode(frame))

    def __exit__(self, kind, err, traceback) -> None:
        try:
            if err is None:
                self.container.mux(self.stream.encode())
                if self.audio is not None:
                    for packet in self.source.demux(self.source.streams.audio[0]):
                        if packet.dts is not None:
                            packet.stream = self.audio
                            self.container.mux(packet)
        finally:
            self.container.close()
            if self.source is not None:
                self.source.close()
