"""The extract stage: the frame store it writes, its logs, byte-identical reruns, and through its
CLI every bad input, real clips and the demo clips."""

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from _clips import FACE, FACE_WINDOW, panning_face, small_config, write_clip
from glg.config import SynthesizeConfig
from glg.errors import GlgError
from glg.extract import EXTRACT_COLUMNS, extract
from glg.face.crop import detect_faces
from glg.store.frames import SHARD, FrameStore, iter_clip, read_frame, read_manifest
from glg.synthesize import synthesize
from stages.extract import app


def face_on_canvas(width: int, height: int, scale: float = 1.0, x: int = 0, y: int = 0,
                   n: int = 8) -> list[np.ndarray]:
    """`n` frames of the face window, scaled, on a gray canvas at (x, y), nudged 1 px a frame."""
    window = cv2.resize(FACE_WINDOW, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frames = []
    for t in range(n):
        frame = np.full((height, width, 3), 90, np.uint8)
        h, w = window.shape[:2]
        frame[y:y + h, x + t:x + t + w] = window
        frames.append(frame)
    return frames


def write_params(folder: Path, **changes) -> Path:
    values = dict(crop_px=64, max_frames=250, detect_every=2, workers=2, jpeg_quality=90) | changes
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": 0, "extract": values}))
    return path


def run_stage(videos: Path, out: Path, params: Path):
    return CliRunner().invoke(app, ["--videos", str(videos), "--out", str(out),
                                    "--params", str(params), "--no-progress"])


def skipped_rows(out: Path) -> dict[str, str]:
    with (out / "skipped.csv").open(encoding="utf-8") as f:
        return {row["path"]: row["reason"] for row in csv.DictReader(f)}


# --- the stage's function: the store, its logs, byte-identical reruns ------------------------


def test_frames_before_the_first_face_are_bounded_then_left_out(tmp_path, capsys):
    blank = [np.full((320, 320, 3), 90, np.uint8)] * 20
    frames, _ = panning_face(10)
    write_clip(tmp_path / "videos" / "a" / "1.mp4", blank + frames)
    config = small_config(crop="per_frame", detect_every=2)  # holds at most 4 frames
    summary = extract(tmp_path / "videos", tmp_path / "frames", config, progress=False)
    assert "a/1.mp4: 16 frames before the first face found were left out" in (
        capsys.readouterr().err)
    manifest = read_manifest(tmp_path / "frames")
    assert summary.stored_frames == len(manifest) == 14  # the last 4 blank frames, the 10 faces
    assert manifest.source_frame.tolist() == list(range(16, 30))
    assert manifest.frame.tolist() == list(range(14))


@pytest.fixture(scope="module")
def face_store(tmp_path_factory):
    """Two panning-face clips (one 30 fps) extracted with default-like settings."""
    root = tmp_path_factory.mktemp("faces")
    frames, offsets = panning_face(24)
    write_clip(root / "videos" / "anna" / "yt1" / "001.mp4", frames)
    write_clip(root / "videos" / "ben" / "002.mp4", frames[:15], fps=30.0)
    summary = extract(root / "videos", root / "frames", small_config(), progress=False)
    return root / "frames", offsets, summary


def test_extracted_store_has_the_manifest_schema(face_store):
    frames_dir, _, summary = face_store
    manifest = read_manifest(frames_dir)
    assert list(manifest.columns) == ["identity", "video", "frame", *EXTRACT_COLUMNS.names]
    assert summary.stored_clips == 2 and summary.skipped == 0
    anna = manifest[manifest.identity == "anna"]
    assert (anna.video == "yt1/001").all() and (anna.source == "anna/yt1/001.mp4").all()
    assert anna.frame.tolist() == list(range(24)) == anna.source_frame.tolist()
    ben = manifest[manifest.identity == "ben"]  # 15 frames at 30 fps sampled to 25 fps
    assert len(ben) == 12 and ben.timestamp.is_monotonic_increasing
    assert (frames_dir / "skipped.csv").read_text() == "path,reason\n"
    assert sorted(p.name for p in frames_dir.iterdir()) == [
        "clips.parquet", "locations.npy", "manifest.parquet", "shard-00000.jpegs", "skipped.csv"]


def test_crop_box_contains_the_face(face_store):
    frames_dir, offsets, _ = face_store
    anna = read_manifest(frames_dir).query("identity == 'anna'")
    for row, (x, y) in zip(anna.itertuples(), offsets):
        x0, y0, x1, y1 = FACE + [x, y, x, y]
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


def test_shards_roll_over_between_clips(tmp_path):
    frames, _ = panning_face(6)
    for name in ["a/1.mp4", "a/2.mp4", "b/1.mp4"]:
        write_clip(tmp_path / "videos" / name, frames)
    out = tmp_path / "frames"
    extract(tmp_path / "videos", out, small_config(shard_mb=1e-6), progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "clips.parquet", "locations.npy", "manifest.parquet", "shard-00000.jpegs",
        "shard-00001.jpegs", "shard-00002.jpegs", "skipped.csv"]  # and no spool files left
    store = FrameStore(out)
    for shard, (identity, video) in enumerate([("a", "1"), ("a", "2"), ("b", "1")]):
        rows = store.clip_rows(identity, video)
        assert (store.locations[rows.start:rows.stop, SHARD] == shard).all()  # one clip a shard
        clip = list(iter_clip(out, identity, video))
        assert [i for i, _ in clip] == list(range(6))
        assert np.array_equal(read_frame(out, identity, video, 5), clip[5][1])


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
        extract(tmp_path / "videos", out, small_config(workers=workers), progress=False)
        runs.append(_hashes(out))
    assert runs[0] == runs[1] == runs[2]
    assert set(runs[0]) == {"clips.parquet", "locations.npy", "manifest.parquet",
                            "shard-00000.jpegs", "skipped.csv"}


def test_the_stage_process_never_imports_pandas(tmp_path):
    """pyarrow's `pa.array` imports pandas on its first call, 0.25-0.4 s of a core in the middle
    of a run (5 % of extract's time on the six real clips); the store's writers build their
    Arrow columns without it (glg.store.writers.arrow_column). Non-ASCII keys go through them
    too."""
    frames, _ = panning_face(8)
    write_clip(tmp_path / "videos" / "ünï" / "clip ß.mp4", frames)
    run = ("import runpy, sys\n"
           f"sys.argv = ['extract', '--videos', {str(tmp_path / 'videos')!r}, "
           f"'--out', {str(tmp_path / 'out')!r}, '--params', "
           f"{str(write_params(tmp_path))!r}, '--no-progress']\n"
           "try:\n    runpy.run_module('stages.extract', run_name='__main__')\n"
           "except SystemExit as end:\n    assert not end.code, end.code\n"
           "print('pandas' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], check=True)
    assert done.stdout.splitlines()[-1] == "False", "the stage imported pandas"
    manifest = read_manifest(tmp_path / "out")
    assert set(manifest.identity) == {"ünï"} and set(manifest.source) == {"ünï/clip ß.mp4"}
    assert len(manifest) == 8


# --- the stage through its CLI -----------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory):
    """One dataset holding every bad input next to good clips, extracted once."""
    root = tmp_path_factory.mktemp("bad")
    videos = root / "videos"
    write_clip(videos / "good" / "clip.mp4", face_on_canvas(288, 288, x=16, y=16))
    write_clip(videos / "good" / "mjpeg.avi", face_on_canvas(288, 288, x=16, y=16), fourcc="MJPG")
    (videos / "zero").mkdir(parents=True)
    (videos / "zero" / "empty.mp4").write_bytes(b"")
    (videos / "text").mkdir()
    (videos / "text" / "notes.mp4").write_text("this is not a video\n")
    whole = write_clip(root / "whole.mp4", face_on_canvas(300, 288, x=16, y=16, n=20)).read_bytes()
    (videos / "trunc").mkdir()
    (videos / "trunc" / "half.mp4").write_bytes(whole[: len(whole) // 2])  # no index: unreadable
    whole = write_clip(root / "whole.avi", face_on_canvas(300, 288, x=16, y=16, n=20),
                       fourcc="MJPG").read_bytes()
    (videos / "trunc" / "cut.avi").write_bytes(whole[: len(whole) * 6 // 10])  # readable start
    write_clip(videos / "noface" / "clip.mp4", [np.full((200, 200, 3), v, np.uint8)
                                                for v in range(40, 120, 10)])
    two = [np.hstack([a, b]) for a, b in zip(
        face_on_canvas(300, 300, x=20, y=20),
        face_on_canvas(300, 300, scale=0.8, x=40, y=60))]
    write_clip(videos / "two" / "clip.mp4", two)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in face_on_canvas(288, 288, x=16, y=16)]
    write_clip(videos / "gray" / "clip.mp4", gray, color=False)
    write_clip(videos / "wide" / "clip.mp4", face_on_canvas(1280, 720, scale=2.0, x=600, y=100,
                                                             n=4))
    write_clip(videos / "tall" / "clip.mp4", face_on_canvas(720, 1280, scale=2.0, x=100, y=300,
                                                             n=4))
    write_clip(videos / "ünï cödé" / "my clip ß.mp4", face_on_canvas(288, 288, x=16, y=16))
    out = root / "frames"
    result = run_stage(videos, out, write_params(root))
    return out, result


def test_bad_inputs_are_skipped_with_one_line_each(bad_dataset):
    out, result = bad_dataset
    assert result.exit_code == 0, result.output
    skipped = skipped_rows(out)
    assert set(skipped) == {"zero/empty.mp4", "text/notes.mp4", "trunc/half.mp4",
                            "noface/clip.mp4"}
    assert skipped["zero/empty.mp4"] == "empty file (0 bytes)"
    assert skipped["text/notes.mp4"].startswith("not a readable video")
    assert skipped["trunc/half.mp4"].startswith("not a readable video")
    assert skipped["noface/clip.mp4"] == "no face found in 8 sampled frames"
    for path, reason in skipped.items():
        assert result.stderr.count(f"skipped {path}: {reason}\n") == 1
    assert "extract: " in result.stdout and "(4 skipped)" in result.stdout


def test_good_clips_of_every_kind_are_processed(bad_dataset):
    out, _ = bad_dataset
    manifest = read_manifest(out)
    clips = manifest.groupby(["identity", "video"]).size().to_dict()
    cut = clips.pop(("trunc", "cut"))
    assert 5 <= cut < 20  # a cut stream keeps the frames that decode
    assert clips == {("good", "clip"): 8, ("good", "mjpeg"): 8, ("two", "clip"): 8,
                     ("gray", "clip"): 8, ("wide", "clip"): 4, ("tall", "clip"): 4,
                     ("ünï cödé", "my clip ß"): 8}
    assert read_frame(out, "ünï cödé", "my clip ß", 7).shape == (64, 64, 3)
    assert (manifest.query("identity == 'ünï cödé'").source == "ünï cödé/my clip ß.mp4").all()


@pytest.mark.parametrize(("identity", "x", "y", "scale"),
                         [("wide", 600, 100, 2.0), ("tall", 100, 300, 2.0), ("good", 16, 16, 1.0),
                          ("gray", 16, 16, 1.0), ("two", 20, 20, 1.0)])
def test_crop_holds_the_face(bad_dataset, identity, x, y, scale):
    out, _ = bad_dataset
    rows = read_manifest(out).query(f"identity == '{identity}' and video == 'clip'")
    for row in rows.itertuples():
        x0, y0, x1, y1 = FACE * scale + [x + row.frame, y, x + row.frame, y]
        assert row.crop_x0 <= x0 and row.crop_y0 <= y0
        assert x1 <= row.crop_x0 + row.crop_size and y1 <= row.crop_y0 + row.crop_size


def test_two_faces_keep_the_largest_and_say_so(bad_dataset):
    out, result = bad_dataset
    assert result.stderr.count("two/clip.mp4: 2 faces in one frame, kept the largest\n") == 1
    assert result.stderr.count("faces in one frame") == 1  # only the clip with two faces
    rows = read_manifest(out).query("identity == 'two'")
    assert (rows.crop_x0 + rows.crop_size < 300 + 60).all()  # the left, larger face


def test_grayscale_is_stored_as_rgb(bad_dataset):
    out, _ = bad_dataset
    frame = read_frame(out, "gray", "clip", 3)
    assert frame.shape == (64, 64, 3) and frame.std() > 10
    assert np.abs(frame.astype(int) - frame[..., :1]).max() <= 3  # JPEG chroma noise only


def test_nothing_usable_is_an_error(tmp_path):
    videos = tmp_path / "videos"
    (videos / "a").mkdir(parents=True)
    (videos / "a" / "empty.mp4").write_bytes(b"")
    (videos / "a" / "text.mp4").write_text("hello")
    result = run_stage(videos, tmp_path / "frames", write_params(tmp_path, workers=1))
    assert result.exit_code == 1
    assert result.stderr.endswith(f"error: {videos}: none of the 2 videos was usable "
                                  f"(reasons in {tmp_path / 'frames' / 'skipped.csv'})\n")
    assert set(skipped_rows(tmp_path / "frames")) == {"a/empty.mp4", "a/text.mp4"}


def test_empty_or_missing_videos_folder_is_an_error(tmp_path):
    params = write_params(tmp_path)
    (tmp_path / "empty").mkdir()
    result = run_stage(tmp_path / "empty", tmp_path / "frames", params)
    assert result.exit_code == 1 and "empty: no videos (.mp4, .avi, .mov, .mkv) or folders" in (
        result.stderr)
    result = run_stage(tmp_path / "nowhere", tmp_path / "frames", params)
    assert result.exit_code == 1 and "nowhere: data.videos folder not found" in result.stderr


@pytest.mark.parametrize(("change", "message"), [
    ({"crop_px": -3}, "extract.crop_px must be a positive multiple of 2, got -3"),
    ({"crop": "wobbly"}, "extract.crop must be one of smoothed, fixed, per_frame, got 'wobbly'"),
    ({"detect_size": 10}, "extract.detect_size must be an integer >= 80"),
    ({"shard_mb": 0}, "extract.shard_mb must be a positive number, got 0.0"),
])
def test_bad_param_stops_before_any_work(tmp_path, change, message):
    write_clip(tmp_path / "videos" / "a" / "1.mp4", face_on_canvas(288, 288, n=2))
    result = run_stage(tmp_path / "videos", tmp_path / "frames", write_params(tmp_path, **change))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {message}")
    assert not (tmp_path / "frames").exists()


def test_clips_stopped_at_max_frames_are_counted_in_the_closing_line(tmp_path):
    frames, _ = panning_face(12)
    write_clip(tmp_path / "videos" / "a" / "long.mp4", frames)
    write_clip(tmp_path / "videos" / "b" / "short.mp4", frames[:5])
    for max_frames, said in ((8, "13 frames from 2 of 2 clips (0 skipped, 1 stopped at "
                                 "extract.max_frames 8) in "),
                             (13, "17 frames from 2 of 2 clips (0 skipped) in ")):
        params = write_params(tmp_path, crop_px=96, max_frames=max_frames, workers=1)
        result = run_stage(tmp_path / "videos", tmp_path / "frames", params)
        assert result.exit_code == 0, result.output
        assert said in result.output


def test_real_clips_faces_found_and_crop_stable(real_clips, tmp_path):
    videos = tmp_path / "videos"
    for name in ["d0.mp4", "d3.mp4"]:  # a flat folder: each file is its own identity
        (videos / name).parent.mkdir(exist_ok=True)
        shutil.copy(real_clips / name, videos / name)
    params = write_params(tmp_path, crop_px=128, max_frames=40, detect_every=5, crop="smoothed")
    result = run_stage(videos, tmp_path / "frames", params)
    assert result.exit_code == 0, result.output
    assert skipped_rows(tmp_path / "frames") == {}
    manifest = read_manifest(tmp_path / "frames")
    assert manifest.groupby("identity").size().to_dict() == {"d0": 40, "d3": 40}
    for identity, rows in manifest.groupby("identity"):
        box = rows[["crop_x0", "crop_y0", "crop_size"]].to_numpy()
        centre = box[:, :2] + box[:, 2:] / 2
        # no jitter: the smoothed box moves at most 2% of its side between frames
        assert np.abs(np.diff(centre, axis=0)).max() <= 0.02 * box[:, 2].mean()
        assert np.abs(np.diff(box[:, 2])).max() <= 0.02 * box[:, 2].mean()
        # the stored crop shows one face near its middle
        for frame, rgb in iter_clip(tmp_path / "frames", identity, identity):
            if frame % 20 == 0:
                faces = detect_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 128 * 2)
                assert len(faces) == 1, (identity, frame)
                cx, cy = (faces[0, :2] + faces[0, 2:]) / 2
                assert 0.3 * 128 < cx < 0.7 * 128 and 0.3 * 128 < cy < 0.7 * 128


def test_demo_clips_ground_truth_lands_on_the_stored_face(tmp_path):
    truth = synthesize(tmp_path / "videos", SynthesizeConfig(identities=1, clips_per_identity=1,
                                                             seconds=1.0, workers=1), seed=0)
    assert (tmp_path / "videos" / "ground_truth.parquet").is_file()  # not a video: ignored
    params = write_params(tmp_path, crop_px=128, detect_every=5, workers=1)
    result = run_stage(tmp_path / "videos", tmp_path / "frames", params)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "frames")
    assert len(manifest) == len(truth) == 25
    rows = manifest.merge(truth, left_on=["identity", "video", "source_frame"],
                          right_on=["identity", "video", "frame"], suffixes=("", "_truth"))
    scale = 128 / rows.crop_size.to_numpy()[:, None]
    xs = (rows[[f"x_{i}" for i in range(68)]].to_numpy() - rows.crop_x0.to_numpy()[:, None]) * scale
    ys = (rows[[f"y_{i}" for i in range(68)]].to_numpy() - rows.crop_y0.to_numpy()[:, None]) * scale
    assert xs.min() > 0 and ys.min() > 0 and xs.max() < 128 and ys.max() < 128
    for row, x, y in zip(rows.itertuples(), xs, ys):
        if row.frame % 8 == 0:  # the nose tip (point 30) lies in the face dlib finds there
            rgb = read_frame(tmp_path / "frames", row.identity, row.video, row.frame)
            (x0, y0, x1, y1), = detect_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 256)
            assert x0 < x[30] < x1 and y0 < y[30] < y1


# --- clips stored as folders of images (CelebV, paper Sec IV-A) --------------------------------


def write_image_folder(folder: Path, frames: list[np.ndarray], suffix: str = ".png") -> Path:
    """RGB frames as `1.png`, `2.png`, ... (unpadded: the order must be numeric, not by name)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"{i}{suffix}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def test_image_folders_are_clips_cropped_like_videos_and_bad_ones_skipped(tmp_path):
    frames, offsets = panning_face(12, step=3)
    videos = tmp_path / "videos"
    write_image_folder(videos / "anna" / "Image", frames)
    write_image_folder(videos / "ben" / "Image", frames[:6], suffix=".jpg")
    (videos / "ben" / "Image" / "notes.txt").write_text("not a frame\n")  # ignored: no image
    write_image_folder(videos / "corrupt" / "Image", frames[:4])
    (videos / "corrupt" / "Image" / "3.png").write_bytes(b"\x89PNG broken")
    write_image_folder(videos / "mixed" / "Image", frames[:4])
    cv2.imwrite(str(videos / "mixed" / "Image" / "4.png"), np.zeros((100, 120, 3), np.uint8))
    runs = [tmp_path / "frames1", tmp_path / "frames2"]
    for out, workers in zip(runs, (1, 2)):
        result = run_stage(videos, out, write_params(tmp_path, workers=workers))
        assert result.exit_code == 0, result.output
    assert _hashes(runs[0]) == _hashes(runs[1])  # deterministic whatever the workers
    assert skipped_rows(runs[0]) == {"corrupt/Image/": "3.png: not a readable image",
                                     "mixed/Image/": "4.png is 120x100 px, the folder's first "
                                                     "image 320x320"}
    manifest = read_manifest(runs[0])
    anna = manifest[manifest.identity == "anna"]
    assert (anna.video == "Image").all() and (anna.source == "anna/Image/").all()
    assert anna.source_frame.tolist() == list(range(12))
    assert np.allclose(anna.timestamp, np.arange(12) / 25.0)  # extract.fps: a folder has none
    assert len(manifest[manifest.identity == "ben"]) == 6
    for row, (x, y) in zip(anna.itertuples(), offsets):  # frames in numeric order: 1, 2, ..., 12
        x0, y0, x1, y1 = FACE + [x, y, x, y]
        centre = np.array([row.crop_x0, row.crop_y0]) + row.crop_size / 2
        assert np.abs(centre - [(x0 + x1) / 2, (y0 + y1) / 2]).max() < 0.1 * row.crop_size


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_name_that_is_not_utf8_is_skipped_not_a_crash(tmp_path, workers):
    """OpenCV's FFmpeg backend kills the process on such a name (workers 1: the stage itself;
    2: a worker, and the stage waited for ever)."""
    frames, _ = panning_face(6)
    videos = tmp_path / "videos"
    good = write_clip(videos / "good" / "clip.mp4", frames)
    shutil.copy(good, videos / "good" / os.fsdecode(b"z\xe9.mp4"))
    os.rename(write_image_folder(videos / "images" / "ok", frames),
              videos / "images" / os.fsdecode(b"\xff"))  # OpenCV cannot write there either
    out = tmp_path / "frames"
    result = run_stage(videos, out, write_params(tmp_path, workers=workers))
    assert result.exit_code == 0, result.output
    reason = "the path is not valid UTF-8 (OpenCV cannot open it); rename it"
    assert skipped_rows(out) == {"good/z\\xe9.mp4": reason, "images/\\xff/": reason}
    assert set(read_manifest(out)["source"]) == {"good/clip.mp4"}


def test_images_right_under_the_videos_folder_or_a_clash_of_keys_are_errors(tmp_path):
    frames, _ = panning_face(3)
    loose = write_image_folder(tmp_path / "loose", frames)
    result = run_stage(loose, tmp_path / "out1", write_params(tmp_path))
    assert result.exit_code == 1 and "images right under data.videos" in result.output
    clash = tmp_path / "clash"
    write_image_folder(clash / "anna" / "c1", frames)
    write_clip(clash / "anna" / "c1.mp4", frames)
    result = run_stage(clash, tmp_path / "out2", write_params(tmp_path))
    assert result.exit_code == 1
    assert "anna/c1.mp4 and anna/c1/ are both clip anna/c1" in result.output
