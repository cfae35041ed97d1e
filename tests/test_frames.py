"""The frame store format (glg/store/frames.py) and the streaming writers under it
(glg/store/writers.py)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glg.errors import GlgError
from glg.store.frames import (SHARD, FrameStore, FrameStoreWriter, encode_bgr, read_frame,
                              read_manifest)
from glg.store.writers import ArrayWriter, TableWriter, arrow_column

COLUMNS = pa.schema([("note", pa.string())])


def write_clips(folder, shard_mb=256.0):
    """Three clips of tiny flat-coloured JPEGs with gaps in their frame indices, as prepare
    stores them; returns {(identity, video): {frame: (JPEG bytes, BGR image)}}."""
    rng = np.random.default_rng(0)
    clips = {}
    writer = FrameStoreWriter(folder, shard_mb, COLUMNS)
    for identity, video, frames in [("a", "x", [0, 2, 3]), ("a", "y/z", [5]), ("b", "x", [1, 4])]:
        images = [np.full((16, 16, 3), rng.integers(0, 256, 3), np.uint8) for _ in frames]
        files = [encode_bgr(image, 90) for image in images]
        writer.add(identity, video, frames, [len(f) for f in files], b"".join(files),
                   {"note": [f"{identity}{f}" for f in frames]})
        clips[identity, video] = dict(zip(frames, zip(files, images)))
    writer.close()
    return clips


def test_frames_read_back_by_row_and_by_key(tmp_path):
    clips = write_clips(tmp_path, shard_mb=1e-6)  # a new shard for every clip
    store = FrameStore(tmp_path)
    assert len(store) == 6 and store.clips["frames"].tolist() == [3, 1, 2]
    manifest = read_manifest(tmp_path)
    assert manifest["note"].tolist() == ["a0", "a2", "a3", "a5", "b1", "b4"]
    for row, (identity, video, frame) in enumerate(manifest[["identity", "video", "frame"]]
                                                   .itertuples(index=False)):
        data, bgr = clips[identity, video][frame]
        assert store.jpeg(row).tobytes() == data
        rgb = read_frame(tmp_path, identity, video, frame)
        assert np.array_equal(rgb, store.image(row)) and rgb.shape == (16, 16, 3)
        assert np.abs(rgb[..., ::-1].astype(int) - bgr).max() <= 3  # RGB order, JPEG's rounding
    for (identity, video), frames in clips.items():
        rows = store.clip_rows(identity, video)
        assert len(set(store.locations[rows.start:rows.stop, SHARD])) == 1  # never split
        assert [(f, d.tobytes()) for f, d in store.clip_jpegs(identity, video)] == [
            (f, d) for f, (d, _) in frames.items()]
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == [
        "shard-00000.jpegs", "shard-00001.jpegs", "shard-00002.jpegs"]
    with pytest.raises(GlgError, match="a/x has frames 0..3, not 1"):
        read_frame(tmp_path, "a", "x", 1)
    with pytest.raises(GlgError, match="no clip a/q"):
        store.clip_jpegs("a", "q")


def test_manifest_rows_of_some_identities_only(tmp_path):
    write_clips(tmp_path)
    assert read_manifest(tmp_path, ["frame"], identities=["b"])["frame"].tolist() == [1, 4]
    empty = read_manifest(tmp_path, ["identity", "frame"], identities=[])
    assert empty.empty and list(empty.columns) == ["identity", "frame"]


def test_a_truncated_shard_a_missing_shard_and_a_repeated_clip_are_clear_errors(tmp_path):
    write_clips(tmp_path)
    shard = tmp_path / "shard-00000.jpegs"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(GlgError, match="shard-00000.jpegs: truncated"):
        FrameStore(tmp_path).jpeg(5)
    shard.unlink()
    with pytest.raises(GlgError, match="shard-00000.jpegs: frame shard listed in locations"):
        FrameStore(tmp_path).jpeg(0)
    writer = FrameStoreWriter(tmp_path / "again", 1.0)
    writer.add("a", "x", [0], [3], b"abc")
    with pytest.raises(GlgError, match="clip a/x added twice"):
        writer.add("a", "x", [1], [3], b"def")
    with pytest.raises(GlgError, match="frame store not found"):
        FrameStore(tmp_path / "nowhere")


@pytest.mark.parametrize("name, what", [("clips.parquet", "frame store clip table"),
                                        ("locations.npy", "frame store location array"),
                                        ("manifest.parquet", "frame manifest")])
def test_a_corrupt_table_of_the_store_is_one_line_naming_it(tmp_path, name, what):
    write_clips(tmp_path)
    (tmp_path / name).write_bytes(b"not what it should be")
    with pytest.raises(GlgError, match=rf"{name}: not a readable {what} \(.+\)$"):
        FrameStore(tmp_path)
        read_manifest(tmp_path)


def test_table_rows_land_in_equal_row_groups_and_equal_bytes_however_they_arrive(tmp_path):
    schema = pa.schema([("k", pa.int64()), ("name", pa.string())])
    rows = {"k": list(range(10)), "name": [f"n{i}" for i in range(10)]}
    for run, pieces in enumerate([[10], [3, 3, 4], [1] * 10]):
        writer, at = TableWriter(tmp_path / f"{run}.parquet", schema, row_group_rows=4), 0
        for n in pieces:
            writer.append({c: v[at:at + n] for c, v in rows.items()})
            at += n
        writer.close()
    metadata = pq.ParquetFile(tmp_path / "0.parquet").metadata
    assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [4, 4, 2]
    assert pq.read_table(tmp_path / "0.parquet").to_pydict() == rows
    assert (tmp_path / "0.parquet").read_bytes() == (tmp_path / "1.parquet").read_bytes() == (
        tmp_path / "2.parquet").read_bytes()


@pytest.mark.parametrize("values, type", [
    (["a", "", "ünï cödé ß", "a"], pa.string()), ([], pa.string()),
    ([0, -3, 2**31 - 1], pa.int32()), (np.arange(5), pa.int64()),
    (np.array([0.1, 2.5, -1e30]), pa.float32()), ([0.04, 1 / 3], pa.float64()),
    (np.array([7.0, 8.0]), pa.int64())])
def test_columns_equal_pyarrows_own(values, type):
    column = arrow_column(values, type)
    column.validate(full=True)
    assert column.equals(pa.array(values, type))


@pytest.mark.parametrize("values, type", [
    ([2**31], pa.int32()), ([-1], pa.uint8()), ([1.5], pa.int64()), ([float("nan")], pa.int64())])
def test_integers_that_do_not_fit_are_errors(values, type):
    with pytest.raises(ValueError, match=f"out of range of {type} or not integers"):
        arrow_column(values, type)


def test_other_column_types_are_errors():
    with pytest.raises(TypeError, match="only strings and numbers"):
        arrow_column([True], pa.bool_())


def test_arrays_of_unknown_length_load_and_map(tmp_path):
    rows = np.arange(30, dtype=np.float32).reshape(5, 3, 2)
    writer = ArrayWriter(tmp_path / "a.npy", np.float32, (3, 2))
    for chunk in (rows[:2], rows[2:2], rows[2:]):
        writer.append(chunk)
    writer.close()
    assert np.array_equal(np.load(tmp_path / "a.npy", mmap_mode="r"), rows)
    np.save(tmp_path / "b.npy", rows)
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    ArrayWriter(tmp_path / "empty.npy", np.int64, (4,)).close()
    assert np.load(tmp_path / "empty.npy", mmap_mode="r").shape == (0, 4)
