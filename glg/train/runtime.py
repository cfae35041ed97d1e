"""What both trainers share: device and precision, torchrun's processes, dvclive, step timing.

One code path from a laptop CPU to many GPUs: `device: auto` takes CUDA when present; on CUDA
matmuls and convolutions may use TF32 and the forward runs under bf16 autocast
(`precision: auto`); under `torchrun` each process takes its `LOCAL_RANK`'s GPU (or the CPU,
gloo) and joins one DDP group; rank 0 alone logs, validates and checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from glg.errors import GlgError
from glg.models import pick_device
from glg.store.checkpoint import digest
from glg.store.frames import SHARD_GLOB
from glg.store.prepared import PreparedFrames


class Runtime(NamedTuple):
    """Where and how one training process runs."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 autocast, or None for plain fp32
    rank: int  # this process among `world` (torchrun's RANK), 0 alone
    world: int

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, validates and checkpoints."""
        return self.rank == 0

    @property
    def precision(self) -> str:
        return "fp32" if self.autocast_dtype is None else "bf16"


class Trained(NamedTuple):
    """What a trainer returns: its trained network (in every process) and, from rank 0, the
    summary it wrote to metrics.json (empty elsewhere)."""

    model: nn.Module
    summary: dict


def start_runtime(section: str, device: str, precision: str = "fp32") -> Runtime:
    """The device (`auto`: CUDA when present) and precision (`auto`: bf16 on CUDA) of this
    process, joining torchrun's process group (nccl on CUDA, gloo on CPU) when there is one.
    `section` names the params section in errors."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = pick_device(device, f"{section}.device").type == "cuda"
    if cuda:
        torch.cuda.set_device(local)
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32: Ampere and newer, ~1e-3 relative
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    bf16 = precision == "bf16" or (precision == "auto" and cuda)
    return Runtime(torch.device("cuda", local) if cuda else torch.device("cpu"),
                   torch.bfloat16 if bf16 else None, rank, world)


def stop_runtime(runtime: Runtime) -> None:
    """Leave the process group, if this process joined one."""
    if runtime.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def autocast(runtime: Runtime) -> contextlib.AbstractContextManager:
    """bf16 autocast on the runtime's device, or nothing in fp32."""
    if runtime.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(runtime.device.type, dtype=runtime.autocast_dtype)


def distribute(module: nn.Module, runtime: Runtime) -> nn.Module:
    """`module` wrapped in DDP when there are several processes (gradients averaged over them;
    DDP also broadcasts rank 0's buffers, e.g. BatchNorm statistics, at each forward)."""
    if runtime.world == 1:
        return module
    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrapped(module: nn.Module) -> nn.Module:
    """The module inside DDP and `torch.compile` wrappers."""
    module = getattr(module, "_orig_mod", module)
    return module.module if isinstance(module, DistributedDataParallel) else module


def adam(parameters, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam as both trainers use it, fused into one kernel over all parameters (CPU and CUDA),
    which also lets `FiniteWatch` skip an update on the device."""
    return torch.optim.Adam(parameters, lr=lr, betas=tuple(betas), fused=True)


def check_finite(step: int, terms: dict[str, torch.Tensor]) -> None:
    """Stop with one line naming the step (1-based, as checkpoints count) and the loss term when
    a term is NaN or infinite; the update is not applied, the checkpoints stay as they were."""
    values = torch.stack([value.detach().float().reshape(()) for value in terms.values()])
    if not bool(torch.isfinite(values).all()):
        name, value = next((n, v) for n, v in zip(terms, values.tolist()) if not math.isfinite(v))
        raise GlgError(f"step {step + 1}: loss term {name} is {value}; stopped before applying "
                       "it, the last good checkpoint stays")


class FiniteWatch:
    """`check_finite` without a host sync per step: each step's loss terms are tested on the
    device, and from the first step with a NaN or infinite term on, every fused Adam update
    `step` makes is skipped there (the `found_inf` flag of fused optimizers, as
    `torch.amp.GradScaler` sets it). `check` reads the flags back (a log or checkpoint step)
    and stops with `check_finite`'s line, naming the first such step and term: what was raised
    is, as before, never applied and never checkpointed.
    """

    def __init__(self):
        self.failed: torch.Tensor | None = None  # () float32 on the device: 1 once a term failed
        self.watched: list[tuple[int, list[str], torch.Tensor]] = []  # (step, names, values)

    def watch(self, step: int, terms: dict[str, torch.Tensor]) -> None:
        """Test `terms` (scalars) of `step` (0-based) on their device; reads nothing back."""
        values = torch.stack([value.detach().float().reshape(()) for value in terms.values()])
        failed = (~torch.isfinite(values).all()).float()
        self.failed = failed if self.failed is None else torch.maximum(self.failed, failed)
        self.watched.append((step, list(terms), values))

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """`optimizer.step()`, skipped on the device once a watched term was not finite."""
        optimizer.found_inf = self.failed
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf

    def check(self) -> None:
        """Raise `check_finite`'s error for the first non-finite term watched since the last
        check; one host sync."""
        watched, self.watched = self.watched, []
        if self.failed is None or not bool(self.failed):
            return
        for step, names, values in watched:
            check_finite(step, dict(zip(names, values)))
        raise GlgError("a loss term was not finite before the last check")  # checked before


class StepTimer:
    """Wall seconds per phase of a step (`with timer("forward"): ...`), summed until `take`.

    With `sync` (CUDA) each phase waits for the GPU, so the seconds are the phases' own; the
    trainers leave it off, where a sync would only slow the GPU down.
    """

    def __init__(self, sync: bool = False):
        self.sync, self.seconds = sync, defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        if self.sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if self.sync:
            torch.cuda.synchronize()
        self.seconds[phase] += time.perf_counter() - start

    def take(self) -> dict[str, float]:
        """The sums so far, and start again."""
        seconds, self.seconds = dict(self.seconds), defaultdict(float)
        return seconds


def code_digest() -> str:
    """A digest of glg's source files: weights from other code are not resumed (DVC re-runs a
    training stage when its code changes, and the result must be what the new code trains)."""
    package = Path(__file__).resolve().parents[1]
    return digest((str(p.relative_to(package)), np.frombuffer(p.read_bytes(), np.uint8))
                  for p in sorted(package.rglob("*.py")))


def prepared_digest(frames: PreparedFrames, pixels: bool = False) -> str:
    """A digest of what training reads from the prepared data: annotations, splits, identities
    and part sizes (all the landmark GAN reads), and with `pixels` the JPEG bytes (the
    reenactor: a change of `prepare.jpeg_quality` alone must not resume the old run). Hashing
    the shards reads them once: seconds for VoxCeleb1's."""
    arrays = [("landmarks", frames.landmarks), ("pose", frames.pose), ("aus", frames.aus),
              ("identity", frames.identity), ("clip", frames.clip), ("frame", frames.frame),
              ("split", frames.split), ("mean", frames.mean), ("std", frames.std),
              ("parts", np.array(frames.part_sizes))]
    if pixels:
        jpegs = hashlib.sha256()
        for shard in sorted(frames.store.dir.glob(SHARD_GLOB)):
            with shard.open("rb") as file:
                jpegs.update(hashlib.file_digest(file, "sha256").digest())
        arrays.append(("jpegs", np.frombuffer(jpegs.digest(), np.uint8)))
    return digest(arrays)


# --- dvclive ---------------------------------------------------------------------------------


def open_live(metrics_dir: Path, resume_step: int | None):
    """dvclive writing into `metrics_dir`, with no dvc.yaml and no experiment of its own (the
    plots are declared in the repository's dvc.yaml). Fresh (`resume_step` None), it starts
    empty; resuming at step k, what the interrupted run logged after step k is cut first, so
    the curves go on without doubled steps."""
    from dvclive import Live  # heavy (imports dvc); only the main process logs

    if resume_step is not None:
        _cut_history(Path(metrics_dir), resume_step)
    return Live(dir=str(metrics_dir), dvcyaml=None, save_dvc_exp=False,
                resume=resume_step is not None)


def _cut_history(metrics_dir: Path, step: int) -> None:
    """Drop metric rows and step-named images past `step` from a dvclive folder."""
    for table in (metrics_dir / "plots" / "metrics").rglob("*.tsv"):
        with open(table, newline="") as file:
            rows = list(csv.DictReader(file, delimiter="\t"))
            fields = list(rows[0]) if rows else None
        if fields is None:
            continue
        with open(table, "w", newline="") as file:
            writer = csv.DictWriter(file, fields, delimiter="\t", lineterminator=os.linesep)
            writer.writeheader()
            writer.writerows(r for r in rows if int(r["step"]) <= step)
    for image in (metrics_dir / "plots" / "images").rglob("*.png"):
        if image.stem.isdigit() and int(image.stem) > step:
            image.unlink()
