"""Speed, size and memory of the glg networks, at the paper's 224 x 224.

Prints, for each variant of the paper: forward+backward seconds per sample on this machine and
the ratio to torchvision's ResNet-34 classifier timed the same way just before and just after
it (so figures from a loaded or a faster machine stay comparable); parameters per module; and
the memory of one forward+backward at batch 32: parameters, the activations autograd saves for
the backward (counted exactly, each storage once), and as a cross-check the peak RSS growth of a
fresh process on CPU (or `max_memory_allocated` on CUDA, where the step runs in bf16 autocast).

    python benchmarks/bench_models.py                 # CPU, a few iterations at batch 2
    python benchmarks/bench_models.py --device cuda   # the same on a GPU, bf16 autocast
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _batches import random_pairs  # noqa: E402

from glg.config import ModelConfig  # noqa: E402
from glg.config.variants import variant_config  # noqa: E402
from glg.data import Pair  # noqa: E402
from glg.models import build_discriminator, build_model, parameter_counts  # noqa: E402
from glg.train import losses  # noqa: E402

SIZE = 224  # Sec III-A
IDENTITIES = 1251  # identity indices of the random batches: VoxCeleb1's count (Sec IV-A)
# Part crop sizes (h, w) at 224: the paper takes the dataset's mean part size (Sec III-B); these
# are typical of aligned 224 crops, for timing only (the real ones come from parts.json).
PART_SIZES = [(32, 48), (32, 48), (56, 48), (48, 80)]
TIMED_VARIANTS = ("ViT", "ResNet", "ViT+Style", "ViT+LGAN+Style", "Style")
GIB = 2.0**30


def random_batch(batch: int, device: str) -> Pair:
    return random_pairs(batch, SIZE, PART_SIZES, identities=IDENTITIES, device=device)


def step(model: torch.nn.Module, batch: Pair, device: str) -> None:
    """One forward+backward of the re-enactor on the image and parts L1."""
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        out = model(batch)
        loss = losses.l1(out.image.float(), batch.driving)
        loss = loss + sum(p.float().mean() for p in out.parts)
    loss.backward()
    model.zero_grad(set_to_none=True)


def reference_step(model: torch.nn.Module, batch: Pair, device: str) -> None:
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = model(batch.driving).float().mean()
    loss.backward()
    model.zero_grad(set_to_none=True)


def seconds_per_sample(fn, model, batch, device: str, iterations: int,
                       warm_up: bool = True) -> float:
    if warm_up:
        fn(model, batch, device)  # kernel selection, allocator
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        fn(model, batch, device)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (iterations * len(batch.source))


def saved_activation_bytes(model: torch.nn.Module, batch: Pair, device: str) -> int:
    """Bytes autograd keeps for the backward of one step, each storage once, parameters excluded."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(model, batch, device)
    return sum(storages.values())


def memory_child(variant: str, batch_size: int, device: str) -> dict:
    """In a fresh process: parameter bytes, saved activations, and one step's peak growth."""
    batch = random_batch(batch_size, device)
    model = build_model(variant_config(variant), size=SIZE).to(device)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(model, batch, device)
        peak = torch.cuda.max_memory_allocated() - before
    else:
        before = psutil.Process().memory_info().rss  # now, not the high-water mark of the build
        step(model, batch, device)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    activations = saved_activation_bytes(model, batch, device)
    return {"parameters": parameters, "activations": activations, "step_peak": peak}


def measure_memory(variant: str, batch_size: int, device: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", variant, "--batch",
                          str(batch_size), "--device", device],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timings(args: argparse.Namespace) -> None:
    print(f"device {args.device}, {torch.get_num_threads()} threads, {SIZE}x{SIZE}, "
          f"timing batch {args.batch} x {args.iterations} iterations after one warm-up")
    batch = random_batch(args.batch, args.device)
    reference = torchvision.models.resnet34(weights=None).to(args.device)
    reference_step(reference, batch, args.device)  # warm-up

    def ref() -> float:  # timed right around each variant: the machine's load drifts
        return seconds_per_sample(reference_step, reference, batch, args.device, 1, warm_up=False)

    print("reference: torchvision ResNet-34 classifier, fwd+bwd, timed before and after each")
    print(f"\n{'variant':<16}{'ms/sample':>10}{'ref ms':>8}{'x ref':>7}   parameters (M)")
    for name in TIMED_VARIANTS:
        model = build_model(variant_config(name), size=SIZE).to(args.device)
        before = ref()
        seconds = seconds_per_sample(step, model, batch, args.device, args.iterations)
        reference_seconds = (before + ref()) / 2
        counts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in parameter_counts(model).items())
        print(f"{name:<16}{seconds * 1e3:10.0f}{reference_seconds * 1e3:8.0f}"
              f"{seconds / reference_seconds:7.2f}   {counts}")
        del model

    config = ModelConfig()
    vit = build_model(variant_config("ViT"), size=SIZE).flow_estimator.features
    resnet = build_model(variant_config("ResNet"), size=SIZE).flow_estimator
    print(f"\nthree ViT layers {sum(p.numel() for p in vit.blocks.parameters()) / 1e6:.2f}M "
          f"(paper 19M); ResNet-34 trunk "
          f"{sum(p.numel() for p in resnet.features.trunk.parameters()) / 1e6:.2f}M (paper 21M)")
    discriminator = sum(p.numel() for p in build_discriminator(config).parameters())
    vgg = sum(p.numel() for p in losses.random_vgg19_features(0).parameters())
    print(f"patch discriminator {discriminator / 1e6:.2f}M; VGG19 perceptual features "
          f"{vgg / 1e6:.2f}M (frozen)")


def memory(args: argparse.Namespace) -> None:
    how = "bf16 autocast, CUDA allocator" if args.device == "cuda" else "fp32, peak RSS growth"
    print(f"\nmemory of one fwd+bwd of {args.memory_variant} (gradients add the parameters again)")
    for batch_size in (max(args.memory_batch // 8, 1), args.memory_batch):
        m = measure_memory(args.memory_variant, batch_size, args.device)
        print(f"  batch {batch_size:>3}: parameters {m['parameters'] / GIB:.3f} GiB + saved "
              f"activations {m['activations'] / GIB:.2f} GiB "
              f"({m['activations'] / batch_size / 2**20:.0f} MiB/sample) = "
              f"{(m['parameters'] + m['activations']) / GIB:.2f} GiB; "
              f"step peak ({how}) {m['step_peak'] / GIB:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2, help="batch for the timings")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--memory-batch", type=int, default=32)
    parser.add_argument("--memory-variant", default="ViT+LGAN+Style")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batch, args.device)))
        return
    if not args.skip_timing:
        timings(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
