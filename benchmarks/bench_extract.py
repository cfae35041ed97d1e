"""Extraction against ffmpeg's decode-only rate, where its time goes, and its memory on a short
and a long clip.

Run: `.venv/bin/python benchmarks/bench_extract.py [--copies 1 4 16]` (needs
../shared/real-clips; installs the ffmpeg CLI with apt-get when it is missing). Prints figures
and ratios measured in this run:

- ratio: `ffmpeg -i clip -f null -` over all clips, one after another (ffmpeg threads itself),
  against the stage's function on the same clips with the committed params except
  `max_frames` (raised so every source frame is used), each run in a fresh process as a stage
  run calls it, with 2 workers (alternating with ffmpeg, 5 rounds at 1x and 3 at 4x: the
  machine's speed drifts by 10 % between runs) and with 1; wall rates (the goal: extract >=
  0.7x ffmpeg's, the median round) and CPU per source frame (ffmpeg's exact, extract's process
  tree sampled). The rate is `extract`'s own time; the whole process's (interpreter and
  imports too, ~0.3 s) is printed beside it, against ffmpeg's process starts. Once on the 6
  clips (1x) and once on each clip taken 4 times (4x, 24 clips), where the stage's fixed costs
  (pool start, the last clip's tail) weigh a quarter as much, or at each `--copies`;
- profile: CPU ms per source frame of each piece of extract in one process (decode, detect,
  crop and resize, JPEG encode, spool write, the rest), and the process start of a stage run;
- memory: peak RSS (the stage process and its children, sampled) extracting one clip and the
  same clip looped to 4x its length (1 worker, `max_frames` unlimited).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import resource
import shutil
import statistics
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

from glg.config import ExtractConfig, load_params  # noqa: E402
from glg.extract import extract, extract_clip  # noqa: E402
from glg.face.crop import CropCounts, _largest_face, crop_frame  # noqa: E402
from glg.face.dlib_models import face_detector  # noqa: E402
from glg.store.frames import encode_bgr, read_manifest  # noqa: E402
from glg.store.video import find_clips, sample_frames  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _measure import Measured, measure, measure_output, peak_rss_mib  # noqa: E402

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


def real_clips() -> list[Path]:
    clips = sorted(REAL_CLIPS.glob("*.mp4"))
    if not clips:
        sys.exit(f"no clips at {REAL_CLIPS}")
    return clips


def full_config() -> ExtractConfig:
    """The committed extract params, every source frame kept."""
    return dataclasses.replace(load_params("extract", ROOT / "params.yaml"), max_frames=UNLIMITED)


def ffmpeg_pass(ffmpeg: str, clips: list[Path]) -> tuple[float, float]:
    """Wall and CPU seconds of `ffmpeg -i clip -f null -` over `clips`, one after another
    (ffmpeg threads itself); CPU exact, from the finished children's usage."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    for clip in clips:
        subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-i", str(clip), "-f", "null", "-"],
                       check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - started, cpu


def extract_run(videos: Path, out: Path, workers: int) -> tuple[float, Measured]:
    """The extract stage run as DVC runs it, in a fresh process, with the committed params but
    `max_frames` (every source frame used) and `workers`: the seconds `extract` took (its own
    report), and the whole process tree sampled from here every 50 ms (a fifth of the 10 ms
    default's cost to the two cores)."""
    params = out.parent / f"params-{workers}.yaml"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["extract"] |= {"max_frames": UNLIMITED, "workers": workers}
    params.write_text(yaml.safe_dump(raw))
    measured, stdout = measure_output(
        [sys.executable, "-m", "stages.extract", "--videos", str(videos), "--out", str(out),
         "--params", str(params), "--no-progress"], interval=0.05)
    shutil.rmtree(out)
    return float(re.search(r" in ([0-9.]+) s,", stdout).group(1)), measured


def decode_ratio(copies: int, rounds: int) -> None:
    """ffmpeg's decode-only rate against extract's with 2 workers, alternating, `rounds` times
    (the ratio: their median), then extract with 1 worker, on the real clips each taken
    `copies` times (links in a temporary folder): at 1x a stage run's fixed costs (the worker
    pool's start, the last clip's tail) weigh on 1,824 frames; at 4x, a quarter as much."""
    clips, ffmpeg = real_clips(), ensure_ffmpeg()
    face_detector()  # its cache, as every run after a machine's first finds it
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        videos.mkdir()
        for clip in clips:
            for k in range(copies):
                (videos / f"{clip.stem}_{k}{clip.suffix}").symlink_to(clip.resolve())
        frames = copies * sum(frame_count(c) for c in clips)
        load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
        print(f"{copies}x: {copies * len(clips)} real clips (512 px), {frames} source frames, "
              f"{psutil.cpu_count()} cores, load average {load}")
        ratios, whole = [], []
        for r in range(rounds):
            ff_wall, ff_cpu = ffmpeg_pass(ffmpeg, sorted(videos.iterdir()))
            seconds, run = extract_run(videos, Path(tmp) / "frames", 2)
            ratios.append(ff_wall / seconds)
            whole.append(ff_wall / run.seconds)
            print(f"  round {r + 1}: ffmpeg {frames / ff_wall:5.0f} frames/s ({ff_wall:.2f} s, "
                  f"{1e3 * ff_cpu / frames:.2f} CPU ms a frame); extract, 2 workers "
                  f"{frames / seconds:4.0f} source frames/s ({seconds:.2f} s in extract, "
                  f"{run.seconds:.2f} s the whole process, {1e3 * run.cpu_seconds / frames:.2f} "
                  f"CPU ms a frame) -> {ratios[-1]:.2f}x; whole process {whole[-1]:.2f}x")
        seconds, run = extract_run(videos, Path(tmp) / "frames", 1)
        print(f"  extract, 1 worker {frames / seconds:.0f} source frames/s ({seconds:.2f} s, "
              f"{1e3 * run.cpu_seconds / frames:.2f} CPU ms a frame)")
        print(f"  ratio to ffmpeg, 2 workers: median {statistics.median(ratios):.2f}x "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f}x; goal >= 0.7x); the whole process "
              f"median {statistics.median(whole):.2f}x")


def profile() -> None:
    """CPU ms per source frame of each piece of extract on the real clips, in this process."""
    config, clips = full_config(), find_clips(REAL_CLIPS)
    cv2.setNumThreads(1)  # as a worker runs
    pieces = dict.fromkeys(["decode", "detect", "crop + resize", "JPEG encode", "spool write"],
                           0.0)
    with tempfile.TemporaryDirectory() as tmp:
        extract(REAL_CLIPS, Path(tmp) / "frames", dataclasses.replace(config, workers=1),
                progress=False)
        boxes = read_manifest(Path(tmp) / "frames")
        started = time.process_time()
        for i, clip in enumerate(clips):  # the whole of extract's work on a clip, for the rest
            extract_clip(clip, config, Path(tmp) / f"{i}.jpegs")
        whole = time.process_time() - started
        source_frames = 0
        with (Path(tmp) / "spool").open("wb") as spool:
            for clip in clips:
                rows = boxes[boxes.source == clip.source]
                box = dict(zip(rows.source_frame, rows[["crop_x0", "crop_y0", "crop_size"]]
                               .to_numpy().astype(int)))
                frames = sample_frames(clip.path, config.fps, config.max_frames)
                last = -1
                while True:
                    t0 = time.process_time()
                    frame = next(frames, None)
                    t1 = time.process_time()
                    pieces["decode"] += t1 - t0
                    if frame is None:
                        break
                    last = frame.source_frame
                    if frame.index % config.detect_every == 0:
                        _largest_face(frame.bgr, config, CropCounts())
                    t2 = time.process_time()
                    crop = crop_frame(frame.bgr, *map(int, box[frame.source_frame]),
                                      config.crop_px)
                    t3 = time.process_time()
                    jpeg = encode_bgr(crop, config.jpeg_quality)
                    t4 = time.process_time()
                    spool.write(jpeg)
                    t5 = time.process_time()
                    for name, seconds in zip(pieces, (0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                        pieces[name] += seconds
                source_frames += last + 1
    pieces["the rest (crop boxes, loop)"] = whole - sum(pieces.values())
    print(f"profile, one process, CPU ms per source frame ({source_frames} frames):")
    for name, seconds in pieces.items():
        print(f"  {name:<28}{1e3 * seconds / source_frames:6.2f}  "
              f"{100 * seconds / whole:3.0f} %")
    print(f"  {'all of extract_clip':<28}{1e3 * whole / source_frames:6.2f}")
    imports = measure([sys.executable, "-c", "import stages.extract"])
    pool = measure([sys.executable, "-c", "from glg.extract import _forkserver_pool\n"
                    "if __name__ == '__main__':\n    _forkserver_pool(2).map(abs, [1, 2])"])
    print(f"process start of a stage run (wall): interpreter and imports {imports.seconds:.2f} s;"
          f" with the 2 workers' pool up (fork server, preload, detector) {pool.seconds:.2f} s")


def memory() -> None:
    """Peak RSS extracting one clip and the same clip looped to 4x its length."""
    clip, ffmpeg = max(real_clips(), key=frame_count), ensure_ffmpeg()
    with tempfile.TemporaryDirectory() as tmp:
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4],
                        help="each real clip taken this many times, one ratio per value "
                             "(16: about 6 minutes)")
    for copies in parser.parse_args().copies:
        decode_ratio(copies, rounds=5 if copies == 1 else 3)
    profile()
    memory()
