"""What the benchmarks share: the wall time, CPU time and peak memory of a process tree,
sampled every 10 ms (or as asked), for a command run in a fresh process."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import NamedTuple

import psutil

ROOT = Path(__file__).resolve().parents[1]


class Measured(NamedTuple):
    peak_mib: float  # peak of the summed RSS of the process and its descendants
    seconds: float  # wall
    cpu_seconds: float  # user + system of every process of the tree, each as last sampled
    own_cpu_seconds: float = 0.0  # of the process's main thread: no worker thread or process


class TreeSampler:
    """Samples another process and its descendants every `interval` s in a thread: peak summed
    RSS and each process's CPU time (a process living less than `interval` may be missed;
    sampling costs the sampling process ~0.1 CPU s a second at 10 ms)."""

    def __init__(self, pid: int, interval: float = 0.01):
        self.root, self.interval = psutil.Process(pid), interval
        self.peak, self.cpu, self.main_cpu = 0, {}, 0.0  # main_cpu: the root's main thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.perf_counter() - self.started

    def _run(self) -> None:
        base = {}  # CPU the processes alive at the first sample had already spent
        first = True
        while True:
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                tree = []
            rss = 0
            for p in tree:
                try:
                    with p.oneshot():
                        rss += p.memory_info().rss
                        cpu = _cpu(p)
                    base.setdefault(p.pid, cpu if first else 0.0)
                    self.cpu[p.pid] = cpu - base[p.pid]
                except psutil.Error:
                    pass
            try:  # the main thread's id is the process's
                main = next(t for t in self.root.threads() if t.id == self.root.pid)
                spent = main.user_time + main.system_time
                self.main_cpu = spent - base.setdefault("main", spent)
            except (psutil.Error, StopIteration):
                pass
            first = False
            self.peak = max(self.peak, rss)
            if self._stop.wait(self.interval):
                break

    def result(self) -> Measured:
        return Measured(self.peak / 2**20, self.seconds, sum(self.cpu.values()), self.main_cpu)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure(command: list[str]) -> Measured:
    """Run a command from the repository root, its output discarded, and measure it."""
    return measure_output(command)[0]


def measure_output(command: list[str], interval: float = 0.01) -> tuple[Measured, str]:
    """Run a command from the repository root and measure it, sampling every `interval` s;
    with its standard output."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    with TreeSampler(process.pid, interval) as sampler:
        out, _ = process.communicate()
    assert process.returncode == 0, command
    return sampler.result(), out


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """Run a command from the repository root; its peak RSS (process tree, sampled every 10 ms)
    in MiB and its wall seconds."""
    measured = measure(command)
    return measured.peak_mib, measured.seconds
