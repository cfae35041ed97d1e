"""What the benchmarks share: the peak memory of a command run in a fresh process."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """Run a command from the repository root; its peak RSS (process tree, sampled every 10 ms)
    in MiB and its wall seconds."""
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.01)
    assert process.returncode == 0, command
    return peak / 2**20, time.perf_counter() - started
