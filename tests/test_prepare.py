import dataclasses
import hashlib
import json
import math
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from _prepare_data import prepared_table, write_annotations, write_dataset
from typer.testing import CliRunner

from glg.config import PrepareConfig
from glg.errors import GlgError
from glg.face.landmarks import landmarks_from_table
from glg.face.parts import PART_NAMES, part_boxes
from glg.prepare import prepare
from glg.store.frames import FrameStore
from glg.store.prepared import IDENTITIES, PAIRS, PARTS, SUMMARY, PreparedFrames, read_identities
from stages.prepare import app

CONFIG = PrepareConfig(image_px=32, unseen_identities=2, test_clips=3, known_identities=5,
                       self_pairs=40, unseen_pairs=30, known_pairs=20, part_margin=0.25,
                       part_multiple=4, shard_mb=2e-3)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    frames, annotations = write_dataset(root, identities=5, clips=3, frames=8, failed=0.1)
    summary = prepare(frames, annotations, root / "prepared", CONFIG, seed=0)
    return root, summary


def read(root, name):
    return pd.read_parquet(root / "prepared" / name)


def frames_of(root):
    return prepared_table(root / "prepared")


def test_only_successful_frames_are_kept(prepared):
    root, _ = prepared
    annotations = pd.read_parquet(root / "annotations")
    frames = frames_of(root)
    ok = annotations[annotations["success"]]
    assert len(frames) == len(ok)
    assert set(map(tuple, frames[["identity", "video", "frame"]].to_numpy())) == set(
        map(tuple, ok[["identity", "video", "frame"]].to_numpy()))


def test_stored_frames_are_the_right_ones_resized(prepared):
    root, _ = prepared
    assert len(list((root / "prepared").glob("shard-*"))) > 1
    frames = PreparedFrames(root / "prepared")
    for row in range(0, len(frames), 7):
        identity, video, frame = frames.key(row)
        image = frames.image(row)
        assert image.shape == (32, 32, 3)
        colour = (40 * int(identity[2:]) % 256, 60 * int(video[4:]) % 256, 20 * frame % 256)
        assert np.abs(image[5, 5].astype(int) - colour).max() <= 2  # JPEG at quality 95


def test_landmarks_mark_the_same_pixels_after_the_resize(tmp_path):
    frames_dir, annotations = write_dataset(tmp_path, identities=2, clips=1, frames=4, side=64,
                                            marker=True)
    prepare(frames_dir, annotations, tmp_path / "out", CONFIG, seed=0)
    frames = PreparedFrames(tmp_path / "out")
    for row in range(len(frames)):
        image = frames.image(row)
        weight = (image.astype(np.float64) - image[0, 0]).sum(-1)  # the white block, resized
        weight[weight < 0.1 * weight.max()] = 0  # JPEG's ripples elsewhere
        ys, xs = np.indices(weight.shape)
        centroid = (weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()
        np.testing.assert_allclose(frames.landmarks[row, 30], centroid, atol=0.05)


def test_frames_already_at_the_size_are_copied_unchanged(tmp_path):
    frames_dir, annotations = write_dataset(tmp_path, identities=2, clips=1, frames=3, side=32,
                                            photo=True)
    prepare(frames_dir, annotations, tmp_path / "out", CONFIG, seed=0)
    prepared, source = PreparedFrames(tmp_path / "out"), FrameStore(frames_dir)
    for row in range(len(prepared)):
        identity, video, frame = prepared.key(row)
        at = source.clip_rows(identity, video)[frame]
        assert prepared.jpeg(row).tobytes() == source.jpeg(at).tobytes()


def test_splits_follow_identity_and_clip_rules(prepared):
    root, _ = prepared
    frames, identities = frames_of(root), read(root, IDENTITIES)
    unseen = set(identities.loc[identities["role"] == "unseen", "identity"])
    assert len(unseen) == 2
    assert not frames[frames["identity"].isin(unseen)]["split"].isin(["train", "holdout"]).any()
    assert frames.loc[~frames["identity"].isin(unseen), "split"].eq("train").groupby(
        frames["identity"]).any().all()  # every known identity trains
    per_clip = frames.groupby(["identity", "video"])["split"]
    test_clips = per_clip.apply(lambda s: (s == "test").any())
    assert test_clips.sum() == 3
    assert (per_clip.apply(lambda s: (s == "test").all()) == test_clips).all()  # whole clips
    # unseen identities' clips are taken for the self-reenactment test first
    assert set(test_clips[test_clips].index.get_level_values(0)) <= unseen
    trained = frames[frames["split"].isin(["train", "holdout"])]
    for _, clip in trained.groupby(["identity", "video"]):
        held = clip["split"].to_numpy() == "holdout"
        assert held.sum() == min(round(len(clip) * 0.2), len(clip) - 2)
        assert not held[:len(clip) - held.sum()].any()  # the clip's last frames


def test_pairs_respect_the_scenarios(prepared):
    root, summary = prepared
    frames, pairs = frames_of(root), read(root, PAIRS)
    role = read(root, IDENTITIES).set_index("identity")["role"]
    for side in ("source", "driving"):
        at = pairs[f"{side}_row"].to_numpy()
        for column in ("identity", "video", "frame"):
            assert (frames[column].to_numpy()[at] == pairs[f"{side}_{column}"].to_numpy()).all()
    split = frames["split"].to_numpy()
    self_ = pairs[pairs["scenario"] == "self"]
    assert len(self_) == 40
    assert (self_["source_identity"] == self_["driving_identity"]).all()
    assert (self_["source_video"] == self_["driving_video"]).all()
    assert (self_["source_frame"] != self_["driving_frame"]).all()
    assert (split[self_["source_row"]] == "test").all()
    for scenario, where in (("unseen", "unseen"), ("known", "known")):
        chosen = pairs[pairs["scenario"] == scenario]
        assert len(chosen) and (chosen["source_identity"] != chosen["driving_identity"]).all()
        assert (chosen["source_identity"].map(role) == where).all()
        assert (chosen["driving_identity"].map(role) == where).all()
        assert chosen.groupby("source_identity").size().max() <= 30
    known = pairs[pairs["scenario"] == "known"]
    assert (split[known["source_row"]] == "holdout").all()
    assert (split[known["driving_row"]] == "holdout").all()
    assert not pairs.duplicated().any()
    assert summary["pairs"]["self"] == 40


def test_part_sizes_are_the_dataset_averages(prepared):
    root, _ = prepared
    frames = frames_of(root)
    parts = json.loads((root / "prepared" / PARTS).read_text())["parts"]
    _, extent = part_boxes(landmarks_from_table(frames))
    for k, name in enumerate(PART_NAMES):
        width, height = extent[:, k].mean(0)
        assert parts[name]["mean_width"] == pytest.approx(width, abs=1e-3)
        assert parts[name]["mean_height"] == pytest.approx(height, abs=1e-3)
        margin = 0.25 * max(width, height)
        assert parts[name]["width"] == 4 * math.ceil((width + margin) / 4)
        assert parts[name]["height"] == 4 * math.ceil((height + margin) / 4)


def test_identity_statistics_are_each_persons(prepared):
    root, _ = prepared
    frames = frames_of(root)
    table, mean, std = read_identities(root / "prepared")
    assert list(table["identity"]) == sorted(frames["identity"].unique())
    assert mean.shape == std.shape == (len(table), 68, 2)
    for k, name in enumerate(table["identity"]):
        own = landmarks_from_table(frames[frames["identity"] == name])
        np.testing.assert_allclose(mean[k], own.mean(0), rtol=1e-6)
        np.testing.assert_allclose(std[k], own.std(0), rtol=1e-5)
    assert (frames["identity_index"] == frames["identity"].map(
        dict(zip(table["identity"], table["index"])))).all()


def test_outputs_are_identical_across_runs(prepared, tmp_path):
    root, _ = prepared
    prepare(root / "frames", root / "annotations", tmp_path, CONFIG, seed=0)
    for path in sorted((root / "prepared").iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == hashlib.sha256((tmp_path / path.name).read_bytes()).hexdigest(), path.name
    prepare(root / "frames", root / "annotations", tmp_path, CONFIG, seed=1)
    assert not read(root, PAIRS).equals(pd.read_parquet(tmp_path / PAIRS))


@pytest.mark.parametrize("workers", [1, 3])
def test_the_bytes_do_not_depend_on_the_number_of_workers(prepared, tmp_path, workers):
    """The fixture resized its clips on two worker processes; this process alone, or three
    workers finishing in another order, write the same bytes."""
    root, _ = prepared
    assert CONFIG.workers == 2 and CONFIG.engine == "local"
    prepare(root / "frames", root / "annotations", tmp_path,
            dataclasses.replace(CONFIG, workers=workers), seed=0)
    for path in sorted((root / "prepared").iterdir()):
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name


def test_annotations_are_read_clip_by_clip_across_row_groups_and_shards(prepared, tmp_path):
    root, _ = prepared
    table = pq.read_table(root / "annotations" / "shard-00000.parquet")
    (tmp_path / "annotations").mkdir()
    for k, rows in enumerate([table.slice(0, 44), table.slice(44)]):  # a clip cut in two
        pq.write_table(rows, tmp_path / "annotations" / f"shard-{k:05d}.parquet",
                       row_group_size=5)
    prepare(root / "frames", tmp_path / "annotations", tmp_path / "out", CONFIG, seed=0)
    for path in sorted((root / "prepared").iterdir()):
        assert path.read_bytes() == (tmp_path / "out" / path.name).read_bytes(), path.name


def test_annotations_out_of_clip_order_are_a_clear_error(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=2, clips=2, frames=3, side=32)
    table = pd.read_parquet(annotations)
    write_annotations(annotations, pd.concat([table.iloc[3:], table.iloc[:3]]))
    with pytest.raises(GlgError, match="rows of id00/clip0 come after id01/clip1"):
        prepare(frames, annotations, tmp_path / "out", CONFIG, seed=0)


def test_a_rerun_writes_new_files_and_leaves_linked_ones_alone(prepared, tmp_path):
    """DVC hard-links outputs to its cache: a stage that wrote into an existing file would
    change the cache too."""
    root, _ = prepared
    out, cache = tmp_path / "out", tmp_path / "cache"
    prepare(root / "frames", root / "annotations", out, CONFIG, seed=0)
    cache.mkdir()
    for path in out.iterdir():
        os.link(path, cache / path.name)
        path.chmod(0o444)  # as DVC leaves a linked output
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    prepare(root / "frames", root / "annotations", out, CONFIG, seed=1)
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before
    assert (out / PAIRS).read_bytes() != before[PAIRS]


def test_small_data_clamp_with_notes(prepared):
    _, summary = prepared
    notes = " | ".join(summary["notes"])
    assert "prepare.known_identities=5 clamped to 3" in notes
    assert "annotated frames failed; skipped" in notes


def test_demo_sized_data_has_every_scenario(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=6, clips=3, frames=6, side=32)
    summary = prepare(frames, annotations, tmp_path / "out", PrepareConfig(
        image_px=32, unseen_identities=2), seed=0)
    assert all(summary["pairs"][s] > 0 for s in ("self", "unseen", "known"))
    assert summary["identities"] == {"known": 4, "unseen": 2}


def test_all_failed_annotations_are_a_clear_error(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=2, clips=1, frames=3, side=32)
    table = pd.read_parquet(annotations)
    write_annotations(annotations, table.assign(success=False))
    with pytest.raises(GlgError, match="all 6 frames failed"):
        prepare(frames, annotations, tmp_path / "out", CONFIG, seed=0)


def test_missing_inputs_are_clear_errors(tmp_path):
    with pytest.raises(GlgError, match="annotations folder not found"):
        prepare(tmp_path, tmp_path / "nope", tmp_path / "out", CONFIG, seed=0)
    frames, annotations = write_dataset(tmp_path, identities=2, clips=1, frames=3, side=32)
    write_annotations(annotations, pd.read_parquet(annotations).drop(columns="y_7"))
    with pytest.raises(GlgError, match="'y_7' missing"):
        prepare(frames, annotations, tmp_path / "out", CONFIG, seed=0)


def test_parts_outside_the_frame_and_short_clips_are_skipped(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=3, clips=2, frames=4, side=32)
    table = pd.read_parquet(annotations)
    outside = (table["identity"] == "id00") & (table["video"] == "clip0") & (table["frame"] < 3)
    table.loc[outside, "x_45"] = 31.6  # a left-eye corner past the right edge (at 31.5)
    on_edge = (table["identity"] == "id01") & (table["video"] == "clip0") & (table["frame"] == 0)
    table.loc[on_edge, "x_36"] = -0.5  # a right-eye corner on the left edge
    write_annotations(annotations, table)
    summary = prepare(frames, annotations, tmp_path / "out", CONFIG, seed=0)
    kept = prepared_table(tmp_path / "out")
    assert not ((kept["identity"] == "id00") & (kept["video"] == "clip0")).any()
    assert ((kept["identity"] == "id01") & (kept["video"] == "clip0") & (kept["frame"] == 0)).any()
    notes = " | ".join(summary["notes"])
    assert "3 frames with eye, nose or mouth landmarks outside the frame" in notes
    assert "1 clips with fewer than 2 usable frames skipped: id00/clip0" in notes


def test_missing_frames_in_the_store_are_skipped(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=2, clips=1, frames=3, side=32)
    table = pd.read_parquet(annotations)
    ghost_clip = table.iloc[:2].assign(video="ghost")
    ghost_frame = table.iloc[:1].assign(frame=7)
    write_annotations(annotations, pd.concat([table, ghost_clip, ghost_frame]).sort_values(
        ["identity", "video", "frame"], kind="stable"))  # in order, as annotate writes them
    summary = prepare(frames, annotations, tmp_path / "out", CONFIG, seed=0)
    assert any("clip id00/ghost not in the frame store" in n for n in summary["notes"])
    assert "3 annotated frames not in the frame store; skipped" in summary["notes"]
    kept = prepared_table(tmp_path / "out")
    assert len(kept) == len(table) and not (kept["video"] == "ghost").any()


def test_stage_runs_and_rejects_a_bad_param(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=4, clips=2, frames=4, side=32)
    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\nprepare:\n  image_px: 32\n  unseen_identities: 2\n")
    args = ["--frames", str(frames), "--annotations", str(annotations),
            "--out", str(tmp_path / "out"), "--params", str(params)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pairs self" in result.output
    assert json.loads((tmp_path / "out" / SUMMARY).read_text())["identities"]["unseen"] == 2
    params.write_text("seed: 0\nprepare:\n  image_px: 33\n")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "error: prepare.image_px must be an even integer >= 32, got 33" in result.output
    before = {p.name: p.read_bytes() for p in sorted((tmp_path / "out").iterdir())}
    params.write_text("seed: 0\nprepare:\n  image_px: 34\n")  # past the stored 32 px frames
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.output == (f"error: prepare.image_px: 34 px is larger than the frames of "
                             f"{frames} (32 px); expected at most that (raise extract.crop_px "
                             "for larger frames)\n")
    assert {p.name: p.read_bytes() for p in sorted((tmp_path / "out").iterdir())} == before


# --- the paper's protocol: an all-unseen dataset, an explicit test list (Sec IV-A) ----------------


def run_prepare(tmp_path, frames, annotations, prepare_params: str, *extra: str):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\nprepare:\n  image_px: 32\n" + prepare_params)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["--frames", str(frames), "--annotations", str(annotations),
                                      "--out", str(out), "--params", str(params), *extra])
    return result, out


def test_unseen_only_dataset_writes_only_unseen_pairs_of_everyone(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=3, clips=2, frames=4, side=32)
    result, out = run_prepare(tmp_path, frames, annotations,
                              "  unseen_identities: 1\n  unseen_pairs: 5\n"
                              "  test_videos: [id10270/5r0dWxy17C8]\n",  # the training set's list
                              "--unseen-only")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["identities"] == {"known": 0, "unseen": 3}
    assert summary["frames"]["train"] == summary["frames"]["test"] == 0
    assert summary["notes"] == []  # no clamp of self or known pairs: none were asked for
    pairs = pd.read_parquet(out / PAIRS)
    assert set(pairs["scenario"]) == {"unseen"} and len(pairs) == 15  # 5 per person
    assert (pairs["source_identity"] != pairs["driving_identity"]).all()
    assert set(pairs["source_identity"]) == {"id00", "id01", "id02"}


def test_listed_test_videos_replace_the_draw_and_their_people_are_not_trained_on(tmp_path):
    frames, annotations = write_dataset(tmp_path, identities=4, clips=3, frames=4, side=32)
    listing = tmp_path / "test_videos.txt"
    listing.write_text("# VoxCeleb1-style test list\nid01/clip2\n\nid03/clip0  # one clip\n"
                       "id03/gone\n")
    result, out = run_prepare(tmp_path, frames, annotations,
                              f"  unseen_identities: 0\n  test_videos_file: {listing}\n")
    assert result.exit_code == 0, result.output
    table = prepared_table(out)
    tested = table[table["split"] == "test"][["identity", "video"]].drop_duplicates()
    assert sorted(map(tuple, tested.to_numpy())) == [("id01", "clip2"), ("id03", "clip0")]
    assert set(table[table["split"] == "train"]["identity"]) == {"id00", "id02"}
    pairs = pd.read_parquet(out / PAIRS).query("scenario == 'self'")
    assert set(zip(pairs["source_identity"], pairs["source_video"])) <= {
        ("id01", "clip2"), ("id03", "clip0")}
    notes = json.loads((out / SUMMARY).read_text())["notes"]
    assert any("1 of 3 entries match no stored clip" in n and "'id03/gone'" in n for n in notes)
    # inline in params, a folder entry names every clip under it
    result, out = run_prepare(tmp_path, frames, annotations,
                              "  unseen_identities: 0\n  test_videos: [id02]\n")
    assert result.exit_code == 1 and "'id02' is not <identity>/<video>" in result.output


@pytest.mark.parametrize("listing, message", [
    ("  test_videos_file: {tmp}/nope.txt\n", "prepare.test_videos_file: {tmp}/nope.txt is not "
                                             "readable"),
    ("  test_videos_file: {tmp}/empty.txt\n", "lists no <identity>/<video> lines"),
    ("  test_videos: [id09/clip0]\n", "none of its 1 entries is a stored clip"),
    ("  test_videos: [id00/clip0, id01/clip0]\n", "names clips of all 2 identities"),
    ("  test_videos: [a/b]\n  test_videos_file: x.txt\n", "empty when prepare.test_videos_file"),
    ("  test_videos: id00/clip0\n", "prepare.test_videos must be a list"),
])
def test_bad_test_video_lists_are_one_line_errors(tmp_path, listing, message):
    """... and the earlier output stays as it was."""
    frames, annotations = write_dataset(tmp_path, identities=2, clips=1, frames=3, side=32)
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    good, out = run_prepare(tmp_path, frames, annotations, "  unseen_identities: 1\n")
    assert good.exit_code == 0, good.output
    before = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    result, _ = run_prepare(tmp_path, frames, annotations, listing.format(tmp=tmp_path))
    assert result.exit_code == 1
    assert message.format(tmp=tmp_path) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == before
