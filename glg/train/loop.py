"""The skeleton both trainers share: fingerprint, load the checkpoint, restore, open dvclive,
loop, summary. `open_run` does the first four and the returned `TrainingRun` counts the steps,
saves checkpoints and times the run; each trainer's step, logging and validation are its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from glg.store.checkpoint import load_checkpoint, restore, save_checkpoint, training_state
from glg.train.runtime import Runtime, open_live


def trajectory(config: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The params a run's weights depend on (an allow-list): a checkpoint written under other
    values of the rest (steps, intervals, device, ...) is resumed, so more steps continue a run."""
    return {key: getattr(config, key) for key in keys}


@dataclass
class TrainingRun:
    """One run of a trainer, fresh or resumed: where it starts, what it carries across resumes
    (`history`) and its dvclive logger (None but on rank 0)."""

    name: str  # the stage, in messages
    checkpoint_dir: Path
    fingerprint: Mapping[str, Any]
    params: Mapping[str, Any]  # saved with each checkpoint, as plain data
    models: Mapping[str, nn.Module]
    optimizers: Mapping[str, torch.optim.Optimizer]
    total: int  # the step the run ends at
    keep: int  # newest checkpoints kept
    start: int  # the first step this process takes
    resumed: dict | None  # the checkpoint resumed from
    history: dict  # plain data carried across resumes: scores, seconds trained
    live: Any  # dvclive.Live, or None on a rank other than 0
    started: float = 0.0
    seconds_before: float = 0.0  # spent by the runs this one resumes

    def steps(self) -> range:
        """The steps left; the run's clock starts here."""
        self.started, self.seconds_before = time.perf_counter(), self.history.get(
            "train_seconds", 0.0)
        return range(self.start, self.total)

    def due(self, done: int, every: int) -> bool:
        """Whether a thing done every `every` steps falls after step `done` (or it is the last)."""
        return done % every == 0 or done == self.total

    def save(self, done: int, **loader: Any) -> None:
        """The checkpoint after `done` steps, with the seconds trained so far and `loader` state."""
        self.history["train_seconds"] = self.seconds_before + time.perf_counter() - self.started
        save_checkpoint(self.checkpoint_dir, done, training_state(
            done, self.fingerprint, self.params, self.models, self.optimizers, loader=loader,
            history=self.history), self.keep)

    def samples_per_s(self, done: int, samples_per_step: int) -> float | None:
        """Samples per second over every run that made these weights."""
        seconds = self.history.get("train_seconds", 0.0)
        return done * samples_per_step / seconds if seconds else None


def open_run(name: str, checkpoint_dir: Path, metrics_dir: Path, fingerprint: Mapping[str, Any],
             params: Mapping[str, Any], models: Mapping[str, nn.Module],
             optimizers: Mapping[str, torch.optim.Optimizer], total: int, keep: int,
             runtime: Runtime, say: Callable[[str], None]) -> TrainingRun:
    """Resume the newest checkpoint written under `fingerprint` (restoring `models` and
    `optimizers`) or start afresh, and open dvclive where the run left it (rank 0)."""
    if runtime.world > 1 and not runtime.main:
        torch.distributed.barrier()  # rank 0 first: it may move checkpoints of other params
    state = load_checkpoint(checkpoint_dir, fingerprint, say, remove_stale=runtime.main,
                            until=total)
    if runtime.world > 1 and runtime.main:
        torch.distributed.barrier()
    start, history = 0, {}
    if state is not None:
        restore(state, models, optimizers)
        start, history = state["step"], state["history"]
        say(f"{name}: resuming at step {start} of {total}")
    live = open_live(metrics_dir, start if state is not None else None) if runtime.main else None
    return TrainingRun(name, checkpoint_dir, fingerprint, params, models, optimizers, total, keep,
                       start, state, history, live)
