"""What each demo clip shows, frame by frame: smooth head-pose trajectories and AU events.

`plan_dataset` draws every identity and every clip plan from one seed in a fixed order, so the
dataset depends on the seed and the config only. Poses are pitch, yaw, roll in degrees
(`glg.face.landmarks.rotation_matrix`); AU intensities 0..1 in AU_IDS order (Sec III-B-2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glg.config import SynthesizeConfig
from glg.face.landmarks import AU_IDS
from glg.synthesize.faces import Identity, make_identity

MAX_POSE = (15.0, 25.0, 15.0)  # |pitch|, |yaw|, |roll| limits of the trajectories, degrees


def smooth_trajectory(rng: np.random.Generator, n: int, fps: float, limit: float) -> np.ndarray:
    """`(n,)` angle in degrees: an offset plus two slow sines, never past +-limit."""
    t = np.arange(n) / fps
    reach = limit * rng.uniform(0.7, 1.0)  # how far this clip may go
    weights = rng.dirichlet([2.0, 2.0, 2.0]) * reach
    frequencies = rng.uniform(0.15, 0.5, size=2)  # Hz: a head turn takes 1..3 s
    phases = rng.uniform(0, 2 * np.pi, size=2)
    offset = weights[0] * rng.choice([-1.0, 1.0])
    waves = sum(w * np.sin(2 * np.pi * f * t + p)
                for w, f, p in zip(weights[1:], frequencies, phases))
    return offset + waves


def au_envelope(n: int, start: int, rise: int, hold: int, fall: int, peak: float) -> np.ndarray:
    """`(n,)` intensity of one AU event: smooth rise, hold at `peak`, smooth fall."""
    t = np.arange(n, dtype=np.float64)
    up = np.clip((t - start) / max(rise, 1), 0, 1)
    down = np.clip((start + rise + hold + fall - t) / max(fall, 1), 0, 1)
    ramp = np.minimum(up, down)
    return peak * (0.5 - 0.5 * np.cos(np.pi * ramp))  # eased ramps


@dataclass(frozen=True)
class ClipPlan:
    """What one clip shows, frame by frame."""

    identity: int  # index of the identity
    name: str  # clip name, e.g. "clip00"
    poses: np.ndarray  # (T, 3) pitch, yaw, roll in degrees
    aus: np.ndarray  # (T, 18) AU intensities 0..1 in AU_IDS order
    shifts: np.ndarray  # (T, 2) head translation, fraction of the frame side
    zooms: np.ndarray  # (T,) head scale factor


def plan_clip(rng: np.random.Generator, identity: int, name: str, n: int, fps: float,
              deck: list[int]) -> ClipPlan:
    """Pose trajectories and AU events of one clip; non-blink AUs are dealt from `deck`, which
    is refilled with a fresh shuffle of all 17 when empty, so every AU recurs evenly."""
    poses = np.stack([smooth_trajectory(rng, n, fps, limit) for limit in MAX_POSE], axis=-1)
    shifts = np.stack([smooth_trajectory(rng, n, fps, 0.03) for _ in range(2)], axis=-1)
    zooms = 1.0 + smooth_trajectory(rng, n, fps, 0.04)
    aus = np.zeros((n, len(AU_IDS)))
    # Expression events: about 2 a second, each 0.4..1.4 s long, a few overlapping.
    start = int(rng.integers(-fps // 2, fps // 4 + 1))
    while start < n:
        if not deck:
            deck.extend(rng.permutation([au for au in AU_IDS if au != 45]).tolist())
        au = deck.pop()
        rise, fall = (int(v) for v in rng.integers(3, 9, size=2))  # onset, offset: 3..8 frames
        hold = int(rng.integers(2, 20))
        curve = au_envelope(n, start, rise, hold, fall, rng.uniform(0.6, 1.0))
        # A dropped jaw parts the lips (FACS codes 25+26 together).
        targets = (au, 25) if au == 26 else (au,)
        for target in targets:
            column = AU_IDS.index(target)
            aus[:, column] = np.maximum(aus[:, column], curve)
        start += int(rng.integers(fps // 4, fps * 3 // 4 + 1))
    # Blinks: one every 0.6..2.5 s, 6..9 frames from open to closed to open (about 0.3 s).
    start = int(rng.integers(0, fps))
    while start < n:
        rise, hold, fall = int(rng.integers(2, 4)), int(rng.integers(1, 3)), int(rng.integers(3, 5))
        blink = au_envelope(n, start, rise, hold, fall, 1.0)
        aus[:, AU_IDS.index(45)] = np.maximum(aus[:, AU_IDS.index(45)], blink)
        start += int(rng.integers(int(0.6 * fps), int(2.5 * fps) + 1))
    return ClipPlan(identity, name, poses, aus, shifts, zooms)


def plan_dataset(config: SynthesizeConfig, seed: int) -> tuple[list[Identity], list[ClipPlan]]:
    """Every identity and every clip plan, drawn in one fixed order from `seed`."""
    rng = np.random.default_rng(seed)
    identities = [make_identity(i, rng) for i in range(config.identities)]
    n = max(1, round(config.seconds * config.fps))
    deck: list[int] = []
    plans = [plan_clip(rng, i, f"clip{c:02d}", n, config.fps, deck)
             for i in range(config.identities) for c in range(config.clips_per_identity)]
    return identities, plans
