"""Stage train_reenact through its CLI on a tiny prepared dataset: it learns and reports, resumes
bit-identically after SIGKILL, falls back from a corrupt checkpoint, starts fresh under other
params, stops on NaN, and trains identically on two gloo processes."""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
from _training import (ROOT, S, logged_steps, prepared_with_lgan, read_tsv, reenact_args,
                       train_in_process, write_params)
from typer.testing import CliRunner

from glg.config import PrepareConfig
from glg.prepare import prepare
from glg.store.checkpoint import checkpoints, digest
from glg.store.networks import load_reenactor
from glg.train import losses
from stages.train_reenact import app


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(prepared, lgan): the tiny dataset and an (untrained) landmark generator for it."""
    return prepared_with_lgan(tmp_path_factory.mktemp("data"))


def run(tmp_path, data, **sections):
    params = write_params(tmp_path / "params.yaml", **sections)
    return CliRunner().invoke(app, reenact_args(tmp_path, *data, params))


def final_state(tmp_path) -> dict:
    return torch.load(checkpoints(tmp_path / "checkpoints/reenact")[-1], weights_only=True)


def test_it_learns_and_writes_curves_grids_and_a_summary(tmp_path, data):
    result = run(tmp_path, data, loss={"perceptual": 10.0}, train={
        "steps": 20, "log_every": 5, "sample_every": 10, "checkpoint_every": 10, "lr": 0.002})
    assert result.exit_code == 0, result.output
    plots = tmp_path / "metrics/train_reenact/plots"
    l1 = read_tsv(plots / "metrics/train/l1.tsv")
    assert list(l1) == [5, 10, 15, 20] and l1[20] < 0.7 * l1[5]  # the loss falls
    for term in ("parts", "adversarial", "feature_matching", "perceptual",
                 "landmark_regression", "discriminator", "lr"):
        assert (plots / f"metrics/train/{term}.tsv").is_file(), term
    assert list(read_tsv(plots / "metrics/val/l1.tsv")) == [0, 10, 20]
    assert sorted(p.name for p in (plots / "images/samples").iterdir()) == [
        "000000000.png", "000000010.png", "000000020.png"]
    summary = json.loads((tmp_path / "metrics/train_reenact/metrics.json").read_text())
    assert {k: summary[k] for k in ("steps", "device", "precision", "perceptual_weights",
                                    "variant", "landmark_mode")} == {
        "steps": 20, "device": "cpu", "precision": "fp32", "perceptual_weights": "random",
        "variant": "ViT+LGAN+Style", "landmark_mode": "lgan"}
    val = summary["val"]
    assert val["l1"] < val["l1_step_0"] and val["l1_source_copied"] > 0 and val["pairs"] == 3
    assert summary["samples_per_s"] > 0
    model = load_reenactor(tmp_path / "reenact")
    assert digest(model.state_dict().items()) == digest(final_state(tmp_path)["models"]["model"]
                                                        .items())


def test_a_run_without_validation_says_so(tmp_path, data):
    result = run(tmp_path, data, train={"steps": 2, "val_pairs": 0})
    assert result.exit_code == 0, result.output
    assert "train_reenact: no validation, train.val_pairs is 0: val.l1 not measured" in (
        result.output)
    val = json.loads((tmp_path / "metrics/train_reenact/metrics.json").read_text())["val"]
    assert val["l1"] is None and val["pairs"] == 0


@pytest.mark.slow  # a trainer subprocess killed mid-run and two more runs: `make test-slow`
def test_after_sigkill_a_rerun_ends_bit_identical_to_an_uninterrupted_run(tmp_path, data):
    train = {"steps": 8, "workers": 1}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for root in (whole, killed):
        root.mkdir()
    assert run(whole, data, train=train).exit_code == 0
    params = write_params(killed / "params.yaml", train=train)
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic
    process = subprocess.Popen([sys.executable, "-m", "stages.train_reenact",
                                *reenact_args(killed, *data, params)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    curve = killed / "metrics/train_reenact/plots/metrics/train/l1.tsv"
    deadline = time.monotonic() + 120
    while True:  # kill once step 4's checkpoint is the newest and steps past it are logged
        newest = [int(p.stem[5:]) for p in checkpoints(killed / "checkpoints/reenact")][-1:]
        logged = read_tsv(curve) if curve.exists() else {}
        if newest and newest[0] >= 4 and max(logged, default=0) > newest[0]:
            break
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    result = CliRunner().invoke(app, reenact_args(killed, *data, params))
    assert result.exit_code == 0, result.output
    assert "train_reenact: resuming at step " in result.output
    a, b = final_state(whole), final_state(killed)
    for part in ("models", "optimizers"):
        assert digest(_tensors(a[part])) == digest(_tensors(b[part])), part
    assert logged_steps(curve) == list(range(1, 9))  # the curve goes on without doubled steps


def test_a_corrupt_checkpoint_is_named_then_the_previous_one_resumed(tmp_path, data):
    assert run(tmp_path, data, train={"steps": 4}).exit_code == 0
    newest = checkpoints(tmp_path / "checkpoints/reenact")[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    result = run(tmp_path, data, train={"steps": 6})
    assert result.exit_code == 0, result.output
    assert f"checkpoint {newest} is unreadable" in result.output
    assert "train_reenact: resuming at step 2 of 6" in result.output


def test_a_resume_under_another_number_of_processes_is_said_and_recorded(tmp_path, data):
    assert run(tmp_path, data, train={"steps": 4}).exit_code == 0
    summary = json.loads((tmp_path / "metrics/train_reenact/metrics.json").read_text())
    assert "world_changes" not in summary  # one world throughout: nothing to record
    newest = checkpoints(tmp_path / "checkpoints/reenact")[-1]
    state = torch.load(newest, weights_only=True)
    assert state["loader"] == {"batches": 4, "world": 1}
    state["loader"]["world"] = 2  # as if two torchrun processes had written it
    torch.save(state, newest)
    result = run(tmp_path, data, train={"steps": 6})
    assert result.exit_code == 0, result.output
    assert ("train_reenact: the checkpoint at step 4 was written by 2 process(es), this run has "
            "1: from here a step takes 1 x 2 pairs, not 2 x 2") in result.output
    summary = json.loads((tmp_path / "metrics/train_reenact/metrics.json").read_text())
    assert summary["world_changes"] == [[4, 2, 1]]


def test_fewer_steps_than_the_checkpoints_keep_their_own_and_the_longer_runs(tmp_path, data):
    assert run(tmp_path, data, train={"steps": 4}).exit_code == 0  # checkpoints at 2 and 4
    result = run(tmp_path, data, train={"steps": 3})
    assert result.exit_code == 0, result.output
    assert "is past step 3, where this run ends" in result.output
    assert "resuming from " in result.output and "step-000000002.pt" in result.output
    assert [p.name for p in checkpoints(tmp_path / "checkpoints/reenact")] == [
        "step-000000002.pt", "step-000000003.pt", "step-000000004.pt"]
    assert "train_reenact: resuming at step 3 of 3" in run(tmp_path, data,
                                                           train={"steps": 3}).output
    assert "train_reenact: resuming at step 4 of 4" in run(tmp_path, data,
                                                           train={"steps": 4}).output


def test_other_pixels_alone_start_fresh(tmp_path, data):
    """The same frames and annotations prepared at another JPEG quality: every landmark, split
    and pair equal, only the pixels differ; DVC re-runs the stage and it must not resume."""
    prepared, lgan = data
    assert run(tmp_path, data, train={"steps": 2}).exit_code == 0
    root = prepared.parent
    config = PrepareConfig(image_px=S, unseen_identities=2, test_clips=1, known_identities=2,
                           self_pairs=6, unseen_pairs=4, known_pairs=4, jpeg_quality=60)
    prepare(root / "frames", root / "annotations", tmp_path / "prepared", config, seed=0)
    for name in ("landmarks.npy", "pairs.parquet", "split.npy"):
        assert (tmp_path / "prepared" / name).read_bytes() == (prepared / name).read_bytes()
    result = run(tmp_path, (tmp_path / "prepared", lgan), train={"steps": 2})
    assert result.exit_code == 0, result.output
    assert "inputs.prepared" in result.output and "starting fresh" in result.output
    assert "resuming" not in result.output


def test_a_checkpoint_under_other_params_is_not_resumed(tmp_path, data):
    assert run(tmp_path, data, train={"steps": 2}).exit_code == 0
    result = run(tmp_path, data, train={"steps": 2}, model={"style": False})
    assert result.exit_code == 0, result.output
    assert "was written under other params (model.style: True -> False); starting fresh" in (
        result.output)
    assert "resuming" not in result.output
    assert 0 in read_tsv(tmp_path / "metrics/train_reenact/plots/metrics/val/l1.tsv")


def test_a_nan_loss_stops_naming_the_step_and_term(tmp_path, data, monkeypatch):
    parts, calls = losses.parts_l1, itertools.count(1)  # NaN from step 3 on
    monkeypatch.setattr(losses, "parts_l1", lambda *a: parts(*a) * (
        float("nan") if next(calls) >= 3 else 1.0))
    result = run(tmp_path, data, train={"steps": 6})
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == ("error: step 3: loss term parts is nan; "
                                              "stopped before applying it, the last good "
                                              "checkpoint stays")
    assert [int(p.stem[5:]) for p in checkpoints(tmp_path / "checkpoints/reenact")] == [2]


def test_bad_params_stop_before_any_work(tmp_path, data):
    result = run(tmp_path, data, train={"precision": "fp8"})
    assert result.exit_code == 1
    assert result.output.strip() == ("error: train.precision must be one of auto, fp32, bf16, "
                                     "got 'fp8'")
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.slow  # two spawned trainer processes: `make test-slow`
def test_two_gloo_processes_hold_identical_weights(tmp_path, data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = write_params(tmp_path / "params.yaml", train={"steps": 4, "checkpoint_every": 4})
    mp.spawn(train_in_process, args=(2, port, reenact_args(tmp_path, *data, params)), nprocs=2)
    weights = [(tmp_path / f"rank{r}.digest").read_text() for r in (0, 1)]
    assert weights[0] == weights[1]
    assert weights[0] == digest(load_reenactor(tmp_path / "reenact").state_dict().items())
    summary = json.loads((tmp_path / "metrics/train_reenact/metrics.json").read_text())
    assert summary["world"] == 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trains_in_bf16(tmp_path, data):
    result = run(tmp_path, data, train={"steps": 2, "device": "cuda", "compile": True})
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "metrics/train_reenact/metrics.json").read_text())
    assert summary["precision"] == "bf16" and summary["device"] == "cuda"


def _tensors(tree, prefix=""):
    """(name, tensor) pairs of a nested state dict, in a fixed order."""
    if isinstance(tree, torch.Tensor):
        return [(prefix, tree)]
    if isinstance(tree, dict):
        return [t for k in sorted(tree, key=str) for t in _tensors(tree[k], f"{prefix}/{k}")]
    if isinstance(tree, (list, tuple)):
        return [t for i, v in enumerate(tree) for t in _tensors(v, f"{prefix}/{i}")]
    return [(prefix, torch.tensor(float(tree)))] if isinstance(tree, (int, float)) else []
