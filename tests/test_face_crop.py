"""Face crops: dlib's boxes, the smoothed track, the crop policies, the crop itself, and the
same crops from frames that come from anywhere (not only a video file)."""

import cv2
import dlib
import numpy as np
import pytest
import skimage.data

from _clips import FACE_WINDOW, panning_face, small_config, write_clip
from glg.extract import extract
from glg.face import dlib_models
from glg.face.crop import (CropCounts, crop_box, crop_clip, crop_frame, detect_faces,
                           face_centre, fixed_box, smoothing_reach)
from glg.face.landmarks import rescale_points
from glg.store.frames import encode_bgr, read_frame, read_manifest
from glg.store.video import SampledFrame, sample_frames


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def test_detect_faces_finds_the_astronaut_largest_first():
    two = np.zeros((256, 512, 3), np.uint8)
    two[:, :256] = FACE_WINDOW
    two[28:228, 290:490] = cv2.resize(FACE_WINDOW, (200, 200), interpolation=cv2.INTER_AREA)
    boxes = detect_faces(gray(two), 512)
    assert len(boxes) == 2
    assert boxes[0, 2] <= 256 and boxes[1, 0] >= 256  # the big face comes first
    x0, y0, x1, y1 = boxes[0]
    assert 50 < x0 < 90 and 160 < x1 < 200 and 55 < y0 < 95 and 170 < y1 < 210


def boxes_of(keys, faces, n, config) -> np.ndarray:
    return np.array([crop_box(j, keys, faces, n - 1, config) for j in range(n)])


def test_smoothing_removes_jitter_without_lag():
    rng = np.random.default_rng(0)
    keys = list(range(0, 301, 3))
    ramp = [np.array([100 + k, 80.0, 50.0]) for k in keys]  # moving right 1 px a frame
    noisy = [f + [rng.normal(0, 5), 0, 0] for f in ramp]
    truth = 100 + np.arange(301)

    def error(config):  # the crop centre's distance from the true face centre
        boxes = boxes_of(keys, noisy, 301, config)
        return (boxes[:, 0] + boxes[:, 2] / 2 - truth)[25:-25]

    smoothed = error(small_config(crop="smoothed", crop_scale=1.0))
    raw = error(small_config(crop="per_frame", crop_scale=1.0))
    assert np.abs(np.diff(smoothed)).max() <= 1 < np.abs(np.diff(raw)).max()  # no jitter
    assert np.sqrt(np.mean(smoothed**2)) < 0.6 * np.sqrt(np.mean(raw**2))
    assert abs(smoothed.mean()) < 1.0  # a centred kernel: no lag behind the moving face
    steady = boxes_of(keys, [np.array([90.0, 80.0, 50.0])] * len(keys), 61, small_config())
    assert (steady == steady[0]).all()


def test_crop_policies():
    keys, faces = [0, 10], [np.array([50, 50, 100.0]), np.array([90, 50, 100.0])]
    per_frame = boxes_of(keys, faces, 13, small_config(crop="per_frame", crop_scale=2.0))
    assert per_frame[0].tolist() == [-50, -50, 200] and per_frame[5].tolist() == [-30, -50, 200]
    assert per_frame[12].tolist() == per_frame[10].tolist() == [-10, -50, 200]  # held at the end
    fixed = fixed_box([np.array([0, 0, 100, 100.0]), np.array([40, 0, 140, 100.0])],
                      small_config(crop="fixed", crop_scale=1.0))
    assert fixed.tolist() == [0, -20, 140]
    # the smoothing window ends where the kernel's weight falls under 1 %
    reach = smoothing_reach(small_config(crop="smoothed", smoothing=0.8))
    assert 0.8**reach < 0.01 <= 0.8 ** (reach - 1)
    assert smoothing_reach(small_config(crop="per_frame")) == 0


def test_streamed_boxes_follow_the_detections(tmp_path):
    frames, _ = panning_face(30, canvas=(320, 360), step=3)
    write_clip(tmp_path / "videos" / "a" / "1.mp4", frames)
    config = small_config(detect_every=4)
    extract(tmp_path / "videos", tmp_path / "frames", config, progress=False)
    keys, faces = [], []
    for frame in sample_frames(tmp_path / "videos" / "a" / "1.mp4", 25.0, 250):
        if frame.index % 4 == 0:
            keys.append(frame.index)
            bgr_gray = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2GRAY)
            faces.append(face_centre(detect_faces(bgr_gray, config.detect_size)[0]))
    stored = read_manifest(tmp_path / "frames")[["crop_x0", "crop_y0", "crop_size"]].to_numpy()
    assert np.array_equal(stored, boxes_of(keys, faces, 30, config))


def test_fixed_policy_holds_one_box_around_every_face(tmp_path):
    frames, offsets = panning_face(20, canvas=(320, 360), step=3)
    write_clip(tmp_path / "videos" / "a" / "1.mp4", frames)
    config = small_config(crop="fixed", detect_every=4)
    extract(tmp_path / "videos", tmp_path / "frames", config, progress=False)
    boxes = read_manifest(tmp_path / "frames")[["crop_x0", "crop_y0", "crop_size"]].to_numpy()
    assert len(boxes) == 20 and (boxes == boxes[0]).all()
    x0, y0, side = boxes[0]
    assert x0 <= 66 + offsets[0, 0] and 182 + offsets[-1, 0] <= x0 + side


@pytest.mark.parametrize("crop", ["smoothed", "per_frame", "fixed"])
def test_frames_held_in_memory_crop_as_extract_stores_them(tmp_path, crop):
    """The seam a driving video or a folder of images goes through: the same crops and boxes
    as extract's, whatever hands the frames over."""
    frames, _ = panning_face(16, canvas=(320, 360), step=3)
    path = write_clip(tmp_path / "videos" / "a" / "1.mp4", frames)
    config = small_config(crop=crop, detect_every=4)
    extract(tmp_path / "videos", tmp_path / "frames", config, progress=False)
    decoded = [frame.bgr for frame in sample_frames(path, 25.0, 250)]

    def held(pixels_every: int):  # every frame comes with its pixels, whatever is asked
        return (SampledFrame(i, i, i / 25.0, bgr) for i, bgr in enumerate(decoded))

    counts = CropCounts()
    crops = list(crop_clip(held, config, counts))
    manifest = read_manifest(tmp_path / "frames")
    assert counts.n_sampled == len(decoded) and counts.n_faces > 0
    assert np.array_equal([c.box for c in crops],
                          manifest[["crop_x0", "crop_y0", "crop_size"]].to_numpy())
    assert [c.source_frame for c in crops] == manifest.source_frame.tolist()
    for frame, crop in enumerate(crops):  # the same pixels, once through the same JPEG codec
        jpeg = np.frombuffer(encode_bgr(crop.bgr, config.jpeg_quality), np.uint8)
        rgb = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(read_frame(tmp_path / "frames", "a", "1", frame), rgb)


def test_crop_maps_points_as_the_module_says():
    frame = np.zeros((100, 120, 3), np.uint8)
    frame[39:42, 69:72] = 255  # a dot at (70, 40)
    x0, y0, side, size = 50, -20, 80, 160
    crop = crop_frame(frame, x0, y0, side, size)
    assert crop.shape == (size, size, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    expected = rescale_points(np.array([70 - x0, 40 - y0]), side, size)
    assert np.abs(np.array([xs.mean(), ys.mean()]) - expected).max() < 0.25
    assert crop[:30].max() == 0  # the box starts 20 px above the image: black padding
    assert crop_frame(frame, 500, 500, 10, 8).max() == 0


@pytest.mark.parametrize("side", [64, 100, 173, 200, 256, 300, 333, 700])
def test_crop_resize_stays_close_to_area_averaging(side):
    image = cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    exact = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA).astype(float)
    fast = crop_frame(image, 0, 0, side, 128).astype(float)
    assert np.abs(fast - exact).mean() < 1.0


# --- the face detector's cache (glg/face/dlib_models.py) ---------------------------------------


@pytest.fixture
def fresh_detector(tmp_path, monkeypatch):
    """`face_detector` as in a new process, its cache under `tmp_path`."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(dlib_models, "_detector", None)
    return dlib_models.detector_cache()


def detections(detector) -> list:
    two = np.zeros((256, 512), np.uint8)
    two[:, :256] = gray(FACE_WINDOW)
    two[28:228, 290:490] = cv2.resize(gray(FACE_WINDOW), (200, 200))
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in detector(two, 0)]


def test_the_cached_detector_is_dlibs_own_and_a_bad_cache_is_rebuilt(fresh_detector,
                                                                        monkeypatch):
    built = dlib_models.face_detector()  # the first process builds it and keeps it
    assert fresh_detector.is_file()
    monkeypatch.setattr(dlib_models, "_detector", None)
    loaded = dlib_models.face_detector()  # the next one loads it
    assert loaded is not built
    assert len(detections(built)) == 2
    assert detections(loaded) == detections(built) == detections(
        dlib.get_frontal_face_detector())
    for bad in (b"", b"not a detector", fresh_detector.read_bytes()[:5000]):
        fresh_detector.write_bytes(bad)
        monkeypatch.setattr(dlib_models, "_detector", None)
        assert detections(dlib_models.face_detector()) == detections(built)
        assert fresh_detector.stat().st_size > 100_000  # built and kept again


def test_an_unwritable_cache_folder_still_gives_the_detector(fresh_detector, monkeypatch):
    fresh_detector.parent.parent.mkdir(parents=True, exist_ok=True)
    fresh_detector.parent.write_text("a file where the cache folder would be")
    assert len(detections(dlib_models.face_detector())) == 2
    assert not fresh_detector.exists()
