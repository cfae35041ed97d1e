"""Federated training of the reenactor (thesis 3.6, Algorithm 1: FedGAN on FedAvg), on any
Flower `Grid`: the server's round loop with its stop rule, and one client's local round.

Each round every connected client gets the global G and D, trains E local steps on its own
person's frames at lr 1e-4 for both, and sends back its G and D and its scalar losses; the
server averages the weights (equal shares as thesis 3.6.2, or by training pairs as FedAvg's Eq.
2.2) and goes on while round <= 5 or Var(L_G) over the last 5 rounds >= tau (Algorithm 1), up to
`federated.max_rounds`. Flower has no stop rule of its own: the loop is written on the Grid.
A client that does not reply in `federated.round_timeout` seconds, or replies with an error, is
named in the log and the round is averaged over the others. After each round the global G, D,
the round and the loss history are checkpointed atomically (glg.store.checkpoint); a rerun resumes
after the last finished round, and a client's local round depends only on (seed, round,
identity) and the global weights, so the resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from glg.config import (FederatedConfig, LossConfig, ModelConfig, TrainConfig, parse_section,
                        to_dict)
from glg.data import TrainingPairs, iterate_pairs
from glg.errors import GlgError
from glg.store.checkpoint import load_checkpoint, restore, save_checkpoint, training_state
from glg.store.networks import load_landmark_generator, save_reenactor
from glg.store.prepared import PreparedFrames
from glg.train.loop import trajectory
from glg.train.reenactor_step import Networks, build_networks, build_perceptual, train_step
from glg.train.runtime import FiniteWatch, Trained, adam, open_live, start_runtime

VARIANCE_ROUNDS = 5  # Var(L_G) "from the last 5 rounds" (thesis 3.6.2)
# The federated params a run's weights depend on; max_rounds and round_timeout are not, so
# that a higher cap continues a finished run.
TRAJECTORY = ("local_steps", "lr", "weighting")
TRAIN_MESSAGE = "train"  # Flower's message type for a client's local training


class Decision(NamedTuple):
    """Whether Algorithm 1's loop runs another round, with the variance it looked at."""

    go_on: bool
    variance: float | None  # Var(L_G) over the last 5 rounds; None before there are 5
    reason: str


def next_round(loss_g: list[float], config: FederatedConfig) -> Decision:
    """Algorithm 1's `while round <= 5 or Var(L_G) >= tau`, for the round after the
    `len(loss_g)` finished ones, capped at `max_rounds`. Var is the population variance (the
    thesis does not say which)."""
    upcoming = len(loss_g) + 1
    last = loss_g[-VARIANCE_ROUNDS:]
    variance = float(np.var(last)) if len(last) == VARIANCE_ROUNDS else None
    if upcoming > config.max_rounds:
        return Decision(False, variance, f"max_rounds {config.max_rounds} reached")
    if upcoming <= config.min_rounds:
        return Decision(True, variance, f"round {upcoming} <= min_rounds {config.min_rounds}")
    if variance is None:  # min_rounds < 5: no variance to judge convergence by yet
        return Decision(True, None, f"fewer than {VARIANCE_ROUNDS} rounds for Var(L_G)")
    if variance >= config.tau:
        return Decision(True, variance, f"Var(L_G) {variance:.4g} >= tau {config.tau:g}")
    return Decision(False, variance, f"Var(L_G) {variance:.4g} < tau {config.tau:g}")


def fedavg(states: list[Mapping[str, torch.Tensor]],
           shares: list[float]) -> dict[str, torch.Tensor]:
    """The share-weighted average of state dicts (shares sum to 1); integer buffers (BatchNorm's
    batch counts) are not averaged: the first client's are kept."""
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = sum(share * state[key].double() for share, state in
                           zip(shares, states)).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


@dataclass(frozen=True)
class Job:
    """What the server needs: settings, where to write, and the inputs' digests."""

    model: ModelConfig
    loss: LossConfig
    train: TrainConfig
    federated: FederatedConfig
    size: int  # S, the prepared crop side
    out_dir: Path
    checkpoint_dir: Path
    metrics_dir: Path
    inputs: dict  # digests of code and inputs, for the checkpoint fingerprint
    prepared_dir: Path  # its part sizes and identities go with the saved reenactor (no frames)

    def recipe(self) -> str:
        """The settings a client trains under, as JSON (a ConfigRecord holds scalars)."""
        train = {k: getattr(self.train, k) for k in ("batch", "betas", "seed", "workers",
                                                      "device", "precision")}
        return json.dumps({"model": to_dict(self.model), "loss": to_dict(self.loss),
                           "train": train, "federated": to_dict(self.federated)})


def federate(grid: Grid, job: Job, say: Callable[[str], None] = print) -> Trained:
    """Run Algorithm 1 on the clients of `grid` until its stop rule; write the global G to
    `job.out_dir/reenactor.pt` (the same file as central training) and return it."""
    fed = job.federated
    model, discriminator = build_networks(job.model, job.size, torch.device("cpu"),
                                          job.train.seed)
    models = {"model": model, "discriminator": discriminator}
    fingerprint = {"model": to_dict(job.model), "loss": to_dict(job.loss),
                   "train": {"batch": job.train.batch, "seed": job.train.seed, "mode": "federated"},
                   "federated": trajectory(fed, TRAJECTORY), "inputs": job.inputs}
    state = load_checkpoint(job.checkpoint_dir, fingerprint, say, until=fed.max_rounds)
    history: dict = {"loss_g": [], "loss_d": [], "clients": [], "identities": {}}
    done = 0
    if state is not None:
        restore(state, models, {})
        done, history = state["step"], state["history"]
        say(f"train_reenact: federated, resuming after round {done}")
    live = open_live(job.metrics_dir, done if state is not None else None)
    decision = next_round(history["loss_g"], fed)
    good: dict = {}
    while decision.go_on:
        done += 1
        started = time.perf_counter()
        nodes = sorted(grid.get_node_ids())
        content = _global_content(models, job.recipe(), done)
        messages = [Message(content, node, TRAIN_MESSAGE, group_id=str(done)) for node in nodes]
        replies = list(grid.send_and_receive(messages, timeout=fed.round_timeout))
        sent = time.perf_counter()
        # the last round's clients too: one the SuperLink already dropped is missing as well
        expected = sorted(set(nodes) | set(good))
        good = {r.metadata.src_node_id: r for r in replies if not r.has_error()}
        for node in expected:
            if node not in good:
                why = next((r.error.reason.splitlines()[-1] for r in replies
                            if r.metadata.src_node_id == node and r.has_error()),
                           f"no reply in {fed.round_timeout:g} s" if node in nodes
                           else "no longer connected")
                who = history["identities"].get(str(node), "unknown")
                say(f"federated: round {done}: client {node} (identity {who}) missing: {why}; "
                    f"averaging the {len(good)} other(s)")
        if not good:
            raise GlgError(f"federated round {done}: no client replied; stopped, the last "
                           "round's checkpoint stays")
        # in the order of the clients' identities, not of arrival: the float sums of FedAvg
        # then come out the same bits in every run, a resumed one included
        good = dict(sorted(good.items(), key=lambda kv: int(kv[1].content["metrics"]["identity"])))
        metrics = {node: reply.content["metrics"] for node, reply in good.items()}
        for node, m in metrics.items():
            history["identities"][str(node)] = int(m["identity"])
        counts = [float(m["examples"]) for m in metrics.values()]
        shares = ([1 / len(good)] * len(good) if fed.weighting == "equal"
                  else [c / sum(counts) for c in counts])
        for name, net in models.items():
            net.load_state_dict(fedavg([r.content[name].to_torch_state_dict()
                                        for r in good.values()], shares))
        averaged = time.perf_counter()
        loss_g = sum(s * float(m["loss_g"]) for s, m in zip(shares, metrics.values()))
        loss_d = sum(s * float(m["loss_d"]) for s, m in zip(shares, metrics.values()))
        history["loss_g"].append(loss_g)
        history["loss_d"].append(loss_d)
        history["clients"].append(len(good))
        decision = next_round(history["loss_g"], fed)
        client_seconds = [float(m["seconds"]) for m in metrics.values()]
        live.step = done
        live.log_metric("round/loss_g", loss_g)
        live.log_metric("round/loss_d", loss_d)
        for m in metrics.values():
            live.log_metric(f"client/{int(m['identity'])}/loss_g", float(m["loss_g"]))
            live.log_metric(f"client/{int(m['identity'])}/memory_mib", float(m["memory_mib"]))
        if decision.variance is not None:
            live.log_metric("round/variance_loss_g", decision.variance)
        live.log_metric("round/go_on", int(decision.go_on))
        live.log_metric("round/clients", len(good))
        live.log_metric("perf/round_seconds", averaged - started)
        live.log_metric("perf/client_seconds_sum", sum(client_seconds))
        live.log_metric("perf/client_seconds_max", max(client_seconds))
        live.log_metric("perf/aggregate_seconds", averaged - sent)
        say(f"federated: round {done}: {len(good)} client(s), L_G {loss_g:.4f}, L_D "
            f"{loss_d:.4f}, {averaged - started:.1f} s; {'go on' if decision.go_on else 'stop'}"
            f" ({decision.reason})")
        params = {"model": to_dict(job.model), "loss": to_dict(job.loss),
                  "train": to_dict(job.train), "federated": to_dict(fed)}
        save_checkpoint(job.checkpoint_dir, done, training_state(
            done, fingerprint, params, models, {}, history=history), job.train.keep_checkpoints)
    say(f"federated: stopped after round {done}: {decision.reason}")
    save_reenactor(job.out_dir, model, job.prepared_dir)
    live.summary.update({"mode": "federated", "rounds": done, "stop": decision.reason,
                         "variance_loss_g": decision.variance,
                         "loss_g": history["loss_g"][-1] if history["loss_g"] else None,
                         "clients": history["clients"][-1] if history["clients"] else 0})
    live.end()
    return Trained(model, dict(live.summary))


def _global_content(models: Mapping[str, torch.nn.Module], recipe: str, round_: int) -> RecordDict:
    """A train message's content: the global G and D and the settings of this round."""
    return RecordDict({**{name: ArrayRecord(net.state_dict()) for name, net in models.items()},
                       "config": ConfigRecord({"round": round_, "recipe": recipe})})


# --- the client side -------------------------------------------------------------------------


class _Local(NamedTuple):
    """What a client builds once and reuses every round."""

    dataset: TrainingPairs
    identity: int
    nets: Networks
    runtime: object


_LOCAL: dict[tuple, _Local] = {}  # per process: a simulation actor may serve several clients


def local_round(content: RecordDict, prepared_dir: Path, lgan_dir: Path,
                partition: int) -> RecordDict:
    """One client's part of a round (Algorithm 1, lines 3-7): take the global G and D, train E
    steps on the frames of the `partition`-th training identity, return G, D and scalar
    metrics (nothing else leaves the client)."""
    started = time.perf_counter()
    config = content["config"]
    round_, recipe = int(config["round"]), str(config["recipe"])
    setup = _setup(Path(prepared_dir), Path(lgan_dir), partition, recipe)
    settings = json.loads(recipe)
    loss_config = parse_section("loss", settings["loss"])
    fed = parse_section("federated", settings["federated"])
    train = settings["train"]
    nets = setup.nets
    for name, net in (("model", nets.model), ("discriminator", nets.discriminator)):
        net.load_state_dict(content[name].to_torch_state_dict())
    # Algorithm 1 carries nothing but the weights between rounds: fresh Adam each round, at the
    # thesis's eta_g = eta_d = 1e-4 (Adam as central training; Algorithm 1 writes plain steps)
    nets = nets._replace(opt_g=adam(nets.model.parameters(), fed.lr, train["betas"]),
                         opt_d=adam(nets.discriminator.parameters(), fed.lr, train["betas"]))
    torch.manual_seed(int(np.random.SeedSequence([train["seed"], round_, setup.identity])
                          .generate_state(1)[0]))
    batches = iterate_pairs(setup.dataset, train["batch"], train["workers"],
                            train["seed"] + 1000 * setup.identity, setup.runtime.device,
                            start=(round_ - 1) * fed.local_steps)
    frames = setup.dataset.frames
    sum_g = sum_d = 0.0
    finite = FiniteWatch()  # read once, after the local steps: no host sync per step
    for step in range(fed.local_steps):
        values = train_step(nets, next(batches), loss_config, frames.part_sizes, frames.size,
                            setup.runtime, step, finite=finite)
        sum_d += values.pop("discriminator").double()  # float64 sums, as Python's floats were
        sum_g += sum(values.values()).double()
    finite.check()
    sum_g, sum_d = float(sum_g), float(sum_d)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return RecordDict({
        "model": ArrayRecord({k: v.cpu() for k, v in nets.model.state_dict().items()}),
        "discriminator": ArrayRecord({k: v.cpu() for k, v in
                                      nets.discriminator.state_dict().items()}),
        "metrics": MetricRecord({
            "loss_g": sum_g / fed.local_steps, "loss_d": sum_d / fed.local_steps,
            "examples": len(setup.dataset), "identity": setup.identity,
            "seconds": time.perf_counter() - started, "memory_mib": rss})})


def training_identities(frames: PreparedFrames) -> list[int]:
    """The clients: identities (rows of identities.parquet) with training frames, ascending."""
    return np.unique(frames.identity[frames.rows("train")]).tolist()


def _setup(prepared_dir: Path, lgan_dir: Path, partition: int, recipe: str) -> _Local:
    """The client's dataset and networks, built on its first round."""
    key = (prepared_dir, lgan_dir, partition, recipe)
    if key not in _LOCAL:
        # one entry per client: a simulation actor trains every client in turn, and rebuilding
        # a client's loader and networks each round cost as much as its training; entries of
        # other settings are not needed again
        for stale in [k for k in _LOCAL if (k[0], k[1], k[3]) != (prepared_dir, lgan_dir, recipe)]:
            del _LOCAL[stale]
        settings = json.loads(recipe)
        model_config = parse_section("model", settings["model"])
        loss_config = parse_section("loss", settings["loss"])
        train = settings["train"]
        runtime = start_runtime("train", train["device"], train["precision"])
        mode = model_config.landmark_mode
        lgan = load_landmark_generator(lgan_dir, prepared_dir) if mode == "lgan" else None
        identities = training_identities(PreparedFrames(prepared_dir))
        if not 0 <= partition < len(identities):
            raise GlgError(f"{prepared_dir}: client partition {partition} but "
                           f"{len(identities)} training identities")
        identity = identities[partition]
        dataset = TrainingPairs(prepared_dir, train["seed"], mode, lgan, identity=identity)
        model, discriminator = build_networks(model_config, dataset.frames.size, runtime.device,
                                              train["seed"])
        vgg = build_perceptual(loss_config, runtime.device, train["seed"])
        nets = Networks(model, discriminator, vgg, None, None)
        _LOCAL[key] = _Local(dataset, identity, nets, runtime)
    return _LOCAL[key]
