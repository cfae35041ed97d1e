"""Loader and prepare-stage figures (issue 4): pairs/s with a DataLoader, the time per pair of
each piece, and prepare's wall time and peak memory on a demo-sized dataset.

    python benchmarks/bench_loader.py [--frames 75] [--batches 30]

Builds its data in a temporary folder: 6 identities x 3 clips x `--frames` frames of 256 px
JPEGs (the demo's shape). Every rate is printed with a reference measured in the same run:
the loader against the single-process rate, memory against prepare on a quarter of the frames.
"""

from __future__ import annotations

import argparse
import copy
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
from glg.heatmap import draw_heatmap  # noqa: E402
from glg.landmark_transfer import transfer_landmarks  # noqa: E402
from glg.parts import crop_part, part_centres  # noqa: E402


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

    clock("2 frames: memmap read, CHW uint8 copy", lambda r: (_chw(f.image(r)), _chw(f.image(r))))
    clock("heatmap: B-spline, drawn", lambda r: draw_heatmap(f.landmarks[r], 224, as_uint8=True))
    clock("heatmap: stored, memmap read (alternative)", lambda r: stored_heatmaps[r].copy())
    heat = draw_heatmap(f.landmarks[0], 224, as_uint8=True)
    clock("8 part crops", lambda r: [crop_part(x, c, h, w) for x in (f.image(r), heat)
                                     for c, (h, w) in zip(part_centres(f.landmarks[r]),
                                                          f.part_sizes)])
    i = f.identity
    clock("Eq. 3 transfer", lambda r: transfer_landmarks(f.landmarks[r], f.mean[i[r]], f.std[i[r]],
                                                         f.mean[0], f.std[0]))
    clock("whole uint8 pair (what a worker makes)", lambda k: raw[k], items)
    batches = [default_collate([raw[k] for k in items[j:j + 32]]) for j in range(0, n, 32)]
    clock("batch decode to float (main process)", lambda j: decode_pair(batches[j]),
          range(len(batches)))
    return times


def loader_rate(dataset: TrainingPairs, workers: int, batches: int, how: str = "iterate") -> float:
    """Pairs/s over `batches` batches of 32 after two warm-up batches: through `iterate_pairs`
    (uint8 from the workers, float in the main process), a plain DataLoader of float pairs
    ("float"), or of uint8 pairs left undecoded ("uint8", what a decode on the GPU would see)."""
    if how == "iterate":
        it = iterate_pairs(dataset, 32, workers, seed=0)
    else:
        if how == "uint8":
            dataset = copy.copy(dataset)
            dataset.raw = True
        it = iter(DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers,
                             generator=torch.Generator().manual_seed(0), drop_last=True))
    for _ in range(2):
        next(it)
    started = time.perf_counter()
    for _ in range(batches):
        next(it)
    return 32 * batches / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=75, help="frames per clip (demo: 75)")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per loader")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "half").mkdir()
        (tmp / "full").mkdir()
        wall_half, peak_half, n_half = timed_prepare(tmp / "half", args.frames // 4)
        wall, peak, n = timed_prepare(tmp / "full", args.frames)
        print(f"prepare: {n} frames in {wall:.2f} s ({n / wall:.0f} frames/s), peak RSS "
              f"{peak:.0f} MiB; on {n_half} frames {wall_half:.2f} s, {peak_half:.0f} MiB "
              f"-> memory ratio {peak / peak_half:.2f} for {n / n_half:.1f}x the frames")

        dataset = TrainingPairs(tmp / "full" / "prepared", seed=0)
        for name, ms in per_piece(dataset).items():
            print(f"per pair: {name:45s} {ms:6.3f} ms")
        batches = min(args.batches, len(dataset) // 32 - 2)
        single = loader_rate(dataset, 0, batches)
        two = loader_rate(dataset, 2, batches)
        plain = loader_rate(dataset, 2, batches, how="float")
        undecoded = loader_rate(dataset, 2, batches, how="uint8")
        print(f"loader: batch 32, 2 workers {two:.0f} pairs/s (target >= 300); single process "
              f"{single:.0f} pairs/s -> ratio {two / single:.2f}; 2 workers handing over float32 "
              f"{plain:.0f} pairs/s -> uint8 hand-over {two / plain:.2f}x; uint8 batches left "
              f"for a GPU to decode {undecoded:.0f} pairs/s ({undecoded / two:.2f}x)")

if __name__ == "__main__":
    main()
