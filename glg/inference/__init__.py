"""`glg reenact`: a photo animated by a driving video with a trained checkpoint.

The source (an image, or a video's first frame with a face) and every driving frame are cropped
exactly as `extract` crops them (`glg.face.crop.crop_clip` under the params' `extract` section:
the same detector, track and smoothing), annotated by the `annotate` backend at `extract.crop_px`
(the driving as one clip, so its AUs are read against its own neutral, as `annotate` reads a
clip), then resized to the checkpoint's S as `prepare` resizes (INTER_AREA; landmarks by
`glg.face.landmarks.rescale_points`). Pairs are assembled by `glg.data.guided_pair`, as the loader
assembles them, and run through the reenactor in batches, in fp32 (fp16 is what gives other
tools black frames). The video is H.264 at the driving's frame rate with the driving's audio
(`glg.store.video_writer`), never left partial under OUT's name. The driving's S px crops are held
in memory (37 KB a frame at 112 px).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import cv2
import numpy as np
import torch
from tqdm import tqdm

from glg.annotate import make_backend
from glg.config import LANDMARK_MODES, AnnotateConfig, ExtractConfig, load_params
from glg.data import collate_pairs, decode_pair, guided_pair, knows_trained_people_only
from glg.errors import GlgError
from glg.face.crop import CropCounts, crop_clip
from glg.face.landmark_transfer import place_generated, transfer_landmarks
from glg.face.landmarks import rescale_points
from glg.models import pick_device
from glg.store.annotations import Backend
from glg.store.networks import read_landmark_generator, read_reenactor
from glg.store.video import SampledFrame, SkipClip, opencv_path, printable, sample_frames
from glg.store.video_writer import VideoWriter, partial_output, paste

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# sample_frames' rate for the driving: above any container's frame rate (it refuses more than
# 1000/s), every decoded frame starts a new time slot, so the output keeps every driving frame
EVERY_FRAME = 1000.0


class Face(NamedTuple):
    """The source: its S px crop (RGB uint8 (S, S, 3)) and landmarks (68, 2) in S pixels."""

    image: np.ndarray
    landmarks: np.ndarray
    embedding: np.ndarray | None  # (D,) the annotate backend's face embedding
    box: np.ndarray  # (3,) x0, y0, side of the crop in the source frame
    source_frame: int  # the frame of a source video it came from


class Driving(NamedTuple):
    """The driving's N frames, cropped and annotated; faceless frames hold the last good ones."""

    images: list[np.ndarray]  # N x (S, S, 3) uint8 RGB
    landmarks: np.ndarray  # (N, 68, 2) S pixels
    pose: np.ndarray  # (N, 3) degrees
    aus: np.ndarray  # (N, 18) 0/1
    held: int  # frames without a face (or before the first one), landmarks held
    rate: Fraction  # frames/s


@dataclass(frozen=True)
class ReenactSummary:
    """What one `reenact` run made."""

    out: Path
    frames: int
    seconds: float  # the whole run: loading, reading, reenacting, encoding
    held: int  # driving frames without a face that held the last good landmarks
    landmarks: str  # the landmark mode used
    note: str | None  # why it is not the one asked for, when not
    device: str

    @property
    def frames_per_s(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def reenact(source: Path, driving: Path, out: Path, *, checkpoint: Path = Path("data/reenact"),
            lgan: Path = Path("data/lgan"), landmarks: str | None = None,
            identity: str | None = None, side_by_side: bool = False, paste_back: bool = False,
            device: str = "auto", batch: int = 8, params: Path = Path("params.yaml"),
            progress: bool = True,
            warn: Callable[[str], None] | None = None) -> ReenactSummary:
    """Animate the face of `source` with the motion of `driving` into the video `out`.

    `landmarks` (driving, lst, lgan; default: the checkpoint's `model.landmark_mode`) picks the
    guiding landmarks; `identity` names a trained-on person the source shows. The frames are the
    output crop, or source | driving | output (`side_by_side`), or the output pasted into the
    source's full frame (`paste_back`).
    """
    started = time.perf_counter()
    warn = warn or (lambda line: print(line, file=sys.stderr))
    source, driving, out = Path(source), Path(driving), Path(out)
    if side_by_side and paste_back:
        raise GlgError("--side-by-side and --paste-back: choose one")
    if batch < 1:
        raise GlgError(f"--batch: expected an integer >= 1, got {batch}")
    if landmarks is not None and landmarks not in LANDMARK_MODES:
        raise GlgError(f"--landmarks: expected one of {', '.join(LANDMARK_MODES)}, "
                       f"got {landmarks!r}")
    for given, role in ((source, "source"), (driving, "driving")):
        if _same_file(out, given):
            raise GlgError(f"{out}: is the {role}, which the output would replace; "
                           "choose another output file")
    run_on = pick_device(device, "--device")
    with partial_output(out) as partial:
        trained = read_reenactor(checkpoint)
        size = trained.model.size
        mode = landmarks or trained.model.config.landmark_mode
        crop_config = load_params("extract", params)
        backend = _backend(load_params("annotate", params))
        face = read_source(source, crop_config, backend, size)
        moving = read_driving(driving, crop_config, backend, size, progress)
        guide, mode, note = guiding_landmarks(mode, face, moving, trained.identities, lgan,
                                              identity, warn)
        frame = _source_frame(source, face, crop_config) if paste_back else None

        def compose(output: np.ndarray, k: int) -> np.ndarray:
            if side_by_side:
                return np.hstack([face.image, moving.images[k], output])
            if frame is not None:
                return paste(frame, face.box, output)
            return output

        model = trained.model.to(run_on)
        with VideoWriter(partial, moving.rate, driving) as encoder, tqdm(
                total=len(moving.images), desc="reenact", unit="frame", disable=not progress,
                file=sys.stderr, dynamic_ncols=True) as bar:
            for k0 in range(0, len(moving.images), batch):
                rows = range(k0, min(k0 + batch, len(moving.images)))
                pairs = [guided_pair(face.image, moving.images[k], face.landmarks,
                                     moving.landmarks[k], guide[k], moving.pose[k],
                                     moving.aus[k], -1, -1, trained.part_sizes, size)
                         for k in rows]  # identities -1: the reenactor does not read them
                with torch.inference_mode():
                    image = model(decode_pair(collate_pairs(pairs), run_on)).image
                pixels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte()
                for k, output in zip(rows, pixels.permute(0, 2, 3, 1).cpu().numpy()):
                    encoder.write(compose(output, k))
                bar.update(len(rows))
    return ReenactSummary(out, len(moving.images), time.perf_counter() - started, moving.held,
                          mode, note, run_on.type)


# --- reading the source and the driving ------------------------------------------------------


def read_source(path: Path, config: ExtractConfig, backend: Backend, size: int) -> Face:
    """The source's first frame whose crop the annotate backend finds a face in."""
    counts = CropCounts()
    for crop in crop_clip(_frames(path, config.fps, config.max_frames), config, counts):
        rgb = cv2.cvtColor(crop.bgr, cv2.COLOR_BGR2RGB)
        result = backend.annotate_clip([(0, rgb)])
        if result.success[0]:
            landmarks = rescale_points(result.landmarks[0], config.crop_px, size)
            return Face(_resized(rgb, size), landmarks, result.embedding, crop.box,
                        crop.source_frame)
    raise GlgError(f"{path}: no face found in the source ({counts.n_sampled} frame(s) read)")


def read_driving(path: Path, config: ExtractConfig, backend: Backend, size: int,
                 progress: bool = True) -> Driving:
    """Every frame of the driving (a video, or a folder of images at `extract.fps`), cropped,
    annotated as one clip and resized to S; frames without a face hold the last good ones."""
    if path.is_dir():
        rate = Fraction(config.fps).limit_denominator(1001)
        frames, total = _folder_frames(path, rate), None
    else:
        rate, total = _video_rate(path)
        frames = _frames(path, EVERY_FRAME, sys.maxsize)
    counts, images = CropCounts(), []
    bar = tqdm(total=total, desc="driving", unit="frame", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)

    def crops() -> Iterator[tuple[int, np.ndarray]]:
        for k, crop in enumerate(crop_clip(frames, config, counts)):
            rgb = cv2.cvtColor(crop.bgr, cv2.COLOR_BGR2RGB)
            images.append(_resized(rgb, size))
            bar.update(1)
            yield k, rgb

    with bar:
        result = backend.annotate_clip(crops())
    if counts.n_sampled == 0:
        raise GlgError(f"{path}: no decodable frames in the driving")
    good = np.asarray(result.success, bool)
    if not good.any():
        raise GlgError(f"{path}: no face found in any of the driving's {counts.n_sampled} frames")
    # frames before the first face found are left out by the crop track: the first crop stands
    # in for them, so the output keeps every driving frame
    images = [images[0]] * counts.dropped + images
    good = np.r_[np.zeros(counts.dropped, bool), good]
    last_good = np.maximum.accumulate(np.where(good, np.arange(len(good)), -1))
    last_good[last_good < 0] = np.argmax(good)  # before the first face: the first good one
    at = last_good - counts.dropped  # rows of `result`
    landmarks = rescale_points(result.landmarks[at], config.crop_px, size)
    return Driving(images, landmarks, result.pose[at], result.au_presence[at],
                   int((~good).sum()), rate)


def _frames(path: Path, fps: float, max_frames: int) -> Callable[[int], Iterator[SampledFrame]]:
    """`glg.face.crop.FrameSource` of an image (one frame) or a video, failing in one line."""
    if not path.is_file():
        raise GlgError(f"{path}: not found")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        bgr = cv2.imread(_opencv_path(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise GlgError(f"{path}: not a readable image")
        return lambda pixels_every: iter([SampledFrame(0, 0, 0.0, bgr)])

    def decoded(pixels_every: int) -> Iterator[SampledFrame]:
        try:
            yield from sample_frames(path, fps, max_frames, pixels_every)
        except (SkipClip, cv2.error) as err:
            raise GlgError(f"{path}: {err}") from None

    return decoded


def _folder_frames(path: Path, rate: Fraction) -> Callable[[int], Iterator[SampledFrame]]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GlgError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the driving folder")

    def frames(pixels_every: int) -> Iterator[SampledFrame]:
        for k, file in enumerate(files):
            bgr = (cv2.imread(_opencv_path(file), cv2.IMREAD_COLOR) if k % pixels_every == 0
                   else None)
            if bgr is None and k % pixels_every == 0:
                raise GlgError(f"{file}: not a readable image")
            yield SampledFrame(k, k, float(k / rate), bgr)

    return frames


def _video_rate(path: Path) -> tuple[Fraction, int | None]:
    """The driving video's frame rate and frame count (None when the container does not say)."""
    if not path.is_file():
        raise GlgError(f"{path}: not found")
    try:
        with av.open(_opencv_path(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            count = stream.frames or None
    except (av.FFmpegError, IndexError):
        raise GlgError(f"{path}: not a readable video or image folder") from None
    if not rate or rate <= 0:
        raise GlgError(f"{path}: no frame rate in the container")
    return Fraction(rate), count


def _opencv_path(path: Path) -> str:
    """`glg.store.video.opencv_path`, failing in one line."""
    try:
        return opencv_path(path)
    except SkipClip as reason:
        raise GlgError(f"{printable(str(path))}: {reason}") from None


def _source_frame(path: Path, face: Face, config: ExtractConfig) -> np.ndarray:
    """The full RGB frame of the source the face was cropped from."""
    for frame in _frames(path, config.fps, config.max_frames)(1):
        if frame.source_frame == face.source_frame:
            return cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB)
    raise GlgError(f"{path}: frame {face.source_frame} could not be read again")


def _resized(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[0] == size:
        return rgb
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


# --- the guiding landmarks ------------------------------------------------------------------


def guiding_landmarks(mode: str, face: Face, moving: Driving, identities, lgan_path: Path,
                      identity: str | None, warn: Callable[[str], None],
                      ) -> tuple[np.ndarray, str, str | None]:
    """(N, 68, 2) landmarks that guide each output frame (L_reen) in S pixels, the mode used and
    why it differs from `mode`, when it does.

    `driving`: the driving's own. `lst`: paper Eq. 3 from the driving clip's statistics (its mean
    and std over its frames) to the source's: a trained-on `identity`'s, else those of the one
    source frame, whose landmarks are its mean; one frame has no spread, so the source gets the
    driving's std, which makes paper Eq. 3 move the driving's offsets from its own mean shape onto
    the source's (Sec III-B-1). `lgan`: the landmark GAN for the source identity and each frame's
    pose and AUs (thesis Eq. 3.4), centred on the frame's landmarks; a person it was not trained
    on, the source itself or an `identity` of the training data's unseen split, has no learned
    embedding (`lgan.identity_input=embedding`), so `lst` stands in, said in one warning line.
    """
    if identity is not None and identity not in identities.names:
        raise GlgError(f"--identity: {identity!r} is not one of the checkpoint's people "
                       f"({', '.join(identities.names)})")
    if mode == "driving":
        return moving.landmarks, mode, None
    note = None
    if mode == "lgan":
        trained = read_landmark_generator(lgan_path)
        generator = trained.generator
        if generator.size != len(face.image):
            raise GlgError(f"{lgan_path}: landmarks of {generator.size} px, but the reenactor "
                           f"takes {len(face.image)} px crops; re-run train_lgan")
        learned = knows_trained_people_only(generator)
        if learned and identity is not None and identities.trained and (
                identity not in identities.trained):
            note = (f"the landmark generator's vector for {identity} never trained ({identity} "
                    "is an unseen person of the training data): using lst with its statistics")
            warn(f"warning: {note}")
            mode = "lst"
        elif identity is not None:
            row = trained.identity_names.index(identity)
        elif not learned:
            if face.embedding is None:
                raise GlgError("the annotate backend gave the source no face embedding, which "
                               "this landmark generator (face_recognition) needs")
            row = generator.add_face(torch.from_numpy(np.asarray(face.embedding, np.float32)))
        else:
            note = ("the landmark generator knows only its trained people (learned embeddings); "
                    "the source is not one of them (--identity names one): using lst")
            warn(f"warning: {note}")
            mode = "lst"
        if mode == "lgan":
            n = len(moving.landmarks)
            with torch.no_grad():
                generated = generator(torch.full((n,), row, dtype=torch.int64),
                                      torch.from_numpy(np.asarray(moving.pose, np.float32)),
                                      torch.from_numpy(np.asarray(moving.aus, np.float32)))
            placed = place_generated(generated.numpy().astype(np.float64), moving.landmarks)
            return placed, mode, note
    driving_mean, driving_std = moving.landmarks.mean(0), moving.landmarks.std(0)
    if identity is not None:
        k = identities.names.index(identity)
        source_mean, source_std = identities.mean[k], identities.std[k]
    else:
        source_mean, source_std = face.landmarks, driving_std
    return (transfer_landmarks(moving.landmarks, driving_mean, driving_std, source_mean,
                               source_std), "lst", note)


# --- helpers ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _backend(config: AnnotateConfig) -> Backend:
    """The annotate backend, kept for the next call: loading dlib's models takes seconds."""
    return make_backend(config)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once resolved, or a link to it."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.samefile(b)  # hard links
    except OSError:  # either one missing
        return False
