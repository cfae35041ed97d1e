"""The Flower apps of federated training (thesis 3.6) and their start in Flower's simulation
engine, which `train_reenact` uses under `train.mode: federated`.

`server_app` and `client_app` are the same apps for a deployment (README: `flower-superlink`,
one `flower-supernode` per person, `flwr run flower/`): the ServerApp reads its settings from
the run config (`params`, `image_px`, `out`, `checkpoints`, `metrics`), a ClientApp its data from
its SuperNode's node config (`prepared`, `lgan`, `partition-id`: which of the prepared folder's
training identities it is). In the simulation each virtual SuperNode's `partition-id` is its
index, and the data folders are the stage's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

import glg.engine  # noqa: F401  sets RAY_ENABLE_UV_RUN_RUNTIME_ENV before Ray is imported
from glg.config import FederatedConfig, LossConfig, ModelConfig, TrainConfig, load_params
from glg.errors import GlgError
from glg.store.networks import load_landmark_generator
from glg.store.prepared import PreparedFrames
from glg.train.federated import Job, federate, local_round, training_identities
from glg.train.reenactor_step import input_digests
from glg.train.runtime import Trained, code_digest

# Flower reads these when it starts; no telemetry and no update check, here and on CI
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

from flwr.app import Context, Message  # noqa: E402  after the switches above
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402


def build_server_app(job: Job | None = None, say: Callable[[str], None] = print,
                     done: Callable[[Trained], None] = lambda _: None) -> ServerApp:
    """The ServerApp running Algorithm 1's rounds for `job`, or for the job the run config
    describes (deployment); the trained model goes to `job.out_dir` and to `done`."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        done(federate(grid, job or _job_from_run_config(context.run_config), say))

    return app


def build_client_app(prepared_dir: Path | None = None, lgan_dir: Path | None = None) -> ClientApp:
    """The ClientApp training one person's frames: those of `prepared_dir` (simulation) or of
    its node config's `prepared` (deployment)."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        node = context.node_config
        prepared = prepared_dir or _node_path(node, "prepared")
        lgan = lgan_dir or _node_path(node, "lgan")
        if "partition-id" not in node:
            raise GlgError("the SuperNode's --node-config has no partition-id")
        content = local_round(message.content, prepared, lgan, int(node["partition-id"]))
        return Message(content, reply_to=message)

    return app


server_app = build_server_app()
client_app = build_client_app()


def train_federated(prepared_dir: Path, lgan_dir: Path, out_dir: Path, checkpoint_dir: Path,
                    metrics_dir: Path, model_config: ModelConfig, loss_config: LossConfig,
                    config: TrainConfig, federated: FederatedConfig,
                    say: Callable[[str], None] = print) -> Trained:
    """Algorithm 1 in Flower's simulation engine, one virtual SuperNode per training identity of
    `prepared_dir`, the clients one after another on all cores (or the GPU)."""
    from flwr.simulation import run_simulation  # starts Ray: only when simulating

    frames = PreparedFrames(prepared_dir)
    clients = len(training_identities(frames))
    lgan = (load_landmark_generator(lgan_dir, prepared_dir)
            if model_config.landmark_mode == "lgan" else None)
    job = Job(model_config, loss_config, config, federated, frames.size, Path(out_dir),
              Path(checkpoint_dir), Path(metrics_dir), input_digests(frames, lgan),
              Path(prepared_dir))
    result: dict[str, Trained] = {}
    app = build_server_app(job, say, lambda trained: result.update(trained=trained))
    say(f"train_reenact: federated over {clients} clients (one per training identity) in "
        "Flower's simulation engine")
    cuda = torch.cuda.is_available() and config.device != "cpu"
    resources = {"num_cpus": os.cpu_count() or 1, "num_gpus": 1.0 if cuda else 0.0}
    run_simulation(app, build_client_app(Path(prepared_dir).resolve(),
                                         Path(lgan_dir).resolve()),
                   num_supernodes=clients, backend_config={"client_resources": resources})
    if "trained" not in result:
        raise GlgError("train_reenact: the federated run ended without a model (see Flower's "
                       "log above)")
    return result["trained"]


def _job_from_run_config(run_config) -> Job:
    """A deployment's job: params file and output paths from the run config."""
    missing = [k for k in ("params", "image_px", "prepared", "out", "checkpoints", "metrics")
               if k not in run_config]
    if missing:
        raise GlgError(f"the run config lacks {', '.join(missing)} (flwr run --run-config)")
    params = Path(str(run_config["params"]))
    return Job(load_params("model", params), load_params("loss", params),
               load_params("train", params), load_params("federated", params),
               int(run_config["image_px"]), Path(str(run_config["out"])),
               Path(str(run_config["checkpoints"])), Path(str(run_config["metrics"])),
               {"code": code_digest()}, Path(str(run_config["prepared"])))


def _node_path(node_config, key: str) -> Path:
    if key not in node_config:
        raise GlgError(f"the SuperNode's --node-config has no {key}")
    return Path(str(node_config[key]))

