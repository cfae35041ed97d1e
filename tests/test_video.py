"""Decoding: finding the clips, their keys, and frames sampled in time in BGR order."""

import cv2
import numpy as np
import pytest

from _clips import write_clip
from glg.errors import GlgError
from glg.store.video import SkipClip, clip_key, find_clips, sample_frames


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
    with pytest.raises(GlgError, match="1.mp4: data.videos is not a folder"):
        find_clips(tmp_path / "a" / "1.mp4")


@pytest.mark.parametrize(("source_fps", "fps", "max_frames", "kept"),
                         [(30, 25.0, 250, 25), (25, 25.0, 250, 30), (20, 25.0, 250, 30),
                          (30, 10.0, 250, 10), (30, 25.0, 7, 7)])
def test_sampling_follows_timestamps(tmp_path, source_fps, fps, max_frames, kept):
    path = write_clip(tmp_path / "c.mp4", [np.zeros((32, 32, 3), np.uint8)] * 30, source_fps)
    sampled = list(sample_frames(path, fps, max_frames))
    assert len(sampled) == kept
    assert [s.index for s in sampled] == list(range(kept))
    stamps = np.array([s.timestamp for s in sampled])
    assert np.allclose(stamps, np.array([s.source_frame for s in sampled]) / source_fps)
    # one frame per 1/fps slot at most, so the stored rate never exceeds fps
    assert len(np.unique(np.floor(stamps * fps + 1e-6))) == kept


def test_frames_come_in_bgr_order_with_pixels_where_asked(tmp_path):
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220  # RGB
    path = write_clip(tmp_path / "red.avi", [red] * 10, fourcc="MJPG")
    sampled = list(sample_frames(path, 25.0, 250, pixels_every=3))
    assert [s.bgr is not None for s in sampled] == [i % 3 == 0 for i in range(10)]
    b, g, r = sampled[3].bgr.reshape(-1, 3).mean(axis=0)
    assert r > 200 and b < 30 and g < 30


def test_a_file_that_is_not_a_video_is_one_reason_without_opencvs_warnings(tmp_path, capfd):
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "README.md").write_text("# not a video either")
    for name in ("notes.mp4", "README.md"):
        with pytest.raises(SkipClip, match="not a readable video"):
            next(sample_frames(tmp_path / name, 25.0, 10))
    assert "WARN" not in capfd.readouterr().err  # OpenCV's lines on fd 2, past Python's
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_WARNING  # restored
