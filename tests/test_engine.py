"""extract, annotate and prepare on Ray: a cluster of two machines' worth of Ray (a head node
and a worker node, one CPU each) started here, the stages run with `engine: ray` and
`RAY_ADDRESS`, and every output byte compared with the local workers'.

Each stage runs in a process of its own, as DVC runs it: the local engine forks annotate's
workers from the stage process, and a fork of this test process, which holds the cluster's
gRPC threads, can inherit a lock one of them holds and hang (it did once, in CI)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _clips import panning_face, write_clip

ROOT = Path(__file__).resolve().parents[1]
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray cluster of two nodes: `make test-slow`


@pytest.fixture(scope="module")
def ray_cluster():
    """The address of a Ray cluster of two nodes with one CPU each, stopped after the module
    (its own processes only)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                             "include_dashboard": False})
    # The helper records its address as "the current cluster" for any plain ray.init() on
    # this machine; forget it, so no other process joins this test's cluster by accident.
    ray._common.utils.reset_ray_address()
    cluster.add_node(num_cpus=1)
    yield cluster.address
    cluster.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Clips of unequal length (the first the longest, so workers finish out of order) and one
    that is not a video."""
    root = tmp_path_factory.mktemp("engine") / "videos"
    frames, _ = panning_face(24)
    for name, n in [("a/1.mp4", 24), ("a/2.mp4", 6), ("b/1.mp4", 8), ("c/1.mp4", 5)]:
        write_clip(root / name, frames[:n])
    (root / "c" / "bad.mp4").write_text("not a video")
    return root


def run_stages(videos: Path, work: Path, engine: str,
               workers: int = 2) -> list[subprocess.CompletedProcess]:
    """extract, annotate and prepare, each a process started from `work` with relative paths;
    the results of those that ran (each runs only if the one before succeeded)."""
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump({
        "extract": {"crop_px": 192, "detect_every": 3, "workers": workers, "engine": engine},
        "annotate": {"workers": workers, "engine": engine},
        "prepare": {"image_px": 64, "unseen_identities": 1, "test_clips": 1, "known_identities": 1,
                    "self_pairs": 4, "unseen_pairs": 4, "known_pairs": 4, "workers": workers,
                    "engine": engine}}))
    runs = [("extract", ["--videos", os.path.relpath(videos, work), "--out", "frames",
                         "--no-progress"]),
            ("annotate", ["--frames", "frames", "--out", "annotations", "--metrics",
                          "annotate.json", "--ground-truth", "none.parquet", "--no-progress"]),
            ("prepare", ["--frames", "frames", "--annotations", "annotations", "--out",
                         "prepared"])]
    results = []
    for stage, args in runs:
        results.append(subprocess.run(
            [sys.executable, "-m", f"stages.{stage}", *args, "--params", "params.yaml"],
            cwd=work, env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True,
            text=True, timeout=600))
        if results[-1].returncode:
            break
    return results


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_ray_cluster_writes_the_local_runs_bytes(ray_cluster, videos, tmp_path, monkeypatch):
    outputs = {}
    for engine in ("local", "ray"):
        work = tmp_path / engine
        work.mkdir()
        if engine == "ray":
            monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
        extracted, annotated, prepared = run_stages(videos, work, engine)
        for result in (extracted, annotated, prepared):
            assert result.returncode == 0, result.stderr
        outputs[engine] = (hashes(work / "frames"), hashes(work / "annotations"),
                           json.loads((work / "annotate.json").read_text()),
                           hashes(work / "prepared"))
    assert "extract: 2 Ray actors on Ray at" in extracted.stderr  # the run did use the cluster
    assert "(2 nodes, 2 CPUs)" in annotated.stderr
    assert "prepare: 2 Ray actors on Ray at" in prepared.stderr
    assert outputs["ray"] == outputs["local"]
    frames, annotations, metrics, prepared_files = outputs["ray"]
    assert "shard-00000.jpegs" in frames and "shard-00000.parquet" in annotations
    assert "shard-00000.jpegs" in prepared_files
    assert metrics["clips"] == 4 and metrics["success_rate"] > 0.9  # faces were annotated


def test_more_actors_than_the_cluster_has_cpus_is_an_error(ray_cluster, videos, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
    (extracted,) = run_stages(videos, tmp_path, "ray", workers=3)
    assert extracted.returncode == 1
    assert "error: extract.workers: 3 Ray actors of one CPU each, but Ray at" in extracted.stderr
    assert "(2 nodes, 2 CPUs) has too few CPUs" in extracted.stderr
