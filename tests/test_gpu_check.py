"""benchmarks/gpu_check.sh at toy size on the CPU: one table with every part, numbers from the
parts a CPU runs, "no CUDA" from the others."""

import csv
import os
import subprocess
import sys

import pytest
import torch
from _training import ROOT

PARTS = ["setup", "cuda_tests", "data", "train_eager", "loader", "learn", "train_compiled",
         "train_cudagraphs"]
ON_A_CPU = {"setup", "data", "train_eager", "loader", "learn"}


@pytest.mark.slow  # the whole check at toy size: about 35 s on 2 busy cores
def test_the_toy_check_writes_a_row_for_every_part(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--toy"], cwd=ROOT,
                            env={**os.environ, "OUT": str(tmp_path), "GLG_PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "gpu_check.tsv", newline="") as file:
        rows = {r["part"]: r for r in csv.DictReader(file, delimiter="\t")}
    assert list(rows) == PARTS
    cuda = torch.cuda.is_available()
    for part, row in rows.items():
        if part in ON_A_CPU or cuda:
            assert row["status"] == "ok" and any(c.isdigit() for c in row["result"]), row
        else:
            assert (row["status"], row["result"]) == ("skipped", "no CUDA"), row
    assert "samples/s" in rows["train_eager"]["result"]
    assert "val L1" in rows["learn"]["result"] and "source copied" in rows["learn"]["result"]
    assert (tmp_path / "learn_metrics.json").is_file()
    assert (tmp_path / "gpu_check.txt").read_text().splitlines()[0].split() == [
        "part", "status", "seconds", "result"]
    assert result.stdout.rstrip().endswith((tmp_path / "gpu_check.txt").read_text().rstrip())
