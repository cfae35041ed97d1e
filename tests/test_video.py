import hashlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import skimage.data

from glg import video
from glg.config import ExtractConfig
from glg.errors import GlgError
from glg.frames import MANIFEST_SCHEMA, iter_clip, read_frame, read_manifest
from glg.video import (
    fixed_box,
    smoothing_reach,
    clip_key,
    crop_box,
    crop_frame,
    detect_faces,
    extract_videos,
    face_centre,
    find_clips,
    sample_frames,
)

# The astronaut's face in this 256 px window of skimage's astronaut() is at about
# x 66..182, y 72..189 (dlib's box); the clips below slide this window over a canvas.
FACE_WINDOW = skimage.data.astronaut()[:256, 96:352]


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """RGB frames -> an mp4v video file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
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
    base = dict(size=64, fps=25.0, max_frames=250, detect_every=3, workers=1, jpeg_quality=90)
    return ExtractConfig(**(base | changes))


def test_clip_key_follows_both_layouts():
    assert clip_key("id01/clip.mp4") == ("id01", "clip")
    assert clip_key("id10001/1zcIwhmdeo4/00001.mp4") == ("id10001", "1zcIwhmdeo4/00001")
    assert clip_key("d0.mp4") == ("d0", "d0")


def test_find_clips_sorted_by_path_and_only_videos(tmp_path):
    for name in ["b/2.mkv", "a/1.mp4", "a/x/3.MOV", "b/1.avi", "a/notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [c.source for c in find_clips(tmp_path)] == ["a/1.mp4", "a/x/3.MOV", "b/1.avi",
                                                        "b/2.mkv"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(GlgError, match="empty: no videos"):
        find_clips(tmp_path / "empty")
    with pytest.raises(GlgError, match="missing: data.videos folder not found"):
        find_clips(tmp_path / "missing")


@pytest.mark.parametrize(("source_fps", "fps", "max_frames", "kept"),
                         [(30, 25.0, 250, 25), (25, 25.0, 250, 30), (20, 25.0, 250, 30),
                          (30, 10.0, 250, 10), (30, 25.0, 7, 7)])
def test_sampling_follows_timestamps(tmp_path, source_fps, fps, max_frames, kept):
    path = write_clip(tmp_path / "c.mp4", [np.zeros((32, 32, 3), np.uint8)] * 30, source_fps)
    sampled = list(sample_frames(path, fps, max_frames))
    assert len(sampled) == kept
    stamps = np.array([s[2] for s in sampled])
    assert np.allclose(stamps, np.array([s[1] for s in sampled]) / source_fps)
    # one frame per 1/fps slot at most, so the stored rate never exceeds fps
    assert len(np.unique(np.floor(stamps * fps + 1e-6))) == kept


def test_detect_faces_finds_the_astronaut_largest_first():
    two = np.zeros((256, 512, 3), np.uint8)
    two[:, :256] = FACE_WINDOW
    two[28:228, 290:490] = cv2.resize(FACE_WINDOW, (200, 200), interpolation=cv2.INTER_AREA)
    boxes = detect_faces(two, 512)
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
    assert smoothing_reach(small_config(crop="smoothed", smoothing=0.8)) == 21
    assert smoothing_reach(small_config(crop="per_frame")) == 0


def test_streamed_boxes_follow_the_detections(tmp_path):
    frames, _ = panning_face(30, canvas=(320, 360), step=3)
    write_clip(tmp_path / "videos" / "a" / "1.mp4", frames)
    config = small_config(detect_every=4)
    extract_videos(tmp_path / "videos", tmp_path / "frames", config, progress=False)
    keys, faces = [], []
    for index, _, _, rgb in sample_frames(tmp_path / "videos" / "a" / "1.mp4", 25.0, 250):
        if index % 4 == 0:
            keys.append(index)
            faces.append(face_centre(detect_faces(rgb, config.detect_size)[0]))
    stored = read_manifest(tmp_path / "frames")[["crop_x0", "crop_y0", "crop_size"]].to_numpy()
    assert np.array_equal(stored, boxes_of(keys, faces, 30, config))


def test_fixed_policy_holds_one_box_around_every_face(tmp_path):
    frames, offsets = panning_face(20, canvas=(320, 360), step=3)
    write_clip(tmp_path / "videos" / "a" / "1.mp4", frames)
    config = small_config(crop="fixed", detect_every=4)
    extract_videos(tmp_path / "videos", tmp_path / "frames", config, progress=False)
    boxes = read_manifest(tmp_path / "frames")[["crop_x0", "crop_y0", "crop_size"]].to_numpy()
    assert len(boxes) == 20 and (boxes == boxes[0]).all()
    x0, y0, side = boxes[0]
    assert x0 <= 66 + offsets[0, 0] and 182 + offsets[-1, 0] <= x0 + side


def test_frames_before_the_first_face_are_bounded_then_left_out(tmp_path, capsys):
    blank = [np.full((320, 320, 3), 90, np.uint8)] * 20
    frames, _ = panning_face(10)
    write_clip(tmp_path / "videos" / "a" / "1.mp4", blank + frames)
    config = small_config(crop="per_frame", detect_every=2)  # holds at most 4 frames
    summary = extract_videos(tmp_path / "videos", tmp_path / "frames", config, progress=False)
    assert "a/1.mp4: 16 frames before the first face found were left out" in (
        capsys.readouterr().err)
    manifest = read_manifest(tmp_path / "frames")
    assert summary.stored_frames == len(manifest) == 14  # the last 4 blank frames, the 10 faces
    assert manifest.source_frame.tolist() == list(range(16, 30))
    assert manifest.frame.tolist() == list(range(14))


def test_crop_maps_points_as_the_manifest_says():
    frame = np.zeros((100, 120, 3), np.uint8)
    frame[39:42, 69:72] = 255  # a dot at (70, 40)
    x0, y0, side, size = 50, -20, 80, 160
    crop = crop_frame(frame, x0, y0, side, size)
    assert crop.shape == (size, size, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert abs(xs.mean() - (70 - x0) * size / side) < 1.5
    assert abs(ys.mean() - (40 - y0) * size / side) < 1.5
    assert crop[:30].max() == 0  # the box starts 20 px above the image: black padding
    assert crop_frame(frame, 500, 500, 10, 8).max() == 0


@pytest.fixture(scope="module")
def face_store(tmp_path_factory):
    """Two panning-face clips (one 30 fps) extracted with default-like settings."""
    root = tmp_path_factory.mktemp("faces")
    frames, offsets = panning_face(24)
    write_clip(root / "videos" / "anna" / "yt1" / "001.mp4", frames)
    write_clip(root / "videos" / "ben" / "002.mp4", frames[:15], fps=30.0)
    summary = extract_videos(root / "videos", root / "frames", small_config(), progress=False)
    return root / "frames", offsets, summary


def test_extracted_store_has_the_manifest_schema(face_store):
    frames_dir, _, summary = face_store
    manifest = read_manifest(frames_dir)
    assert list(manifest.columns) == MANIFEST_SCHEMA.names
    assert pq.read_schema(frames_dir / "manifest.parquet").equals(MANIFEST_SCHEMA)
    assert summary.stored_clips == 2 and summary.skipped == 0
    anna = manifest[manifest.identity == "anna"]
    assert (anna.video == "yt1/001").all() and (anna.source == "anna/yt1/001.mp4").all()
    assert anna.frame.tolist() == list(range(24)) == anna.source_frame.tolist()
    ben = manifest[manifest.identity == "ben"]  # 15 frames at 30 fps sampled to 25 fps
    assert len(ben) == 12 and ben.timestamp.is_monotonic_increasing
    assert (frames_dir / "skipped.csv").read_text() == "path,reason\n"
    assert sorted(p.name for p in frames_dir.iterdir()) == ["manifest.parquet",
                                                            "shard-00000.parquet", "skipped.csv"]


def test_crop_box_contains_the_face(face_store):
    frames_dir, offsets, _ = face_store
    anna = read_manifest(frames_dir).query("identity == 'anna'")
    face = np.array([66, 72, 182, 189])  # the face's box in the window
    for row, (x, y) in zip(anna.itertuples(), offsets):
        x0, y0, x1, y1 = face + [x, y, x, y]
        assert row.crop_x0 <= x0 and row.crop_y0 <= y0
        assert row.crop_x0 + row.crop_size >= x1 and row.crop_y0 + row.crop_size >= y1
        # centred: the face centre lies near the crop centre
        centre = np.array([row.crop_x0, row.crop_y0]) + row.crop_size / 2
        assert np.abs(centre - [(x0 + x1) / 2, (y0 + y1) / 2]).max() < 0.1 * row.crop_size


def test_frames_read_back_by_key(face_store):
    frames_dir, _, _ = face_store
    frames = list(iter_clip(frames_dir, "anna", "yt1/001"))
    assert [i for i, _ in frames] == list(range(24))
    assert frames[5][1].shape == (64, 64, 3) and frames[5][1].dtype == np.uint8
    assert np.array_equal(read_frame(frames_dir, "anna", "yt1/001", 5), frames[5][1])
    # the stored crop shows the face: it differs from the flat background (90)
    assert frames[5][1][24:40, 24:40].std() > 10
    with pytest.raises(GlgError, match="no clip anna/nope"):
        read_frame(frames_dir, "anna", "nope", 0)
    with pytest.raises(GlgError, match="not 24"):
        read_frame(frames_dir, "anna", "yt1/001", 24)


def test_shards_roll_over_and_long_clips_stream_in_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "ROW_GROUP_FRAMES", 4)
    frames, _ = panning_face(6)
    for name in ["a/1.mp4", "a/2.mp4", "b/1.mp4"]:
        write_clip(tmp_path / "videos" / name, frames)
    out = tmp_path / "frames"
    extract_videos(tmp_path / "videos", out, small_config(shard_mb=1e-6), progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.parquet", "shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet",
        "skipped.csv"]  # and no temporary parts left behind
    for shard in out.glob("shard-*.parquet"):
        assert pq.ParquetFile(shard).metadata.num_row_groups == 2  # 6 frames: 4 + 2
    manifest = read_manifest(out)
    assert manifest.groupby("shard").identity.first().tolist() == ["a", "a", "b"]
    assert manifest.query("identity == 'b'").row_group.tolist() == [0] * 4 + [1] * 2
    clip = list(iter_clip(out, "b", "1"))
    assert [i for i, _ in clip] == list(range(6))
    assert np.array_equal(read_frame(out, "b", "1", 5), clip[5][1])


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_reruns_are_byte_identical_whatever_the_workers(tmp_path):
    frames, _ = panning_face(10)
    for name in ["a/1.mp4", "a/2.mp4", "b/1.mp4", "c/1.mp4"]:
        write_clip(tmp_path / "videos" / name, frames[: 6 + len(name)])
    (tmp_path / "videos" / "c" / "bad.mp4").write_text("not a video")
    runs = []
    for run, workers in enumerate([1, 1, 2]):
        out = tmp_path / f"frames{run}"
        extract_videos(tmp_path / "videos", out, small_config(workers=workers), progress=False)
        runs.append(_hashes(out))
    assert runs[0] == runs[1] == runs[2]
    assert set(runs[0]) == {"manifest.parquet", "shard-00000.parquet", "skipped.csv"}


@pytest.mark.parametrize("side", [64, 100, 173, 200, 256, 300, 333, 700])
def test_crop_resize_stays_close_to_area_averaging(side):
    image = cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    exact = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA).astype(float)
    fast = crop_frame(image, 0, 0, side, 128).astype(float)
    assert np.abs(fast - exact).mean() < 1.0
