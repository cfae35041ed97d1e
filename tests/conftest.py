"""Shared fixtures: repository paths and the optional real clips."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_CLIPS = ROOT.parent / "shared" / "real-clips"


@pytest.fixture
def real_clips() -> Path:
    """The folder of real talking-head clips beside the checkout; the test is skipped without it."""
    if not any(REAL_CLIPS.glob("*.mp4")):
        pytest.skip(f"no real clips at {REAL_CLIPS}")
    return REAL_CLIPS
