"""Shared fixtures: repository paths, the optional real clips, random `Pair` batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from _batches import random_pairs

import glg.engine  # noqa: F401  (sets Ray's environment before any test imports Ray)

# pytest -n: each worker takes its share of the cores; torch's default of all of them in every
# worker made the overfit test 10x slower beside another worker (3.2 s against 0.3 s).
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 0)):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

ROOT = Path(__file__).resolve().parents[1]
REAL_CLIPS = ROOT.parent / "shared" / "real-clips"


@pytest.fixture
def real_clips() -> Path:
    """The folder of real talking-head clips beside the checkout; the test is skipped without it."""
    if not any(REAL_CLIPS.glob("*.mp4")):
        pytest.skip(f"no real clips at {REAL_CLIPS}")
    return REAL_CLIPS


@pytest.fixture
def pair_batch():
    """Makes a random, collated `glg.data.Pair` batch: `pair_batch(batch, size, part_sizes)`."""
    return random_pairs
