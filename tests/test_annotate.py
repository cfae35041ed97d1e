"""Annotation: format, dlib backend's pose signs and AU rules, failed frames, accuracy, stage."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from _prepare_data import write_dataset
from typer.testing import CliRunner

from glg.annotate.aus import GEOMETRIC_AUS, UNMEASURED_AUS, action_units
from glg.annotate.dlib import DlibBackend
from glg.config import ExtractConfig
from glg.errors import GlgError
from glg.extract import extract
from glg.face.landmarks import AU_IDS, AU_PRESENCE, AU_SCORE, X_COLUMNS, Y_COLUMNS, rotation_matrix
from glg.face.mean_face import MEAN_FACE_3D, head_pose
from glg.metrics.accuracy import annotation_accuracy
from glg.store.annotations import IDENTITY_FILE, ClipResult, read_annotations, to_table, write_shard
from glg.store.frames import OFFSET, FrameStore, FrameStoreWriter
from glg.synthesize.faces import identity_image, make_identity
from glg.synthesize.render import render_frame
from stages.annotate import app

SIZE = 256


@functools.cache
def _identity():
    identity = make_identity(0, np.random.default_rng(0))
    return identity, identity_image(identity)


def face(pitch=0.0, yaw=0.0, roll=0.0, aus: dict[int, float] | None = None):
    """A synthetic 256 px face frame with known pose and AUs, and its true landmarks (68, 2)."""
    identity, image = _identity()
    intensities = np.zeros(len(AU_IDS))
    for au, value in (aus or {}).items():
        intensities[AU_IDS.index(au)] = value
    return render_frame(identity, image, np.array([pitch, yaw, roll]), intensities,
                        np.zeros(2), 1.0, SIZE)


@functools.cache
def backend() -> DlibBackend:
    return DlibBackend(redetect_every=10)


def annotate_frames(frames: list[np.ndarray]) -> ClipResult:
    return backend().annotate_clip(enumerate(frames))


# --- format ------------------------------------------------------------------------------------


def _result(n: int) -> ClipResult:
    rng = np.random.default_rng(0)
    return ClipResult(
        frame=np.arange(n), success=np.arange(n) % 2 == 0,
        confidence=rng.random(n).astype(np.float32), box=rng.random((n, 4)).astype(np.float32),
        landmarks=rng.random((n, 68, 2)).astype(np.float32),
        pose=rng.random((n, 3)).astype(np.float32),
        au_presence=rng.integers(0, 2, (n, len(AU_IDS))).astype(np.int8),
        au_score=rng.random((n, len(AU_IDS))).astype(np.float32), embedding=None)


def test_shards_round_trip_through_the_reader(tmp_path):
    result = _result(5)
    write_shard(tmp_path, 0, [to_table("id00", "yt/clip00", result),
                              to_table("id01", "clip00", _result(2))])
    frame = read_annotations(tmp_path)
    assert list(frame.columns[:5]) == ["identity", "video", "frame", "success", "confidence"]
    assert frame["success"].dtype == bool and frame["frame"].dtype == np.int64
    assert all(frame[c].dtype == np.int8 for c in AU_PRESENCE)
    assert all(frame[c].dtype == np.float32 for c in AU_SCORE + X_COLUMNS + Y_COLUMNS)
    np.testing.assert_array_equal(frame["x_3"][:5], result.landmarks[:, 3, 0])
    np.testing.assert_array_equal(frame["y_3"][:5], result.landmarks[:, 3, 1])
    assert list(frame["video"]) == ["yt/clip00"] * 5 + ["clip00"] * 2
    some = read_annotations(tmp_path, columns=["identity", "y_3"], identities=["id01"])
    assert list(some.columns) == ["identity", "y_3"] and list(some["identity"]) == ["id01"] * 2
    assert read_annotations(tmp_path, identities=[]).empty


def test_reader_rejects_another_schema_version_or_a_missing_column(tmp_path):
    table = to_table("id00", "clip00", _result(2))
    pq.write_table(table.replace_schema_metadata({"glg.schema_version": "0"}),
                   tmp_path / "shard-00000.parquet")
    with pytest.raises(GlgError, match="shard-00000.parquet: annotation schema version '0'"):
        read_annotations(tmp_path)
    write_shard(tmp_path, 0, [table.drop_columns(["y_7"])])
    with pytest.raises(GlgError, match="annotation column 'y_7' missing"):
        read_annotations(tmp_path, columns=["identity", "y_7"])


# --- pose -------------------------------------------------------------------------------------


def test_head_pose_of_projected_mean_face_recovers_the_rotation():
    for angles in [(0, 0, 0), (10, -20, 5), (-12, 25, -8)]:
        points = MEAN_FACE_3D @ rotation_matrix(*angles).T
        pixels = points[:, :2] * 1.2 + 128  # weak perspective, as far-away faces look
        np.testing.assert_allclose(head_pose(pixels, SIZE, SIZE), angles, atol=3.0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_pose_signs_on_rendered_faces(axis):
    """Turn each way about each axis: the sign follows `glg.face.landmarks.rotation_matrix`."""
    for angle in (-15.0, 15.0):
        pose = [0.0, 0.0, 0.0]
        pose[axis] = angle
        frame, _ = face(*pose)
        result = annotate_frames([frame])
        assert result.success[0]
        estimate = result.pose[0]
        assert np.sign(estimate[axis]) == np.sign(angle), (pose, estimate)
        assert abs(estimate[axis] - angle) < 8.0, (pose, estimate)


# --- AU rules --------------------------------------------------------------------------------


def _mean_face() -> np.ndarray:
    """The mean face at rest: its inner lips (a little apart in OpenFace's model) closed."""
    points = MEAN_FACE_3D[:, :2] * 1.3 + 128
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        points[[upper, lower]] = points[[upper, lower]].mean(0)
    return points


def test_au_rules_on_moved_landmarks():
    neutral = _mean_face()
    frames = [neutral.copy() for _ in range(9)]
    mouth_open = neutral.copy()  # lower lip and jaw drop: lips apart (AU25) and jaw drop (AU26)
    mouth_open[[65, 66, 67, 55, 56, 57, 58, 59]] += [0, 20]
    mouth_open[5:12] += [0, 20]
    smile = neutral.copy()  # corners out and up
    smile[48] += [-8, -8]
    smile[54] += [8, -8]
    blink = neutral.copy()  # upper lids onto the lower lids
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        blink[upper] = blink[lower] - [0, 0.5]
    brows = neutral.copy()  # whole brows up
    brows[17:27] += [0, -10]
    landmarks = np.stack(frames + [mouth_open, smile, blink, brows])
    presence, score = action_units(landmarks, np.ones(len(landmarks), bool))
    on = {au: presence[:, AU_IDS.index(au)] for au in AU_IDS}
    assert on[25][9] and on[26][9] and not on[12][9]
    assert on[12][10] and not on[25][10]
    assert on[45][11] and not on[5][11]
    assert on[1][12] and on[2][12] and not on[4][12]
    assert not presence[:9].any(), "neutral frames show no AU"
    for au in UNMEASURED_AUS:
        assert np.isnan(score[:, AU_IDS.index(au)]).all() and not on[au].any()
    for au in GEOMETRIC_AUS:
        assert np.isfinite(score[:, AU_IDS.index(au)]).all()


def test_au_rules_on_rendered_faces():
    """Lips apart, smile and blink on a rendered clip whose other frames are neutral."""
    neutral = [face()[0]] * 6
    shown = {25: {25: 1.0, 26: 1.0}, 12: {12: 1.0}, 45: {45: 1.0}}
    frames = neutral + [face(aus=aus)[0] for aus in shown.values()]
    result = annotate_frames(frames)
    assert result.success.all()
    for k, au in enumerate(shown):
        row = result.au_presence[len(neutral) + k]
        assert row[AU_IDS.index(au)] == 1, (au, row)
    for au in shown:
        assert not result.au_presence[:len(neutral), AU_IDS.index(au)].any()


# --- failed frames ---------------------------------------------------------------------------


def test_blank_frames_stay_as_failed_rows():
    frame, _ = face()
    blank = np.zeros_like(frame)
    result = annotate_frames([frame, blank, frame, blank])
    np.testing.assert_array_equal(result.frame, [0, 1, 2, 3])
    np.testing.assert_array_equal(result.success, [True, False, True, False])
    assert np.isnan(result.landmarks[1]).all() and np.isnan(result.pose[1]).all()
    assert np.isnan(result.au_score[1]).all() and not result.au_presence[1].any()
    assert result.embedding is not None and result.embedding.shape == (128,)
    assert abs(np.linalg.norm(result.embedding) - 1) < 1e-5

    none = annotate_frames([blank, blank])
    assert not none.success.any() and none.embedding is None


# --- accuracy ---------------------------------------------------------------------------------


def test_accuracy_is_perfect_for_the_truth_itself_and_maps_crops():
    truth_points = np.stack([face(yaw=y)[1] for y in (-10, 0, 10)])  # (3, 68, 2) source px
    truth = pd.DataFrame({"identity": "id00", "video": "clip00", "frame": [5, 6, 7],
                          **{c: truth_points[:, i, 0] for i, c in enumerate(X_COLUMNS)},
                          **{c: truth_points[:, i, 1] for i, c in enumerate(Y_COLUMNS)},
                          "pitch": 0.0, "yaw": [-10.0, 0.0, 10.0], "roll": 0.0,
                          **{c: [0, 1, 0] for c in AU_PRESENCE}})
    # Stored frames 0..2 are source frames 5..7 cropped at (20, 10), side 128, resized to 256.
    manifest = pd.DataFrame({"identity": "id00", "video": "clip00", "frame": [0, 1, 2],
                             "source_frame": [5, 6, 7], "crop_x0": 20.0, "crop_y0": 10.0,
                             "crop_size": 128.0})
    stored = (truth_points - [20, 10] + 0.5) * 2.0 - 0.5  # pixel centres at integers
    result = ClipResult(np.arange(3), np.ones(3, bool), np.ones(3, np.float32),
                        np.zeros((3, 4), np.float32), stored.astype(np.float32),
                        np.array([[0, -10, 0], [0, 0, 0], [0, 10, 0]], np.float32),
                        np.tile([[0], [1], [0]], (1, 18)).astype(np.int8),
                        np.zeros((3, 18), np.float32), None)
    annotations = to_table("id00", "clip00", result).to_pandas()
    scores = annotation_accuracy(annotations, manifest, truth, SIZE)
    assert scores["matched_frames"] == 3
    assert scores["nme"] < 1e-5
    assert scores["pose_rmse"] == {"pitch": 0.0, "yaw": 0.0, "roll": 0.0}
    assert set(scores["au_agreement"].values()) == {1.0}

    real = annotation_accuracy(annotations, manifest, truth.assign(identity="someone"), SIZE)
    assert real["matched_frames"] == 0 and real["nme"] is None and "no rows" in real["note"]


# --- the stage --------------------------------------------------------------------------------


def _dataset(root: Path, frames: int = 20, blank: tuple[int, ...] = (18, 19)) -> Path:
    """1 identity, 1 clip of rendered frames (a slow turn, a blink, `blank` frames without a
    face) plus its ground truth."""
    videos = root / "videos"
    (videos / "id00").mkdir(parents=True)
    writer = cv2.VideoWriter(str(videos / "id00" / "clip00.mp4"),
                             cv2.VideoWriter_fourcc(*"mp4v"), 25, (SIZE, SIZE))
    rows = []
    for t in range(frames):
        pose = (0.0, -10.0 + 20.0 * t / frames, 0.0)
        aus = {45: 1.0} if t in (8, 9) else {}
        image, points = face(*pose, aus=aus)
        if t in blank:
            image = np.zeros_like(image)
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        rows.append({"identity": "id00", "video": "clip00", "frame": t,
                     **{c: points[i, 0] for i, c in enumerate(X_COLUMNS)},
                     **{c: points[i, 1] for i, c in enumerate(Y_COLUMNS)},
                     "pitch": pose[0], "yaw": pose[1], "roll": pose[2],
                     **{c: int(AU_IDS[i] == 45 and t in (8, 9))
                        for i, c in enumerate(AU_PRESENCE)}})
    writer.release()
    pd.DataFrame(rows).to_parquet(videos / "ground_truth.parquet")
    extract(videos, root / "frames", ExtractConfig(workers=1), progress=False)
    return videos / "ground_truth.parquet"


def _invoke(root: Path, truth: Path, **annotate):
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"annotate": {"workers": 1, **annotate}}))
    return CliRunner().invoke(app, [
        "--frames", str(root / "frames"), "--out", str(root / "annotations"),
        "--metrics", str(root / "metrics.json"), "--ground-truth", str(truth),
        "--params", str(params), "--no-progress"])


def test_stage_writes_annotations_identity_and_metrics(tmp_path):
    truth = _dataset(tmp_path)
    result = _invoke(tmp_path, truth)
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "annotations")  # skips _identity.parquet
    assert len(rows) == 20 and list(rows["frame"]) == list(range(20))
    assert list(rows.index[~rows["success"]]) == [18, 19]  # kept, marked failed
    assert rows.loc[18, list(X_COLUMNS)].isna().all()
    ids = pd.read_parquet(tmp_path / "annotations" / IDENTITY_FILE)
    assert list(ids["identity"]) == ["id00"] and len(ids["embedding"][0]) == 128
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["frames"] == 20 and metrics["failed_frames"] == 2
    assert metrics["failed_per_clip"] == {"id00/clip00": 2}
    assert "id00/clip00: 2 of 20 frames without a face" in result.stderr  # a log line
    acc = metrics["accuracy"]
    assert acc["matched_frames"] == 20 and acc["matched_success_rate"] == 0.9
    assert acc["nme"] < 0.05
    assert max(acc["pose_rmse"].values()) < 5.0
    first = (tmp_path / "annotations" / "shard-00000.parquet").read_bytes()
    assert _invoke(tmp_path, truth).exit_code == 0
    assert (tmp_path / "annotations" / "shard-00000.parquet").read_bytes() == first


def test_stage_says_a_ground_truth_it_cannot_find(tmp_path):
    _dataset(tmp_path, frames=6, blank=())
    result = _invoke(tmp_path, tmp_path / "ground_truht.parquet")
    assert result.exit_code == 0, result.output
    assert (f"annotate: no ground truth at {tmp_path / 'ground_truht.parquet'}: accuracy not "
            "measured\n") in result.stderr
    accuracy = json.loads((tmp_path / "metrics.json").read_text())["accuracy"]
    assert accuracy["nme"] is None and "not measured" in accuracy["note"]


def test_stage_bad_param_is_one_line(tmp_path):
    (tmp_path / "frames").mkdir()
    result = _invoke(tmp_path, tmp_path / "none.parquet", redetect_every=0)
    assert result.exit_code == 1
    assert "annotate.redetect_every must be an integer >= 1" in result.output
    assert "Traceback" not in result.output


def test_stage_without_frames_names_the_folder(tmp_path):
    result = _invoke(tmp_path, tmp_path / "none.parquet")
    assert result.exit_code == 1 and "frames" in result.output


def test_stage_with_a_corrupt_ground_truth_is_one_line_before_any_work(tmp_path):
    FrameStoreWriter(tmp_path / "frames", 1.0).close()
    (tmp_path / "truth.parquet").write_bytes(b"junk")
    result = _invoke(tmp_path, tmp_path / "truth.parquet")
    assert result.exit_code == 1
    assert re.fullmatch(rf"error: {re.escape(str(tmp_path))}/truth.parquet: not a readable "
                        r"ground-truth table \(.+\)\n", result.output)
    assert not (tmp_path / "annotations").exists()


def test_stage_on_an_empty_frame_store_is_one_line(tmp_path):
    """extract leaves an empty store when no video was usable; annotating it is an error."""
    FrameStoreWriter(tmp_path / "frames", 1.0).close()
    result = _invoke(tmp_path, tmp_path / "none.parquet")
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: {tmp_path / 'frames'}: the frame store holds no "
                                      "frames (extract stored none: see its skipped.csv)")
    assert not (tmp_path / "annotations").exists()


# --- real footage -----------------------------------------------------------------------------


def _decode(path: Path, frames: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    out = []
    while len(out) < frames:
        ok, bgr = capture.read()
        if not ok:
            break
        out.append(cv2.cvtColor(cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_AREA),
                                cv2.COLOR_BGR2RGB))
    return out


def test_real_clips_faces_found_and_pose_smooth(real_clips):
    found = total = 0
    for path in sorted(real_clips.glob("*.mp4")):
        result = annotate_frames(_decode(path, 60))  # the clips are face-centred 512 px crops
        found, total = found + int(result.success.sum()), total + len(result.success)
        pose = result.pose[result.success]  # (N, 3) degrees
        # Smooth: frame-to-frame jitter (the second difference; a nodding head has large first
        # differences but small second ones) stays small, and no step is a flip.
        jitter = np.median(np.abs(np.diff(pose, 2, axis=0)), axis=0)
        assert jitter.max() < 4.0, (path.name, jitter)
        assert np.abs(np.diff(pose, axis=0)).max() < 45.0, path.name
    assert found / total >= 0.95, found / total


def test_an_unreadable_clip_becomes_failed_rows(tmp_path):
    frames, _ = write_dataset(tmp_path, identities=1, clips=2, frames=3)
    store = FrameStore(frames)
    cut = store.locations[store.clip_rows("id00", "clip1")[0], OFFSET]
    shard = frames / "shard-00000.jpegs"
    shard.write_bytes(shard.read_bytes()[:cut])  # clip1's JPEGs are lost
    result = _invoke(tmp_path, tmp_path / "none.parquet")
    assert result.exit_code == 0, result.output
    assert "id00/clip1: not annotated, 3 frames marked failed" in result.output
    rows = read_annotations(tmp_path / "annotations", columns=["video", "frame", "success"])
    lost = rows[rows["video"] == "clip1"]
    assert list(lost["frame"]) == [0, 1, 2] and not lost["success"].any()
