"""Federated training as a deployment on loopback, the same apps as the simulation in separate
processes: `flower-superlink`, one `flower-supernode` per person (node config: prepared, lgan,
partition-id) and `flwr run flower/`; it writes the reenactor and its per-round log, and a
SuperNode killed mid-run is named in the log while the next round completes with the others.
Every process started here is ended by its process group's id."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _training import ROOT, prepared_with_lgan, read_tsv, write_params

from glg.store.checkpoint import checkpoints, digest
from glg.store.networks import load_reenactor
from glg.store.prepared import PreparedFrames
from glg.train.federated import training_identities

pytestmark = pytest.mark.slow  # a SuperLink and three SuperNodes: `make test-slow`

BIN = Path(sys.executable).parent  # flower-superlink, flower-supernode, flwr, flwr-serverapp
STARTUP = 120  # seconds a process may take to come up on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def end(process: subprocess.Popen) -> None:
    """Stop a process started in its own session and all it started: SIGTERM (a SuperNode
    leaves the federation), SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


class Loopback:
    """A SuperLink on a free loopback port, its SuperNodes and runs, with every process kept
    to be ended."""

    def __init__(self, root: Path, prepared: Path, lgan: Path):
        self.root, self.prepared, self.lgan = root, prepared, lgan
        self.port = free_port()
        home = root / "flwr-home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')
        self.env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0",
                    "FLWR_DISABLE_UPDATE_CHECK": "1", "PATH": f"{BIN}:{os.environ['PATH']}",
                    "OMP_NUM_THREADS": "1"}  # 2 cores shared by all SuperNodes' clients
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, *command: str, **kwargs) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "w")
        process = subprocess.Popen(command, cwd=self.root, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        log.close()
        self.processes.append(process)
        return process

    def link(self) -> None:
        """The SuperLink, returning once its port takes connections."""
        self.start("superlink", str(BIN / "flower-superlink"), "--insecure", "--port",
                   str(self.port), "--disable-runtime-dependency-installation")
        deadline = time.monotonic() + STARTUP
        while True:
            assert self.processes[-1].poll() is None, self.log("superlink")
            assert time.monotonic() < deadline, self.log("superlink")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)

    def node(self, partition: int) -> subprocess.Popen:
        """A SuperNode holding the `partition`-th training identity's client."""
        config = (f'partition-id={partition} prepared="{self.prepared}" '
                  f'lgan="{self.lgan}"')
        return self.start(f"supernode{partition}", str(BIN / "flower-supernode"), "--insecure",
                          "--superlink", f"127.0.0.1:{self.port}", "--port", str(free_port()),
                          "--node-config", config)

    def wait_for_nodes(self, count: int) -> None:
        """Until `count` SuperNodes are online, so that round 1 has them all."""
        deadline = time.monotonic() + STARTUP
        while True:
            listed = subprocess.run([str(BIN / "flwr"), "supernode", "list", "--format", "json"],
                                    cwd=self.root, env=self.env, capture_output=True, text=True)
            nodes = json.loads(listed.stdout).get("nodes", []) if listed.stdout else []
            if sum(node.get("status") == "online" for node in nodes) >= count:
                return
            assert time.monotonic() < deadline, listed.stdout + listed.stderr
            time.sleep(1)

    def run(self, out: Path, **federated) -> subprocess.Popen:
        """`flwr run flower/` with streamed logs (it returns when the run ends), on tiny params
        with `federated`'s changes, writing under `out`."""
        params = write_params(out / "params.yaml", train={"mode": "federated"},
                              federated=federated)
        config = (f'params="{params}" image_px={PreparedFrames(self.prepared).size} '
                  f'prepared="{self.prepared}" '
                  f'out="{out / "reenact"}" checkpoints="{out / "checkpoints"}" '
                  f'metrics="{out / "metrics"}"')
        return self.start(f"run-{out.name}", str(BIN / "flwr"), "run", str(ROOT / "flower"),
                          "loopback", "--run-config", config, "--stream")

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    """A running SuperLink with the tiny dataset of 3 training identities; ended afterwards."""
    root = tmp_path_factory.mktemp("loopback")
    deployment = Loopback(root, *prepared_with_lgan(root / "data", people=5))
    try:
        deployment.link()
        yield deployment
    finally:
        for process in reversed(deployment.processes):
            end(process)


def test_a_deployment_writes_the_reenactor_and_a_killed_client_is_named_and_left_out(loopback):
    """One deployment for both points (each costs a minute of process starts): three
    SuperNodes, the third killed after round 1."""
    out = loopback.root / "three"
    out.mkdir()
    nodes = [loopback.node(p) for p in (0, 1, 2)]
    try:
        loopback.wait_for_nodes(3)
        run = loopback.run(out, local_steps=2, min_rounds=2, max_rounds=2, round_timeout=90.0)
        deadline = time.monotonic() + 300
        while not checkpoints(out / "checkpoints"):  # round 1 is done: kill the third person
            assert run.poll() is None and time.monotonic() < deadline, loopback.log("run-three")
            time.sleep(0.05)
        os.killpg(nodes[2].pid, signal.SIGKILL)  # the SuperNode and its ClientApp process
        nodes[2].wait()
        assert run.wait(300) == 0, loopback.log("run-three")
    finally:
        for node in nodes:
            end(node)
    log = loopback.log("run-three")
    killed = training_identities(PreparedFrames(loopback.prepared))[2]
    assert "federated: round 1: 3 client(s)" in log
    assert f"(identity {killed}) missing: " in log.split("federated: round 1: ")[1]
    assert read_tsv(out / "metrics/plots/metrics/round/clients.tsv") == {1: 3, 2: 2}
    assert "federated: stopped after round 2" in log
    model = load_reenactor(out / "reenact")
    state = torch.load(checkpoints(out / "checkpoints")[-1], weights_only=True)
    assert state["step"] == 2
    assert digest(model.state_dict().items()) == digest(state["models"]["model"].items())
    assert len(list((out / "metrics/plots/metrics/client").iterdir())) == 3  # each its own person
