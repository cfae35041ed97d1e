"""Stage train_lgan through its CLI on a tiny prepared dataset: it learns, scores itself against
the mean-shape baseline, resumes, and stops cleanly on bad params or a diverging loss."""

import itertools
import json

import pytest
import torch
from _training import (S, lgan_args, logged_steps, prepared_data, prepared_with_lgan, read_tsv,
                       write_params)
from typer.testing import CliRunner

from glg.errors import GlgError
from glg.store.annotations import read_identity_embeddings
from glg.store.checkpoint import checkpoints
from glg.store.networks import load_landmark_generator
from glg.train import losses
from stages.train_lgan import app


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepared_data(tmp_path_factory.mktemp("data"))


def run(tmp_path, data, **lgan):
    params = write_params(tmp_path / "params.yaml", lgan=lgan)
    return CliRunner().invoke(app, lgan_args(tmp_path, *data, params))


def test_it_learns_and_scores_itself_against_the_mean_shape(tmp_path, data):
    result = run(tmp_path, data)
    assert result.exit_code == 0, result.output
    curve = read_tsv(tmp_path / "metrics/train_lgan/plots/metrics/train/reconstruction.tsv")
    assert list(curve) == [5, 10, 15, 20, 25, 30, 35, 40]
    assert curve[40] < 0.5 * curve[5]  # a few dozen steps on the training frames
    summary = json.loads((tmp_path / "metrics/train_lgan/metrics.json").read_text())
    for scenario in ("known", "unseen"):
        for method in ("lgan", "mean_shape"):
            scores = summary["val"][scenario][method]
            assert set(scores) == {"nme", "nme_centred", "pose_rmse", "au_agreement", "au_f1"}
            assert set(scores["pose_rmse"]) == {"pitch", "yaw", "roll"}
    assert summary["steps"] == 40 and summary["identity_input"] == "embedding"
    generator = load_landmark_generator(tmp_path / "lgan", data[0])
    assert generator.size == S
    assert [int(p.stem[5:]) for p in checkpoints(tmp_path / "checkpoints/lgan")] == [20, 40]


def test_face_recognition_reads_each_persons_embedding(tmp_path, data):
    prepared, annotations = data
    result = run(tmp_path, data, identity_input="face_recognition", steps=5)
    assert result.exit_code == 0, result.output
    generator = load_landmark_generator(tmp_path / "lgan", prepared)
    people = ["id00", "id01", "id02", "id03"]  # the identity table's order
    assert torch.equal(generator.condition.identity.face_embeddings,
                       torch.from_numpy(read_identity_embeddings(annotations, people)))
    summary = json.loads((tmp_path / "metrics/train_lgan/metrics.json").read_text())
    assert summary["val"]["unseen"]["lgan"]["nme"] > 0


def test_more_steps_resume_the_finished_run(tmp_path, data):
    assert run(tmp_path, data, steps=20).exit_code == 0
    result = run(tmp_path, data, steps=40)
    assert result.exit_code == 0, result.output
    assert "train_lgan: resuming at step 20 of 40" in result.output
    curve = tmp_path / "metrics/train_lgan/plots/metrics/train/reconstruction.tsv"
    assert list(read_tsv(curve)) == [5, 10, 15, 20, 25, 30, 35, 40]
    summary = (tmp_path / "metrics/train_lgan/metrics.json").read_text()
    again = run(tmp_path, data, steps=40)  # nothing left to train: the outputs stay
    assert "train_lgan: resuming at step 40 of 40" in again.output
    assert logged_steps(curve) == [5, 10, 15, 20, 25, 30, 35, 40]
    nme = tmp_path / "metrics/train_lgan/plots/metrics/val/known/lgan/nme.tsv"
    assert logged_steps(nme) == [0, 20, 40]
    assert (tmp_path / "metrics/train_lgan/metrics.json").read_text() == summary


def test_bad_params_stop_before_any_work(tmp_path, data):
    result = run(tmp_path, data, batch=0)
    assert result.exit_code == 1
    assert result.output.strip() == "error: lgan.batch must be an integer >= 1, got 0"
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "checkpoints").exists()


def test_a_nan_loss_stops_naming_the_step_and_term(tmp_path, data, monkeypatch):
    l1, calls = losses.l1, itertools.count(1)  # the reconstruction term turns NaN at step 4
    monkeypatch.setattr(losses, "l1", lambda *a: l1(*a) * (float("nan") if next(calls) >= 4
                                                             else 1.0))
    result = run(tmp_path, data, checkpoint_every=1, steps=10)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == ("error: step 4: loss term reconstruction is nan; "
                                              "stopped before applying it, the last good "
                                              "checkpoint stays")
    kept = checkpoints(tmp_path / "checkpoints/lgan")
    assert [int(p.stem[5:]) for p in kept] == [2, 3]
    last = torch.load(kept[-1], weights_only=True)
    assert all(torch.isfinite(t).all() for t in last["models"]["generator"].values())


def test_a_landmark_gan_of_other_people_is_refused(tmp_path):
    """It knows a person by row: another dataset's would silently get someone else's."""
    prepared, lgan = prepared_with_lgan(tmp_path / "a")
    other, _ = prepared_data(tmp_path / "b", people=5)
    assert load_landmark_generator(lgan, prepared).size == S
    with pytest.raises(GlgError, match=r"the landmark GAN was trained on other identities than "
                                       r".*b/prepared holds \(4 against 5; first difference at "
                                       r"row 4\); re-run train_lgan on this prepared data"):
        load_landmark_generator(lgan, other)
