"""glg.data: pairs through `dataset[i]` and through the loader."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from _prepare_data import write_dataset
from torch.utils.data import default_collate

from glg.config import PrepareConfig
from glg.data import EvaluationPairs, Pair, PreparedFrames, TrainingPairs, iterate_pairs
from glg.errors import GlgError
from glg.models.parts import crop_parts
from glg.parts import part_centres
from glg.prepare import prepare
from glg.prepared import FRAMES, read_parts

S = 64


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    frames, annotations = write_dataset(root, identities=4, clips=2, frames=6, side=96)
    prepare(frames, annotations, root / "prepared", PrepareConfig(
        size=S, unseen_identities=2, test_clips=2, self_pairs=20, unseen_pairs=10,
        known_pairs=10), seed=0)
    return root / "prepared"


def test_a_pair_has_the_shapes_ranges_and_dtypes(prepared):
    pair = TrainingPairs(prepared, seed=0)[3]
    sizes = read_parts(prepared)
    assert isinstance(pair, Pair)
    for image in (pair.source, pair.driving):
        assert image.shape == (3, S, S) and image.dtype == torch.float32
        assert -1.0 <= image.min() and image.max() <= 1.0
    for landmarks in (pair.source_landmarks, pair.driving_landmarks):
        assert landmarks.shape == (68, 2) and landmarks.dtype == torch.float32
    assert pair.driving_heatmap.shape == (1, S, S) and pair.driving_heatmap.dtype == torch.float32
    assert 0.0 <= pair.driving_heatmap.min() and 0.5 < pair.driving_heatmap.max() <= 1.0
    assert [tuple(p.shape) for p in pair.source_parts] == [(3, h, w) for h, w in sizes]
    assert [tuple(p.shape) for p in pair.driving_heatmap_parts] == [(1, h, w) for h, w in sizes]
    assert all(p.dtype == torch.float32 and p.min() >= -1 and p.max() <= 1
               for p in pair.source_parts)
    assert pair.part_centres.shape == (4, 2) and pair.part_centres.dtype == torch.float32
    np.testing.assert_allclose(pair.part_centres, part_centres(pair.driving_landmarks.numpy()),
                               rtol=1e-6)
    assert pair.driving_pose.shape == (3,) and pair.driving_aus.shape == (18,)
    assert set(pair.driving_aus.tolist()) <= {0.0, 1.0}
    assert pair.source_identity.dtype == torch.int64 and pair.source_identity.shape == ()


def test_the_trainers_crops_at_part_centres_are_the_pairs_part_crops(prepared):
    sizes = read_parts(prepared)
    for pair in TrainingPairs(prepared, seed=0):
        crops = crop_parts(pair.driving_heatmap[None], pair.part_centres[None], sizes, fill=0.0)
        for got, want in zip(crops, pair.driving_heatmap_parts, strict=True):
            assert torch.equal(got[0], want)


def frame_key(image: torch.Tensor) -> tuple[int, int, int]:
    """(identity, clip, frame) of a pair's image: `write_dataset` paints them into its colour."""
    red, green, blue = ((image[:, 10, 10] + 1) * 127.5).round().int().tolist()
    return red // 40, green // 60, blue // 20


def test_sources_are_the_training_frames_and_drivings_frames_of_their_clip(prepared):
    frames = pd.read_parquet(prepared / FRAMES)
    train = frames[frames["split"] == "train"]
    keys = set(zip(train["identity"].str[2:].astype(int), train["video"].str[4:].astype(int),
                   train["frame"]))
    dataset = TrainingPairs(prepared, seed=0)
    pairs = [dataset[i] for i in range(len(dataset))]
    sources = [frame_key(p.source) for p in pairs]
    assert sorted(sources) == sorted(keys)  # every training frame is the source of one item
    for pair, source in zip(pairs, sources):
        driving = frame_key(pair.driving)
        assert driving in keys and driving[:2] == source[:2] and driving[2] != source[2]
        assert pair.source_identity == pair.driving_identity


def test_the_draw_depends_only_on_seed_epoch_and_index(prepared):
    def drivings(dataset, order, epoch=0):
        dataset.set_epoch(epoch)
        return {i: frame_key(dataset[i].driving) for i in order}

    dataset = TrainingPairs(prepared, seed=0)
    items = range(len(dataset))
    forward = drivings(dataset, items)
    drivings(dataset, items[::3], epoch=5)  # other draws in between, and another epoch's
    assert drivings(dataset, reversed(items)) == forward
    assert drivings(TrainingPairs(prepared, seed=0), items, epoch=1) != forward
    assert drivings(TrainingPairs(prepared, seed=1), items) != forward


def test_prepared_frames_name_their_rows_and_splits(prepared):
    frames, table = PreparedFrames(prepared), pd.read_parquet(prepared / FRAMES)
    for split in ("train", "holdout", "test"):
        assert frames.rows(split).tolist() == np.flatnonzero(table["split"] == split).tolist()
    for i in range(0, len(table), 7):
        assert frames.key(i) == tuple(table.loc[i, ["identity", "video", "frame"]])
    assert (frames.clips["identity_index"].to_numpy()[frames.clip] == frames.identity).all()


def test_evaluation_pairs_follow_the_pair_table(prepared):
    pairs = pd.read_parquet(prepared / "pairs.parquet")
    frames = pd.read_parquet(prepared / FRAMES)
    unseen = EvaluationPairs(prepared, "unseen")
    chosen = pairs[pairs["scenario"] == "unseen"]
    assert len(unseen) == len(chosen) > 0
    pair = unseen[2]
    row = frames.iloc[chosen["driving_row"].iloc[2]]
    assert frame_key(pair.driving) == (int(row["identity"][2:]), int(row["video"][4:]),
                                       row["frame"])
    np.testing.assert_allclose(pair.driving_landmarks[:, 0], row[[f"x_{i}" for i in range(68)]]
                               .to_numpy(np.float32))
    assert pair.source_identity != pair.driving_identity


def test_landmark_style_transfer_moves_only_cross_identity_landmarks(prepared):
    plain = EvaluationPairs(prepared, "unseen")
    lst = EvaluationPairs(prepared, "unseen", landmark_mode="lst")
    a, b = plain[0], lst[0]
    assert not torch.allclose(a.driving_landmarks, b.driving_landmarks)
    torch.testing.assert_close(a.driving_landmarks.mean(0), b.driving_landmarks.mean(0))
    assert not torch.equal(a.driving_heatmap, b.driving_heatmap)
    same = TrainingPairs(prepared, 0, landmark_mode="lst")[1], TrainingPairs(prepared, 0)[1]
    torch.testing.assert_close(same[0].driving_landmarks, same[1].driving_landmarks)


def assert_same(one: Pair, two: Pair) -> None:
    for x, y in zip(one, two):
        for u, v in zip(x if isinstance(x, list) else [x], y if isinstance(y, list) else [y]):
            torch.testing.assert_close(u, v, rtol=0, atol=1e-6)


def test_the_loader_gives_the_datasets_pairs_for_any_number_of_workers(prepared):
    dataset = pickle.loads(pickle.dumps(TrainingPairs(prepared, seed=0)))
    expected = default_collate([dataset[i] for i in range(8)])
    first = next(iterate_pairs(dataset, 8, workers=0, seed=0, shuffle=False))
    assert isinstance(first, Pair) and first.source.shape == (8, 3, S, S)
    assert first.source.dtype == torch.float32 and first.source_parts[3].shape[0] == 8
    assert_same(first, expected)
    one = list(iterate_pairs(dataset, 8, workers=0, seed=3, epochs=2))
    two = list(iterate_pairs(dataset, 8, workers=2, seed=3, epochs=2))
    assert len(one) == len(two) == 2 * (len(dataset) // 8)
    for a, b in zip(one, two):
        assert_same(a, b)
    assert not torch.equal(one[0].source, one[len(one) // 2].source)  # a new order each epoch


def test_bad_arguments_are_clear_errors(prepared, tmp_path):
    with pytest.raises(GlgError, match="scenario"):
        EvaluationPairs(prepared, "cross")
    with pytest.raises(GlgError, match="landmark_mode"):
        TrainingPairs(prepared, 0, landmark_mode="lgan")
    with pytest.raises(GlgError, match="run prepare first"):
        TrainingPairs(tmp_path, 0)
