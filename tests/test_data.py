"""glg.data: pairs through `dataset[i]` and through the loader."""

import itertools
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from _prepare_data import prepared_table, write_dataset
from torch.utils.data import default_collate

from glg.config import LganConfig, PrepareConfig
from glg.data import EvaluationPairs, Pair, TrainingPairs, iterate_pairs
from glg.errors import GlgError
from glg.face.landmark_transfer import place_generated
from glg.face.part_crops import crop_parts
from glg.face.parts import part_centres
from glg.models import build_landmark_gan
from glg.prepare import prepare
from glg.store.frames import read_manifest
from glg.store.prepared import PreparedFrames, read_parts

S = 64


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    frames, annotations = write_dataset(root, identities=4, clips=2, frames=6, side=96)
    prepare(frames, annotations, root / "prepared", PrepareConfig(
        image_px=S, unseen_identities=2, test_clips=2, self_pairs=20, unseen_pairs=10,
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
    np.testing.assert_allclose(pair.part_centres, part_centres(pair.reenacted_landmarks.numpy()),
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
    """(identity, clip, frame) of a pair's image: `write_dataset` paints them into its colour
    (stored as JPEG: a grey level or two off)."""
    red, green, blue = ((image[:, 10, 10] + 1) * 127.5).tolist()
    return round(red / 40), round(green / 60), round(blue / 20)


def test_sources_are_the_training_frames_and_drivings_frames_of_their_clip(prepared):
    frames = prepared_table(prepared)
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
    frames, manifest = PreparedFrames(prepared), read_manifest(prepared)
    counts = json.loads((prepared / "summary.json").read_text())["frames"]
    rows = {split: frames.rows(split) for split in counts}
    assert {s: len(r) for s, r in rows.items()} == counts
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(len(frames)))
    for i in range(0, len(manifest), 7):
        assert frames.key(i) == tuple(manifest.loc[i, ["identity", "video", "frame"]])
    assert (frames.clips["identity_index"].to_numpy()[frames.clip] == frames.identity).all()


def test_prepared_frames_pickle_without_their_arrays(prepared):
    frames = PreparedFrames(prepared)
    assert len(pickle.dumps(frames)) < 1000  # a worker maps the files itself
    again = pickle.loads(pickle.dumps(frames))
    assert np.array_equal(again.image(5), frames.image(5))
    assert np.array_equal(again.landmarks, frames.landmarks)


def test_evaluation_pairs_follow_the_pair_table(prepared):
    pairs = pd.read_parquet(prepared / "pairs.parquet")
    unseen = EvaluationPairs(prepared, "unseen")
    chosen = pairs[pairs["scenario"] == "unseen"]
    assert len(unseen) == len(chosen) > 0
    pair, row = unseen[2], chosen.iloc[2]
    assert frame_key(pair.driving) == (int(row["driving_identity"][2:]),
                                       int(row["driving_video"][4:]), row["driving_frame"])
    np.testing.assert_allclose(pair.driving_landmarks,
                               PreparedFrames(prepared).landmarks[row["driving_row"]])
    assert pair.source_identity != pair.driving_identity


def test_landmark_style_transfer_moves_only_cross_identity_landmarks(prepared):
    plain = EvaluationPairs(prepared, "unseen")
    lst = EvaluationPairs(prepared, "unseen", landmark_mode="lst")
    a, b = plain[0], lst[0]
    assert not torch.allclose(a.reenacted_landmarks, b.reenacted_landmarks)
    torch.testing.assert_close(a.reenacted_landmarks.mean(0), b.reenacted_landmarks.mean(0))
    assert not torch.equal(a.driving_heatmap, b.driving_heatmap)
    torch.testing.assert_close(b.driving_landmarks, a.driving_landmarks)  # the frame's own
    same = TrainingPairs(prepared, 0, landmark_mode="lst")[1], TrainingPairs(prepared, 0)[1]
    torch.testing.assert_close(same[0].reenacted_landmarks, same[1].reenacted_landmarks)


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
    with pytest.raises(GlgError, match="landmark_mode=lgan: the trained landmark generator is "
                                       "needed"):
        TrainingPairs(prepared, 0, landmark_mode="lgan")
    with pytest.raises(GlgError, match="landmark_mode"):
        TrainingPairs(prepared, 0, landmark_mode="eq3")
    with pytest.raises(GlgError, match="run prepare first"):
        TrainingPairs(tmp_path, 0)


def assert_same_up_to_decoding(one: Pair, two: Pair, levels: float, mean: bool = False) -> None:
    """Two batches agree: images and source parts within `levels` grey levels (JPEG decoders
    round differently) at every pixel, or on average with `mean`; every other field exactly."""
    for name in Pair._fields:
        for u, v in zip(*(x if isinstance(x, list) else [x] for x in (getattr(one, name),
                                                                    getattr(two, name))),
                        strict=True):
            if name not in ("source", "driving", "source_parts"):
                torch.testing.assert_close(u.cpu(), v.cpu(), rtol=0, atol=0, msg=name)
            elif mean:
                assert (u.cpu() - v.cpu()).abs().mean() * 127.5 < levels, name
            else:
                torch.testing.assert_close(u.cpu(), v.cpu(), rtol=0, atol=levels / 127.5, msg=name)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Prepared frames of a photograph, so that part crops show what they cut."""
    root = tmp_path_factory.mktemp("photos")
    frames, annotations = write_dataset(root, identities=3, clips=2, frames=6, side=96,
                                        photo=True)
    prepare(frames, annotations, root / "prepared", PrepareConfig(
        image_px=S, unseen_identities=1, test_clips=1, self_pairs=4, unseen_pairs=0,
        known_pairs=4), seed=0)
    return root / "prepared"


def test_the_torch_decode_path_gives_the_cpu_pairs(photos):
    dataset = TrainingPairs(photos, seed=0, landmark_mode="lst")
    cpu = list(iterate_pairs(dataset, 8, workers=0, seed=0, epochs=1))
    on_device = list(iterate_pairs(dataset, 8, workers=2, seed=0, epochs=1, device="cpu",
                                   decode="device"))
    assert len(cpu) == len(on_device) > 0
    for a, b in zip(cpu, on_device):
        assert_same_up_to_decoding(a, b, levels=1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvjpeg needs a GPU")
def test_nvjpeg_on_the_gpu_gives_the_cpu_pairs(photos):
    dataset = TrainingPairs(photos, seed=0)
    cpu = next(iterate_pairs(dataset, 8, workers=0, seed=0))
    gpu = next(iterate_pairs(dataset, 8, workers=0, seed=0, device="cuda"))  # decoded there
    assert gpu.source.is_cuda and gpu.source_parts[0].is_cuda
    # nvjpeg is no libjpeg-turbo: on an H100 single pixels of the photo differed by more than 8
    # levels, so the bound is torchvision's own for nvjpeg (test_image.py::test_decode_jpeg_cuda):
    # under 2 levels on average.
    assert_same_up_to_decoding(cpu, gpu, levels=2, mean=True)


@pytest.fixture(scope="module")
def lgan():
    """An (untrained) landmark generator at S: what it draws is all the loader needs."""
    torch.manual_seed(0)
    generator, _ = build_landmark_gan(LganConfig(identity_dim=4, au_dim=4, hidden=8), size=S,
                                      identities=4)
    return generator.eval()


def reenactor_inputs(pair: Pair) -> list[torch.Tensor]:
    """What the reenactor's networks read of a pair besides the two images (glg.models)."""
    return [pair.driving_heatmap, pair.part_centres, *pair.driving_heatmap_parts]


def test_the_three_landmark_modes_give_the_reenactor_different_inputs(prepared, lgan):
    modes = {mode: EvaluationPairs(prepared, "known", mode, lgan if mode == "lgan" else None)
             for mode in ("driving", "lst", "lgan")}
    for i in (0, 3):
        pairs = {mode: dataset[i] for mode, dataset in modes.items()}
        for one, two in (("driving", "lst"), ("driving", "lgan"), ("lst", "lgan")):
            for a, b in zip(reenactor_inputs(pairs[one]), reenactor_inputs(pairs[two])):
                assert not torch.equal(a, b), (i, one, two)
        # lgan: L_reen of the SOURCE identity under the DRIVING pose and AUs (thesis Eq. 3.4),
        # centred on the driving's landmarks
        p = pairs["lgan"]
        with torch.no_grad():
            want = lgan(p.source_identity[None], p.driving_pose[None], p.driving_aus[None])[0]
        torch.testing.assert_close(p.reenacted_landmarks, torch.from_numpy(
            place_generated(want.numpy(), p.driving_landmarks.numpy())))
        torch.testing.assert_close(p.reenacted_landmarks.mean(0), p.driving_landmarks.mean(0))
        assert p.source_identity != p.driving_identity


def test_people_the_lgan_never_trained_on_are_guided_by_eq3(prepared, lgan):
    """The LGAN's learned vectors train on the training split's people only: pairs of another
    source (all of `unseen`) get paper Eq. 3's landmarks, as in `lst` mode; known people the
    LGAN's."""
    generated, transferred = (EvaluationPairs(prepared, "unseen", "lgan", lgan),
                              EvaluationPairs(prepared, "unseen", "lst"))
    assert len(generated) and generated.untrained.all()
    for i in (0, len(generated) - 1):
        torch.testing.assert_close(generated[i].reenacted_landmarks,
                                   transferred[i].reenacted_landmarks)
    assert not EvaluationPairs(prepared, "known", "lgan", lgan).untrained.any()


def test_training_pairs_see_the_lgan_landmarks_of_the_driving_frame(prepared, lgan):
    plain, lst = TrainingPairs(prepared, 0), TrainingPairs(prepared, 0, "lst")
    generated = TrainingPairs(prepared, 0, "lgan", lgan)
    for i in (0, 5):
        a, b, c = plain[i], lst[i], generated[i]
        torch.testing.assert_close(a.reenacted_landmarks, b.reenacted_landmarks)  # one person
        assert not torch.equal(a.driving_heatmap, c.driving_heatmap)
        with torch.no_grad():  # one person: the driving's identity is the source's
            want = lgan(c.driving_identity[None], c.driving_pose[None], c.driving_aus[None])[0]
        torch.testing.assert_close(c.reenacted_landmarks, torch.from_numpy(
            place_generated(want.numpy(), c.driving_landmarks.numpy())))
        torch.testing.assert_close(c.driving_landmarks, a.driving_landmarks)


def test_the_loader_resumes_mid_run_and_shards_steps_over_processes(prepared):
    dataset = TrainingPairs(prepared, seed=0)
    whole = list(itertools.islice(iterate_pairs(dataset, 2, 0, seed=5), 9))  # crosses epochs
    resumed = list(itertools.islice(iterate_pairs(dataset, 2, 0, seed=5, start=4), 5))
    for a, b in zip(whole[4:], resumed, strict=True):
        assert_same(a, b)
    ranks = [list(itertools.islice(iterate_pairs(dataset, 1, 0, seed=5, rank=r, world=2), 9))
             for r in (0, 1)]
    for step in range(9):  # two processes at batch 1 see one process's batch of 2
        assert_same(Pair(*(torch.cat([x, y]) if isinstance(x, torch.Tensor)
                           else [torch.cat([u, v]) for u, v in zip(x, y)]
                           for x, y in zip(ranks[0][step], ranks[1][step]))), whole[step])
