"""Loader and prepare-stage figures (issues 4 and 13): pairs/s with a DataLoader at 1, 2 (and,
on a machine with 16 cores, 16) workers, to float batches on the training device (the GPU where
there is one) and as the workers hand them over (uint8, before the main process converts them),
the main process's own ceiling on the CPU, the time per pair of each piece, the JPEG decode on
the training device, prepare's wall time and peak memory, and the prepared store's size.

    python benchmarks/bench_loader.py [--frames 75] [--batches 30]

Builds its data in a temporary folder: 6 identities x 3 clips x `--frames` frames of 256 px
JPEGs (the demo's shape). Every figure is printed with a reference measured in the same run:
the loader against the single-process rate, memory against prepare on a quarter of the frames,
the prepared store against the frame store it came from.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _prepare_data import write_dataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import peak_rss_mib  # noqa: E402

from glg.data import TrainingPairs, _chw, decode_pair, iterate_pairs  # noqa: E402
from glg.face.heatmap import draw_heatmap  # noqa: E402
from glg.face.landmark_transfer import transfer_landmarks  # noqa: E402
from glg.face.parts import crop_part, part_centres  # noqa: E402


def timed_prepare(root: Path, frames_per_clip: int) -> tuple[float, float, int]:
    """(wall s, peak RSS MiB, frames) of the prepare stage in a fresh process on a new
    demo-shaped set (6 identities x 3 clips of 256 px JPEG frames)."""
    frames, annotations = write_dataset(root, identities=6, clips=3, frames=frames_per_clip,
                                        side=256, photo=True)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"prepare": {"unseen_identities": 2}}))
    peak, wall = peak_rss_mib([sys.executable, "-m", "stages.prepare", "--frames", str(frames),
                               "--annotations", str(annotations), "--out",
                               str(root / "prepared"), "--params", str(params)])
    return wall, peak, 6 * 3 * frames_per_clip


def per_piece(dataset: TrainingPairs, n: int = 320) -> dict[str, float]:
    """Mean ms per pair of each piece of making a pair, on the dataset's own frames."""
    f = dataset.frames
    path = f.dir / "_bench_heatmaps.npy"  # what storing heatmaps would read instead
    np.lib.format.open_memmap(path, "w+", np.uint8, (len(f), 224, 224)).flush()
    stored_heatmaps = np.load(path, mmap_mode="r")
    raw = copy.copy(dataset)
    raw.raw = True
    raw[0]  # warm up: memmaps opened, spline bases built
    items = [i % len(dataset) for i in range(n)]
    rows = dataset.rows[items]
    times: dict[str, float] = {}

    def clock(name, fn, over=rows):
        started = time.perf_counter()
        for r in over:
            fn(int(r))
        times[name] = (time.perf_counter() - started) / n * 1e3

    clock("2 frames: read, JPEG decode, CHW uint8 copy", lambda r: (_chw(f.image(r)),
                                                                    _chw(f.image(r))))
    clock("heatmap: B-spline, drawn", lambda r: draw_heatmap(f.landmarks[r], 224, as_uint8=True))
    clock("heatmap: stored, memmap read (alternative)", lambda r: stored_heatmaps[r].copy())
    heat = draw_heatmap(f.landmarks[0], 224, as_uint8=True)
    decoded = {int(r): f.image(int(r)) for r in set(rows.tolist())}
    clock("8 part crops", lambda r: [crop_part(x, c, h, w) for x in (decoded[r], heat)
                                     for c, (h, w) in zip(part_centres(f.landmarks[r]),
                                                          f.part_sizes)])
    i = f.identity
    clock("LSt transfer", lambda r: transfer_landmarks(f.landmarks[r], f.mean[i[r]], f.std[i[r]],
                                                         f.mean[0], f.std[0]))
    clock("whole uint8 pair (what a worker makes)", lambda k: raw[k], items)
    return times


def loader_rate(dataset: TrainingPairs, workers: int, batches: int, how: str = "workers",
                device: str | None = None, batch_size: int = 32) -> float:
    """Pairs/s over `batches` batches of `batch_size` after two warm-up batches: through
    `iterate_pairs` with the JPEGs decoded in the workers ("workers") or on `device` in the
    main process ("device"), a plain DataLoader of float pairs ("float"), or of uint8 pairs
    left undecoded ("uint8", what the training step would convert on the GPU)."""
    if how in ("workers", "device"):
        it = iterate_pairs(dataset, batch_size, workers, seed=0, device=device, decode=how)
    else:
        if how == "uint8":
            dataset = copy.copy(dataset)
            dataset.raw = True
        it = iter(DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                             generator=torch.Generator().manual_seed(0), drop_last=True))
    for _ in range(2):
        next(it)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(it)
    if device == "cuda":
        torch.cuda.synchronize()
    del batch
    MAIN_CPU_MS[how, workers] = (time.process_time() - cpu) / batches * 1e3
    return batch_size * batches / (time.perf_counter() - started)


# CPU ms the main process spent a batch (all its threads) in the last `loader_rate` run of each
# (how, workers): it takes every batch, so 32 / this bounds the rate whatever the workers.
MAIN_CPU_MS: dict[tuple[str, int], float] = {}


def decode_ms(dataset: TrainingPairs, threads: int, n: int = 8) -> float:
    """Mean ms the main process takes to turn one uint8 batch of 32 into floats on the CPU with
    `threads` torch threads."""
    raw = copy.copy(dataset)
    raw.raw = True
    batches = [default_collate([raw[(j * 32 + k) % len(raw)] for k in range(32)])
               for j in range(n)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    decode_pair(batches[0])
    started = time.perf_counter()
    for batch in batches:
        decode_pair(batch)
    torch.set_num_threads(before)
    return (time.perf_counter() - started) / n * 1e3


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=75, help="frames per clip (demo: 75)")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per loader")
    args = parser.parse_args()
    cores = torch.get_num_threads()
    torch.set_num_threads(1)  # the main process: its workers have the other cores
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "half").mkdir()
        (tmp / "full").mkdir()
        wall_half, peak_half, n_half = timed_prepare(tmp / "half", args.frames // 4)
        wall, peak, n = timed_prepare(tmp / "full", args.frames)
        print(f"prepare: {n} frames in {wall:.2f} s ({n / wall:.0f} frames/s), peak RSS "
              f"{peak:.0f} MiB; on {n_half} frames {wall_half:.2f} s, {peak_half:.0f} MiB "
              f"-> memory ratio {peak / peak_half:.2f} for {n / n_half:.1f}x the frames")
        stored, prepared = folder_mib(tmp / "full" / "frames"), folder_mib(
            tmp / "full" / "prepared")
        print(f"disk: prepared {prepared:.1f} MiB against the frame store's {stored:.1f} MiB "
              f"-> ratio {prepared / stored:.2f} (limit ~1.5)")

        dataset = TrainingPairs(tmp / "full" / "prepared", seed=0)
        for name, ms in per_piece(dataset).items():
            print(f"per pair: {name:45s} {ms:6.3f} ms")
        # Batches reach the training step through the main process: on the CPU it turns each
        # into floats (one thread here), which caps the rate however many workers feed it.
        one_thread = decode_ms(dataset, 1)
        ceiling = 32e3 / one_thread
        print(f"main process: a batch to float on the CPU {one_thread:.1f} ms with 1 torch "
              f"thread, {decode_ms(dataset, cores):.1f} ms with {cores} (the training default)")
        device = "cuda" if torch.cuda.is_available() else None
        where = "the GPU" if device else "the CPU, in the main process"
        batches = min(args.batches, len(dataset) // 32 - 2)
        single = loader_rate(dataset, 0, batches, device=device)
        print(f"loader: batch 32 to float on {where}; single process {single:.0f} pairs/s (the "
              f"reference); the main process's own ceiling on the CPU {ceiling:.0f} pairs/s")
        workers = [1, 2] + ([16] if (os.cpu_count() or 1) >= 16 else [])
        rates = {w: loader_rate(dataset, w, batches, device=device) for w in workers}
        handed = {w: loader_rate(dataset, w, batches, how="uint8") for w in workers}
        for w in workers:
            target = " (target >= 300)" if w == 2 else ""
            main_ms = MAIN_CPU_MS["workers", w]
            print(f"loader: {w:2d} workers {rates[w]:5.0f} pairs/s{target} -> "
                  f"{rates[w] / single:.2f}x the single process; the main process's CPU "
                  f"{main_ms:.1f} ms a batch, so at most {32e3 / main_ms:.0f} pairs/s with any "
                  f"number of workers; the workers' uint8 batches alone {handed[w]:5.0f} pairs/s "
                  f"({handed[w] / handed[1]:.2f}x 1 worker's, main process "
                  f"{MAIN_CPU_MS['uint8', w]:.1f} ms a batch)")
        plain = loader_rate(dataset, 2, batches, how="float")
        print(f"loader: 2 workers handing over float32 {plain:.0f} pairs/s -> uint8 hand-over "
              f"{rates[2] / plain:.2f}x")
        on_device = loader_rate(dataset, 2, batches, how="device", device=device or "cpu")
        print(f"loader: 2 workers handing over JPEG bytes, decoded by torchvision on "
              f"{device or 'cpu'} {on_device:.0f} pairs/s -> {on_device / rates[2]:.2f}x "
              f"decoding in the workers")


if __name__ == "__main__":
    main()
