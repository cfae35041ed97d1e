"""Speed and memory of `annotate` (dlib backend) on 256 px frames: demo clips and real clips.

For each dataset (the demo clips from `synthesize` with params.yaml's settings, and the real
clips in ../shared/real-clips when present, both extracted to a temporary folder first) it
measures, in the same run:
  naive     detect + predict every frame, one process (the reference)
  tracked   the backend, one process (tracking, re-detection every `redetect_every` frames)
  parallel  the whole `annotate` run with `annotate.workers` processes (what the stage does)
and prints frames/s, the ratio to the naive loop, and the peak memory (PSS, so pages the workers
share with the parent count once, of the process and its workers, sampled every 20 ms;
"parallel" runs the stage as its own process, so its time includes start-up and model loading,
and its memory excludes this script's).
frames/CPU-s (frames per CPU second, all processes) does not depend on what else the machine
runs; on an idle machine frames/s approaches it times the number of workers.
Target: parallel >= 100 frames/s on 2 cores.

    python benchmarks/bench_annotate.py            # both datasets
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glg.annotate.dlib import DlibBackend  # noqa: E402
from glg.config import load_params  # noqa: E402
from glg.store.frames import iter_clip, read_manifest  # noqa: E402

REAL_CLIPS = ROOT.parent / "shared" / "real-clips"


class PeakMemory:
    """Peak summed PSS of this process and its children, sampled in a thread."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        me = psutil.Process(os.getpid())
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_full_info().pss  # shared pages counted once
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cpu_seconds() -> float:
    """CPU time of this process and of every finished child (and their waited-for workers)."""
    me, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def clips(frames_dir: Path) -> list[tuple[str, str]]:
    manifest = read_manifest(frames_dir)
    return sorted(set(zip(manifest["identity"], manifest["video"])))


def naive(frames_dir: Path, backend: DlibBackend) -> int:
    """Detect + predict on every frame in one process; returns the frames seen."""
    n = 0
    for identity, video in clips(frames_dir):
        for _, image in iter_clip(frames_dir, identity, video):
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            found = backend.detect(gray)
            if found is not None:
                backend.fit(gray, found[0])
            n += 1
    return n


def naive_rate(frames_dir: Path) -> float:
    """Frames per CPU second of the naive loop, in this process (bench_scale's reference)."""
    cv2.setNumThreads(1)
    backend = DlibBackend(load_params("annotate", ROOT / "params.yaml").redetect_every)
    started = time.process_time()
    frames = naive(frames_dir, backend)
    return frames / (time.process_time() - started)


def tracked(frames_dir: Path, backend: DlibBackend) -> int:
    n = 0
    for identity, video in clips(frames_dir):
        n += len(backend.annotate_clip(iter_clip(frames_dir, identity, video)).frame)
    return n


def stage(name: str, *args: str) -> str:
    """Run a stage as the pipeline does, in its own process (forking after threads can hang);
    returns its last line of output."""
    quiet = ["--no-progress"] if name != "synthesize" else []
    done = subprocess.run([sys.executable, "-m", f"stages.{name}", *args, *quiet], cwd=ROOT,
                          check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def parallel(frames_dir: Path, work: Path, name: str) -> int:
    """The annotate stage with params.yaml's settings; returns the frames it annotated."""
    metrics = work / f"{name}-metrics.json"
    said = stage("annotate", "--frames", str(frames_dir), "--out",
                 str(work / f"{name}-annotations"), "--metrics", str(metrics),
                 "--ground-truth", str(work / "none.parquet"), "--params",
                 str(ROOT / "params.yaml"))
    print(f"  the stage says: {said}")
    return json.loads(metrics.read_text())["frames"]


def measure(name: str, frames_dir: Path, work: Path) -> None:
    config = load_params("annotate", ROOT / "params.yaml")
    cv2.setNumThreads(1)
    backend = DlibBackend(config.redetect_every)
    rows = []
    for label, run in [
        ("naive", lambda: naive(frames_dir, backend)),
        ("tracked", lambda: tracked(frames_dir, backend)),
        ("parallel", lambda: parallel(frames_dir, work, name)),
    ]:
        with PeakMemory() as memory:
            start, cpu = time.perf_counter(), cpu_seconds()
            frames = run()
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        rows.append((label, frames, seconds, frames / seconds, frames / cpu, memory.peak / 2**20))
    reference = rows[0][3]
    print(f"\n{name}: {rows[0][1]} frames of 256x256, {len(clips(frames_dir))} clips, "
          f"{config.workers} workers, redetect_every={config.redetect_every}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"  {'variant':<9} {'seconds':>8} {'frames/s':>9} {'x naive':>8} "
          f"{'frames/CPU-s':>13} {'x naive':>8} {'peak MiB':>9}")
    cpu_reference = rows[0][4]
    for label, _, seconds, fps, per_cpu, peak in rows:
        print(f"  {label:<9} {seconds:8.2f} {fps:9.1f} {fps / reference:8.2f} "
              f"{per_cpu:13.1f} {per_cpu / cpu_reference:8.2f} {peak:9.0f}")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0],
                            epilog="no options: the demo clips, then the real clips when "
                                   "present").parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_annotate_"))
    try:
        params = str(ROOT / "params.yaml")
        stage("synthesize", "--out", str(work / "demo"), "--params", params)
        stage("extract", "--videos", str(work / "demo"), "--out", str(work / "demo-frames"),
              "--params", params)
        measure("demo", work / "demo-frames", work)
        if any(REAL_CLIPS.glob("*.mp4")):
            videos = work / "real"
            for path in sorted(REAL_CLIPS.glob("*.mp4")):  # <identity>/<clip>.mp4 layout
                (videos / path.stem).mkdir(parents=True)
                (videos / path.stem / "clip.mp4").symlink_to(path)
            stage("extract", "--videos", str(videos), "--out", str(work / "real-frames"),
                  "--params", params)
            measure("real", work / "real-frames", work)
        else:
            print(f"\nreal: skipped, no clips at {REAL_CLIPS}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
