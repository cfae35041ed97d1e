"""Training-loop figures (issue 9): samples/s of the reenactment trainer's step at the demo
settings and at batch 8, the step broken into loader wait, forward, backward and optimiser, the
loop's overhead, and peak memory; on CUDA, samples/s at batch 32 in bf16 and the GPU's busy share.

    python benchmarks/bench_train.py [--steps 6] [--device auto|cpu|cuda] [--size 224] [--compile]

`--device auto` measures the CPU and, where there is one, the GPU; `cpu` or `cuda` one of them.
`--size` prepares the data at another size than params.yaml's (the paper's: 224); `--compile`
runs G through `torch.compile`, as `train.compile: true` does.

Builds its data in a temporary folder (6 identities x 3 clips x 40 frames of 256 px JPEGs,
prepared at params.yaml's `prepare.size`) and runs `glg.train.reenact_step.train_step` on batches of
`glg.data.iterate_pairs`, exactly as the trainer does, with params.yaml's `model`, `loss` and
`train`. Every figure comes with a reference measured in the same run: the loop against the
forward and backward of G and D alone on one fixed batch (loop overhead = whole step / that),
memory at batch 8 against the same process before its first step. Each figure is the median
over the timed steps: on a shared machine, also read the load average printed first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from _prepare_data import write_dataset  # noqa: E402

from glg import losses  # noqa: E402
from glg.config import PrepareConfig, load_params  # noqa: E402
from glg.data import TrainingPairs, iterate_pairs  # noqa: E402
from glg.models import build_discriminator, build_model  # noqa: E402
from glg.prepare import prepare  # noqa: E402
from glg.train.reenact_step import Networks, generator_terms, train_step  # noqa: E402
from glg.train.runtime import Runtime, StepTimer, adam, autocast, start_runtime  # noqa: E402

PHASES = ("loader", "forward", "backward", "optimizer")


def demo_data(root: Path, size: int) -> Path:
    """A demo-shaped prepared dataset at `size` px (no LGAN needed: `driving` landmarks)."""
    frames, annotations = write_dataset(root, identities=6, clips=3, frames=40, side=256,
                                        photo=True)
    prepare(frames, annotations, root / "prepared",
            PrepareConfig(size=size, unseen_identities=2, test_clips=4), seed=0)
    return root / "prepared"


def networks(size: int, runtime: Runtime, compiled: bool = False) -> Networks:
    model_config, train = load_params("model"), load_params("train")
    torch.manual_seed(0)
    model = build_model(model_config, size=size).to(runtime.device)
    discriminator = build_discriminator(model_config).to(runtime.device)
    vgg = losses.build_vgg19("random", 0).to(runtime.device)  # what runs offline; same cost
    if runtime.device.type == "cuda":
        discriminator = discriminator.to(memory_format=torch.channels_last)
        vgg = vgg.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model  # as the trainer does
    return Networks(forward, discriminator, vgg, adam(model.parameters(), train.lr, train.betas),
                    adam(discriminator.parameters(), train.lr, train.betas))


def loop(prepared: Path, runtime: Runtime, batch: int, workers: int, steps: int,
         compiled: bool = False) -> dict:
    """Median seconds per step of each phase over `steps` trainer steps (after 2 warm-up steps),
    of the whole step, and of the forward+backward of G and D alone on the step's batch, timed
    right after each step: the machine's load drifts, so the two are measured side by side."""
    dataset = TrainingPairs(prepared, seed=0)  # landmark mode does not change the networks
    size, part_sizes = int(dataset.frames.image(0).shape[0]), dataset.frames.part_sizes
    nets = networks(size, runtime, compiled)
    loss = load_params("loss")
    cuda = runtime.device.type == "cuda"
    timer = StepTimer(sync=cuda)
    batches = iterate_pairs(dataset, batch, workers, seed=0, device=runtime.device)

    def forward_backward(pairs) -> None:  # G and D alone: no loader, no optimiser, no checks
        with autocast(runtime):
            out = nets.model(pairs)
            judged = nets.discriminator(torch.cat([pairs.driving, out.image.detach()]))
            real, fake = judged.logits.float().chunk(2)
        losses.discriminator_loss(real, fake).backward()
        nets.discriminator.requires_grad_(False)  # as in the trainer's G update
        with autocast(runtime):
            with torch.no_grad():
                real = nets.discriminator(pairs.driving)
            terms = generator_terms(out, pairs, nets.discriminator(out.image), real, nets.vgg,
                                    part_sizes, size)
        losses.weighted_sum(terms, loss).backward()
        nets.discriminator.requires_grad_(True)

    def timed(work) -> float:
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for step in range(2):
        train_step(nets, next(batches), loss, part_sizes, size, runtime, step)
    timer.take()
    rows = []
    for step in range(steps):
        held = {}

        def one_step() -> None:
            with timer("loader"):
                held["pairs"] = next(batches)
            train_step(nets, held["pairs"], loss, part_sizes, size, runtime, step, timer)

        whole = timed(one_step)
        rows.append({"whole": whole, **timer.take(),
                     "alone": timed(lambda: forward_backward(held["pairs"]))})
    return {"batch": batch, **{k: statistics.median(r[k] for r in rows) for k in rows[0]}}


def busy_share(prepared: Path, runtime: Runtime, batch: int, workers: int, steps: int,
               compiled: bool = False) -> float:
    """Share of the wall time over `steps` trainer steps that CUDA kernels ran (profiler)."""
    from torch.profiler import ProfilerActivity, profile

    dataset = TrainingPairs(prepared, seed=0)
    size, part_sizes = int(dataset.frames.image(0).shape[0]), dataset.frames.part_sizes
    nets, loss = networks(size, runtime, compiled), load_params("loss")
    batches = iterate_pairs(dataset, batch, workers, seed=0, device=runtime.device)
    for step in range(3):
        train_step(nets, next(batches), loss, part_sizes, size, runtime, step)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as trace:
        started = time.perf_counter()
        for step in range(steps):
            train_step(nets, next(batches), loss, part_sizes, size, runtime, step)
        torch.cuda.synchronize()
        wall = time.perf_counter() - started
    kernels = [e for e in trace.events() if e.device_type.name == "CUDA"]
    spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)
    busy, end = 0.0, float("-inf")
    for a, b in spans:  # union of kernel intervals, in microseconds
        busy += max(0.0, b - max(a, end))
        end = max(end, b)
    return busy / 1e6 / wall


def peak_memory(batch: int) -> tuple[float, float]:
    """(RSS MiB before the first step, peak RSS MiB over the steps) of a fresh process
    training at `batch` on the CPU."""
    child = subprocess.Popen([sys.executable, __file__, "--memory-child", str(batch)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    process, peak, before = psutil.Process(child.pid), 0, None
    for line in iter(child.stdout.readline, ""):
        if line.startswith("ready"):
            before = process.memory_info().rss
            break
    while child.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [process, *process.children()]))
        except psutil.Error:
            pass
        time.sleep(0.01)
    return before / 2**20, peak / 2**20


def memory_child(batch: int) -> None:
    runtime = Runtime(torch.device("cpu"), None, 0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = demo_data(Path(tmp), load_params("prepare").size)
        dataset = TrainingPairs(prepared, seed=0)
        size, part_sizes = int(dataset.frames.image(0).shape[0]), dataset.frames.part_sizes
        nets, loss = networks(size, runtime), load_params("loss")
        batches = iterate_pairs(dataset, batch, 0, seed=0)
        print("ready", flush=True)
        for step in range(3):
            train_step(nets, next(batches), loss, part_sizes, size, runtime, step)


def report(name: str, m: dict, world: int = 1) -> None:
    phases = ", ".join(f"{k} {m[k] * 1e3:.0f}" for k in PHASES)
    print(f"{name}: {m['batch'] * world / m['whole']:.2f} samples/s; step {m['whole']:.2f} s "
          f"= {phases} ms (+{(m['whole'] - sum(m[k] for k in PHASES)) * 1e3:.0f} ms between); "
          f"loader wait {m['loader'] / m['whole']:.1%} of the step; reference G+D fwd+bwd "
          f"alone {m['alone']:.2f} s -> loop overhead {m['whole'] / m['alone']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--size", type=int, help="prepared size (default: params.yaml's)")
    parser.add_argument("--compile", action="store_true", help="torch.compile G (CUDA figures)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    train, size = load_params("train"), args.size or load_params("prepare").size
    cpu = start_runtime("train", "cpu", "fp32")
    print(f"{torch.get_num_threads()} threads, load average {psutil.getloadavg()[0]:.1f}; "
          f"{size} px, model {json.dumps(dataclasses.asdict(load_params('model')))[:80]}...")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = demo_data(Path(tmp), size)
        if args.device in ("auto", "cpu"):
            report(f"CPU demo (batch {train.batch}, {train.workers} workers)",
                   loop(prepared, cpu, train.batch, train.workers, args.steps))
            report(f"CPU batch 8 ({train.workers} workers)",
                   loop(prepared, cpu, 8, train.workers, args.steps))
            before, peak = peak_memory(8)
            print(f"CPU batch 8 peak RSS {peak:.0f} MiB (the same process before its first "
                  f"step: {before:.0f} MiB)")
        if args.device != "cpu" and torch.cuda.is_available():
            gpu, workers = start_runtime("train", "cuda", "bf16"), max(train.workers, 4)
            name = f"CUDA batch 32 bf16{', compiled' if args.compile else ''}"
            torch.cuda.reset_peak_memory_stats()
            report(name, loop(prepared, gpu, 32, workers, args.steps, args.compile))
            print(f"{name}: peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
            share = busy_share(prepared, gpu, 32, workers, args.steps, args.compile)
            print(f"{name}: GPU busy {share:.0%} of the wall time (goal >= 90%)")
        elif args.device == "cuda":
            print("no CUDA device: CUDA figures not measured")

if __name__ == "__main__":
    main()
