"""Extraction throughput against ffmpeg's decode-only rate, and peak memory short vs long clip.

Run: `.venv/bin/python benchmarks/bench_extract.py` (needs ../shared/real-clips; installs the
ffmpeg CLI with apt-get when it is missing). Prints figures and ratios measured in this run:

- ffmpeg: `ffmpeg -i clip -f null -` over all clips, one after another (ffmpeg threads itself);
- extract: the stage's function on the same clips with the committed params except
  `max_frames` (raised so every source frame is used), with 2 workers and with 1;
- memory: peak RSS (the stage process and its children, sampled) extracting one clip and the
  same clip looped to 4x its length (1 worker, `max_frames` unlimited).
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glg.config import load_params  # noqa: E402
from glg.frames import read_manifest  # noqa: E402
from glg.extract import extract  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _measure import peak_rss_mib  # noqa: E402

REAL_CLIPS = ROOT.parent / "shared" / "real-clips"
UNLIMITED = 1_000_000


def ensure_ffmpeg() -> str:
    if not shutil.which("ffmpeg"):
        install = ["apt-get", "install", "-y", "-q", "ffmpeg"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(install, check=True, capture_output=True)
    return shutil.which("ffmpeg")


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.grab():
        n += 1
    return n


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its reaped children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ffmpeg_decode_seconds(ffmpeg: str, clips: list[Path]) -> tuple[float, float]:
    """Wall and CPU seconds of decoding every clip with the ffmpeg CLI."""
    started, cpu = time.perf_counter(), cpu_seconds()
    for clip in clips:
        subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-i", str(clip), "-f", "null", "-"],
                       check=True)
    return time.perf_counter() - started, cpu_seconds() - cpu


def main() -> None:
    clips = sorted(REAL_CLIPS.glob("*.mp4"))
    if not clips:
        sys.exit(f"no clips at {REAL_CLIPS}")
    ffmpeg = ensure_ffmpeg()
    frames = sum(frame_count(c) for c in clips)
    cores = psutil.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    print(f"{len(clips)} clips, {frames} source frames, {cores} cores, load average {load}")

    ff_seconds, ff_cpu = ffmpeg_decode_seconds(ffmpeg, clips)
    ff_rate = frames / ff_seconds
    print(f"ffmpeg decode-only          : {ff_rate:7.0f} frames/s ({ff_seconds:.2f} s, "
          f"{1000 * ff_cpu / frames:.2f} CPU-s per 1000 frames)")

    config = dataclasses.replace(load_params("extract", ROOT / "params.yaml"),
                                 max_frames=UNLIMITED)
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (2, 1):
            out = Path(tmp) / f"frames{workers}"
            cpu = cpu_seconds()
            summary = extract(REAL_CLIPS, out, dataclasses.replace(config, workers=workers),
                              progress=False)
            cpu = cpu_seconds() - cpu
            stored = len(read_manifest(out))
            rate = summary.source_frames / summary.seconds
            # the workers are the fork server's children, not ours: their CPU time is counted
            # by getrusage only when they run in this process (1 worker)
            cost = (f", {1000 * cpu / frames:.2f} CPU-s per 1000 frames, CPU cost "
                    f"{cpu / ff_cpu:.1f}x ffmpeg's" if workers == 1 else "")
            print(f"extract, {workers} worker{'s' if workers > 1 else ' '}        : {rate:7.0f} "
                  f"source frames/s, {stored / summary.seconds:5.0f} stored frames/s "
                  f"({summary.seconds:.2f} s{cost}); ratio to ffmpeg {rate / ff_rate:.2f}x")

        # memory: one clip, then the same clip looped to 4x its length
        clip = max(clips, key=frame_count)
        short, long = Path(tmp) / "short" / "a", Path(tmp) / "long" / "a"
        short.mkdir(parents=True)
        long.mkdir(parents=True)
        shutil.copy(clip, short / "clip.mp4")
        subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-stream_loop", "3", "-i", str(clip),
                        "-c", "copy", str(long / "clip.mp4")], check=True)
        params = Path(tmp) / "params.yaml"
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        raw["extract"] |= {"max_frames": UNLIMITED, "workers": 1}
        params.write_text(yaml.safe_dump(raw))
        for name, folder in (("short", short), ("long", long)):
            n = frame_count(folder / "clip.mp4")
            rss, seconds = peak_rss_mib([sys.executable, "-m", "stages.extract", "--videos",
                                         str(folder.parent), "--out", str(Path(tmp) / name),
                                         "--params", str(params), "--no-progress"])
            raw_mib = n * cv2.VideoCapture(str(folder / "clip.mp4")).get(3) ** 2 * 3 / 2**20
            print(f"peak RSS, {name:5s} clip ({n:4d} frames): {rss:6.0f} MiB in {seconds:.1f} s "
                  f"(the decoded clip would be {raw_mib:.0f} MiB)")


if __name__ == "__main__":
    main()
