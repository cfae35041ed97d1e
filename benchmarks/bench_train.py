"""Training-loop figures: samples/s of the reenactment trainer's step at the demo
settings and at batch 8, the step broken into loader wait, forward, backward and optimiser, the
loop's overhead, and peak memory; on CUDA, samples/s at batch 32 in bf16 and the GPU's busy share.

    python benchmarks/bench_train.py [--steps 6] [--device auto|cpu|cuda] [--image-px 224]
                                     [--compile [default|reduce-overhead]]

`--device auto` measures the CPU and, where there is one, the GPU; `cpu` or `cuda` one of them.
`--image-px` prepares the data at another side than params.yaml's (the paper's: 224); `--compile`
runs G through `torch.compile`, as `train.compile: true` does (`reduce-overhead`: in that mode,
which replays CUDA graphs).

Builds its data in a temporary folder (6 identities x 3 clips x 40 frames of 256 px JPEGs,
prepared at params.yaml's `prepare.image_px`) and runs `glg.train.reenactor_step.train_step` on
batches of `glg.data.iterate_pairs`, exactly as the trainer does, with params.yaml's `model`,
`loss` and `train`. Every figure comes with a reference measured in the same run: the loop
against the forward and backward of G and D alone on one fixed batch (loop overhead = whole
step / that), memory at batch 8 against the same process before its first step. Each figure is
the median over the timed steps: on a shared machine, also read the load average printed first.
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

from glg.config import PARAMS_FILE, PrepareConfig, load_params  # noqa: E402
from glg.data import TrainingPairs, iterate_pairs  # noqa: E402
from glg.models import build_discriminator, build_model  # noqa: E402
from glg.prepare import prepare  # noqa: E402
from glg.train import losses  # noqa: E402
from glg.train.reenactor_step import Networks, generator_terms, train_step  # noqa: E402
from glg.train.runtime import (FiniteWatch, Runtime, StepTimer, adam, autocast,  # noqa: E402
                               start_runtime)

PHASES = ("loader", "forward", "backward", "optimizer")


def demo_data(root: Path, size: int) -> Path:
    """A demo-shaped prepared dataset at `size` px (no LGAN needed: `driving` landmarks)."""
    frames, annotations = write_dataset(root, identities=6, clips=3, frames=40, side=256,
                                        photo=True)
    prepare(frames, annotations, root / "prepared",
            PrepareConfig(image_px=size, unseen_identities=2, test_clips=4), seed=0)
    return root / "prepared"


def networks(size: int, runtime: Runtime, compile_mode: str | None = None,
             params: Path = PARAMS_FILE) -> Networks:
    """G, D, the VGG19 and both optimisers as the trainer builds them from `params`; G through
    `torch.compile(mode=compile_mode)` unless that is None."""
    model_config, train = load_params("model", params), load_params("train", params)
    torch.manual_seed(0)
    model = build_model(model_config, size=size).to(runtime.device)
    discriminator = build_discriminator(model_config).to(runtime.device)
    vgg = None  # none where loss.perceptual is 0, as the trainer does
    if load_params("loss", params).perceptual:
        vgg = losses.build_vgg19("random", 0).to(runtime.device)  # what runs offline; same cost
    if runtime.device.type == "cuda":
        discriminator = discriminator.to(memory_format=torch.channels_last)
        if vgg is not None:
            vgg = vgg.to(memory_format=torch.channels_last)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model
    return Networks(forward, discriminator, vgg, adam(model.parameters(), train.lr, train.betas),
                    adam(discriminator.parameters(), train.lr, train.betas))


class TrainerSteps:
    """`steps(batch, step)`: one trainer step as the trainer takes it, its `FiniteWatch` read
    only by `check()`; in `reduce-overhead` mode a new CUDA graph step is marked first."""

    def __init__(self, nets: Networks, loss, part_sizes, size: int, runtime: Runtime,
                 compile_mode: str | None):
        self.nets, self.loss, self.part_sizes, self.size = nets, loss, part_sizes, size
        self.runtime, self.compile_mode, self.finite = runtime, compile_mode, FiniteWatch()

    def __call__(self, batch, step: int, timer: StepTimer | None = None) -> None:
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        train_step(self.nets, batch, self.loss, self.part_sizes, self.size, self.runtime, step,
                   timer, self.finite)

    def check(self) -> None:
        self.finite.check()


def loop(prepared: Path, runtime: Runtime, batch: int, workers: int, steps: int,
         compile_mode: str | None = None) -> dict:
    """Median seconds per step of each phase over `steps` trainer steps (after 2 warm-up steps),
    of the whole step, and of the forward+backward of G and D alone on the step's batch, timed
    right after each step: the machine's load drifts, so the two are measured side by side."""
    dataset = TrainingPairs(prepared, seed=0)  # landmark mode does not change the networks
    size, part_sizes = int(dataset.frames.image(0).shape[0]), dataset.frames.part_sizes
    nets = networks(size, runtime, compile_mode)
    loss = load_params("loss")
    run = TrainerSteps(nets, loss, part_sizes, size, runtime, compile_mode)
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
                                    part_sizes, size, loss.warp > 0)
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
        run(next(batches), step)
    timer.take()
    rows = []
    for step in range(steps):
        held = {}

        def one_step() -> None:
            with timer("loader"):
                held["pairs"] = next(batches)
            run(held["pairs"], step, timer)

        whole = timed(one_step)
        rows.append({"whole": whole, **timer.take(),
                     "alone": timed(lambda: forward_backward(held["pairs"]))})
    run.check()
    return {"batch": batch, **{k: statistics.median(r[k] for r in rows) for k in rows[0]}}


def unsynced(prepared: Path, runtime: Runtime, batch: int, workers: int, steps: int,
             compile_mode: str | None = None,
             params: Path = PARAMS_FILE) -> tuple[float, float | None]:
    """(wall seconds per step, share of it that CUDA kernels ran or None on the CPU) over
    `steps` trainer steps after 3 warm-up steps, with no sync but the trainer's own: the
    seconds from one window, the share from a second one under the profiler."""
    dataset = TrainingPairs(prepared, seed=0)
    size, part_sizes = int(dataset.frames.image(0).shape[0]), dataset.frames.part_sizes
    nets = networks(size, runtime, compile_mode, params)
    run = TrainerSteps(nets, load_params("loss", params), part_sizes, size, runtime,
                       compile_mode)
    batches = iterate_pairs(dataset, batch, workers, seed=0, device=runtime.device)
    cuda = runtime.device.type == "cuda"

    def window(first: int) -> float:
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        for step in range(first, first + steps):
            run(next(batches), step)
        if cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / steps

    for step in range(3):
        run(next(batches), step)
    seconds = window(3)
    run.check()
    if not cuda:
        return seconds, None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as trace:
        wall = window(3 + steps) * steps
    run.check()
    kernels = [e for e in trace.events() if e.device_type.name == "CUDA"]
    spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)
    busy, end = 0.0, float("-inf")
    for a, b in spans:  # union of kernel intervals, in microseconds
        busy += max(0.0, b - max(a, end))
        end = max(end, b)
    return seconds, busy / 1e6 / wall


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
        prepared = demo_data(Path(tmp), load_params("prepare").image_px)
        dataset = TrainingPairs(prepared, seed=0)
        size, part_sizes = int(dataset.frames.image(0).shape[0]), dataset.frames.part_sizes
        nets, loss = networks(size, runtime), load_params("loss")
        run = TrainerSteps(nets, loss, part_sizes, size, runtime, None)
        batches = iterate_pairs(dataset, batch, 0, seed=0)
        print("ready", flush=True)
        for step in range(3):
            run(next(batches), step)
        run.check()


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
    parser.add_argument("--image-px", type=int,
                        help="prepared side, px (default: params.yaml's prepare.image_px)")
    parser.add_argument("--compile", nargs="?", const="default",
                        choices=("default", "reduce-overhead"),
                        help="torch.compile G in this mode (CUDA figures)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    train, size = load_params("train"), args.image_px or load_params("prepare").image_px
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
            name = f"CUDA batch 32 bf16{f', compiled ({args.compile})' if args.compile else ''}"
            torch.cuda.reset_peak_memory_stats()
            report(name, loop(prepared, gpu, 32, workers, args.steps, args.compile))
            print(f"{name}: peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
            seconds, share = unsynced(prepared, gpu, 32, workers, args.steps, args.compile)
            print(f"{name}: without the phase syncs {32 / seconds:.1f} samples/s; GPU busy "
                  f"{share:.0%} of the wall time (goal >= 90%)")
        elif args.device == "cuda":
            print("no CUDA device: CUDA figures not measured")

if __name__ == "__main__":
    main()
