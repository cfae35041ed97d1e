"""Federated training (train.mode: federated) through the train_reenact stage on Flower's
simulation engine: it writes the reenactor the evaluate stage reads, logs rounds and its stop
decision, resumes after SIGKILL from the last finished round; Algorithm 1's stop rule on a
scripted loss sequence; and what a client sends back is weights and scalars only."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from _training import (LOSS, MODEL, ROOT, S, TRAIN, prepared_with_lgan, read_tsv, reenact_args,
                       write_params)
from flwr.supercore.task_identity import TaskIdentity
from typer.testing import CliRunner

from glg.config import parse_section
from glg.store.checkpoint import checkpoints, digest
from glg.store.networks import load_reenactor
from glg.train.federated import TRAIN_MESSAGE, Job, next_round
from glg.train.flower_apps import build_client_app
from glg.train.reenactor_step import build_networks
from stages.train_reenact import app

FEDERATED = {"train": {"mode": "federated"}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(prepared, lgan): the tiny dataset (2 training identities) and a landmark generator."""
    return prepared_with_lgan(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def federation(tmp_path_factory, data):
    """One uninterrupted simulated federation (3 rounds of 2 clients), shared by the tests."""
    root = tmp_path_factory.mktemp("federation")
    params = write_params(root / "params.yaml", **FEDERATED)
    result = CliRunner().invoke(app, reenact_args(root, *data, params))
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.mark.slow  # Flower's simulation engine (Ray): `make test-slow`
def test_a_simulated_federation_writes_the_reenactor_and_its_rounds(federation):
    root, output = federation
    assert "federated over 2 clients" in output
    assert "federated: stopped after round 3: max_rounds 3 reached" in output
    model = load_reenactor(root / "reenact")  # what evaluate reads, as after central training
    state = torch.load(checkpoints(root / "checkpoints/reenact")[-1], weights_only=True)
    assert digest(model.state_dict().items()) == digest(state["models"]["model"].items())
    untrained, _ = build_networks(parse_section("model", MODEL), S, torch.device("cpu"), seed=0)
    assert digest(model.state_dict().items()) != digest(untrained.state_dict().items())
    curves = root / "metrics/train_reenact/plots/metrics"
    assert list(read_tsv(curves / "round/loss_g.tsv")) == [1, 2, 3]
    assert read_tsv(curves / "round/go_on.tsv") == {1: 1, 2: 1, 3: 0}
    assert read_tsv(curves / "round/clients.tsv") == {1: 2, 2: 2, 3: 2}
    assert len(list((curves / "client").iterdir())) == 2  # one loss curve per person
    summary = json.loads((root / "metrics/train_reenact/metrics.json").read_text())
    assert summary["mode"] == "federated" and summary["rounds"] == 3


@pytest.mark.slow
def test_after_sigkill_a_rerun_resumes_from_the_last_round_and_ends_the_same(
        tmp_path, data, federation):
    params = write_params(tmp_path / "params.yaml", **FEDERATED)
    # the clients train in Ray's worker processes, whose thread count Ray sets from the
    # environment it finds: this process's, as for the in-process runs it is compared with (an
    # OMP_NUM_THREADS of 1 here trained round 1 on another thread count under pytest -n 2)
    process = subprocess.Popen([sys.executable, "-m", "stages.train_reenact",
                                *reenact_args(tmp_path, *data, params)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 180
    while not checkpoints(tmp_path / "checkpoints/reenact"):  # kill once round 1 is saved
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the stage and its Ray processes
    process.wait()
    result = CliRunner().invoke(app, reenact_args(tmp_path, *data, params))
    assert result.exit_code == 0, result.output
    assert "train_reenact: federated, resuming after round " in result.output
    whole = load_reenactor(federation[0] / "reenact").state_dict()
    assert digest(load_reenactor(tmp_path / "reenact").state_dict().items()) == digest(
        whole.items())
    curve = tmp_path / "metrics/train_reenact/plots/metrics/round/loss_g.tsv"
    assert [int(line.split()[0]) for line in curve.read_text().splitlines()[1:]] == [1, 2, 3]


def test_the_stop_rule_is_algorithm_1s():
    config = parse_section("federated", {"tau": 3.0, "min_rounds": 5, "max_rounds": 9})
    flat, noisy = [10.0, 11.0, 9.0, 10.0, 10.0], [10.0, 14.0, 6.0, 12.0, 8.0]
    assert [next_round(flat[:k], config).go_on for k in range(5)] == [True] * 5  # round <= 5
    assert not next_round(flat, config).go_on  # Var 0.4 < 3: converged
    assert next_round(noisy, config).go_on  # Var 8 >= 3
    assert next_round([30.0] + flat, config).variance == pytest.approx(0.4)  # the last 5 only
    assert not next_round(noisy + noisy[:4], config).go_on  # the cap: no round 10
    longer = parse_section("federated", {"tau": 3.0, "min_rounds": 7})
    assert next_round(flat + flat[:1], longer).go_on  # round 7 <= min_rounds, converged or not



def test_only_weights_and_scalar_metrics_leave_a_client(tmp_path, data, monkeypatch):
    for key, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 7)):  # as a SuperNode's
        monkeypatch.setattr(TaskIdentity, key, value)  # ClientApp process has them
    sections = {name: parse_section(name, raw) for name, raw in (
        ("model", MODEL), ("loss", LOSS), ("train", TRAIN), ("federated", {"local_steps": 2}))}
    model, discriminator = build_networks(sections["model"], S, torch.device("cpu"), seed=0)
    job = Job(*sections.values(), S, tmp_path, tmp_path, tmp_path, {}, data[0])
    content = RecordDict({"model": ArrayRecord(model.state_dict()),
                          "discriminator": ArrayRecord(discriminator.state_dict()),
                          "config": ConfigRecord({"round": 1, "recipe": job.recipe()})})
    context = Context(run_id=1, node_id=7, node_config={"partition-id": 1}, state=RecordDict(),
                      run_config={})
    reply = build_client_app(*data)(Message(content, 7, TRAIN_MESSAGE), context)
    assert not reply.has_error(), reply.error
    records = reply.content
    assert sorted(records) == ["discriminator", "metrics", "model"]  # no config, no frames
    for name, net in (("model", model), ("discriminator", discriminator)):
        assert isinstance(records[name], ArrayRecord)
        assert list(records[name].to_torch_state_dict()) == list(net.state_dict())
    assert isinstance(records["metrics"], MetricRecord)
    assert all(isinstance(v, (int, float)) for v in records["metrics"].values())
