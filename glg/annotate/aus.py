"""Action units from 68-point geometry: one written rule per AU, relative to the clip's neutral.

Every measure is in units of the inter-ocular distance (IOD) after undoing the in-plane roll, so
it does not depend on face size or head tilt. Every rule compares a frame with the clip's neutral
baseline: the per-clip median of the measure over successful frames (a talking-head clip is
mostly near-neutral), except for the inner-lip gap, whose neutral is the clip's 10th percentile
(a speaker's lips are apart about half the time, but close now and then). Relative rules make
a face whose rest pose shows teeth or a slight smile (a portrait's) read as neutral. `neutral`
gives a clip's baseline on its own, so that images outside the clip (the evaluation's outputs)
are read against the neutral of the clip whose person they show.

An AU that 68 points cannot show (AU06 cheek raiser, AU09 nose wrinkler, AU14 dimpler, AU28 lip
suck: skin, cheek and lip-surface changes with no distinct landmark motion) gets score NaN and
presence 0: `AUxx_c == 0` together with `AUxx_r` NaN means "not measured", never "absent".
Thresholds are chosen here (the paper used OpenFace's classifiers, Sec IV-C) and stated per rule:
round values between neutral and full-intensity renders of `glg.synthesize` faces; the eye
thresholds (AU05, AU07, AU45) were then lowered after the score distributions of a small
synthetic development set (2 identities x 2 clips, not the demo), since a half-closed eye
already counts as a blink in the ground truth.
"""

from __future__ import annotations

import numpy as np

from glg.face.landmarks import AU_IDS, eye_centres

# AUs the geometry covers; the others are NaN (see the module docstring).
GEOMETRIC_AUS: tuple[int, ...] = (1, 2, 4, 5, 7, 10, 12, 15, 17, 20, 23, 25, 26, 45)
UNMEASURED_AUS: tuple[int, ...] = tuple(au for au in AU_IDS if au not in GEOMETRIC_AUS)

# Presence thresholds on the scores below, in IOD units unless said otherwise.
THRESHOLDS: dict[int, float] = {
    1: 0.04,  # inner brow 4% of IOD higher than neutral
    2: 0.04,  # outer brow 4% of IOD higher than neutral
    4: 0.04,  # brows 4% of IOD lower or closer together than neutral
    5: 0.15,  # eye aperture 15% wider than neutral (a relative ratio)
    7: 0.12,  # eye aperture 12-25% narrower than neutral (more is a blink, AU45)
    10: 0.05,  # upper lip 5% of IOD closer to the nose than neutral
    12: 0.06,  # mouth 6% of IOD wider with the corners 3% of IOD higher than neutral
    15: 0.03,  # mouth corners 3% of IOD lower than neutral (mouth not open)
    17: 0.05,  # chin 5% of IOD closer to the lower lip than neutral (mouth not open)
    20: 0.08,  # mouth 8% of IOD wider than neutral without corner lift
    23: 0.04,  # red of the lips 4% of IOD thinner than neutral
    25: 0.06,  # inner lips 6% of IOD further apart than the clip's most-closed tenth
    26: 0.10,  # chin 10% of IOD lower than neutral, relative to the nose
    45: 0.25,  # eye aperture a quarter narrower than neutral: closing or closed (a ratio)
}


def _upright(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks rotated so the eye line is horizontal and scaled to IOD 1."""
    right, left = eye_centres(landmarks)  # (N, 2) each
    d = left - right
    iod = np.linalg.norm(d, axis=-1)  # (N,)
    c, s = d[:, 0] / iod, d[:, 1] / iod
    rot = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], 1)  # (N, 2, 2) undo the roll
    centred = landmarks - ((right + left) / 2)[:, None, :]
    return np.einsum("nij,nkj->nki", rot, centred) / iod[:, None, None]


def geometry(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame measures (N,) in IOD units (y down) that the AU rules read, from (N, 68, 2)."""
    p = _upright(landmarks)
    x, y = p[..., 0], p[..., 1]
    eye_inner_y = (y[:, 39] + y[:, 42]) / 2
    eye_outer_y = (y[:, 36] + y[:, 45]) / 2
    eye_width = (np.hypot(x[:, 39] - x[:, 36], y[:, 39] - y[:, 36])
                 + np.hypot(x[:, 45] - x[:, 42], y[:, 45] - y[:, 42])) / 2
    lids = (y[:, 41] - y[:, 37] + y[:, 40] - y[:, 38]
            + y[:, 47] - y[:, 43] + y[:, 46] - y[:, 44]) / 4  # lower minus upper lid
    return {
        "inner_brow": eye_inner_y - (y[:, 21] + y[:, 22]) / 2,  # inner brow height over the eye
        "outer_brow": eye_outer_y - (y[:, 17] + y[:, 26]) / 2,  # outer brow height over the eye
        "brow_gap": x[:, 22] - x[:, 21],  # distance between the inner brow ends
        "brow_mid": (y[:, 37] + y[:, 44]) / 2 - (y[:, 19] + y[:, 24]) / 2,  # mid brow over lid
        "aperture": lids / eye_width,  # eye aspect ratio: lid gap over eye width
        "nose_lip": y[:, 51] - y[:, 33],  # upper lip below the nose base
        # mouth corners above the upper lip's inner middle (which an opening jaw does not move)
        "corner_lift": y[:, 62] - (y[:, 48] + y[:, 54]) / 2,
        "mouth_width": x[:, 54] - x[:, 48],
        "chin_lip": y[:, 8] - y[:, 57],  # chin below the lower lip
        "lip_red": (y[:, 61:64].mean(1) - y[:, 50:53].mean(1)
                    + y[:, 56:59].mean(1) - y[:, 65:68].mean(1)) / 2,  # lip thickness
        "lip_gap": np.clip(y[:, 65:68].mean(1) - y[:, 61:64].mean(1), 0, None),  # inner lips
        "chin_drop": y[:, 8] - y[:, 33],  # chin below the nose base
    }


def _baseline(g: dict[str, np.ndarray]) -> dict[str, float]:
    """The neutral of measures (N,) each: their median (the lip gap: its 10th percentile)."""
    base = {k: float(np.median(v)) for k, v in g.items()}
    base["lip_gap"] = float(np.percentile(g["lip_gap"], 10))
    return base


def neutral(landmarks: np.ndarray) -> dict[str, float]:
    """A clip's neutral baseline from the (N, 68, 2) landmarks of its successful frames, N >= 1:
    what `action_units` compares each frame with."""
    return _baseline(geometry(np.asarray(landmarks, np.float64)))


def action_units(landmarks: np.ndarray, success: np.ndarray,
                 baseline: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Presence (N, 18) int8 and score (N, 18) float32 for one clip, in `AU_IDS` order.

    `landmarks` (N, 68, 2) in pixels; rows with `success` False get score NaN and presence 0.
    Baselines: `baseline` (from `neutral`) when given, else the clip's own: its median over
    successful frames (the lip gap: its 10th percentile).
    """
    n = len(landmarks)
    score = np.full((n, len(AU_IDS)), np.nan, dtype=np.float32)
    presence = np.zeros((n, len(AU_IDS)), dtype=np.int8)
    ok = np.asarray(success, bool)
    if not ok.any():
        return presence, score
    g = geometry(landmarks[ok])
    base = _baseline(g) if baseline is None else baseline
    d = {k: g[k] - base[k] for k in g}  # change from the clip's neutral, IOD units
    rel_aperture = g["aperture"] / max(base["aperture"], 1e-6) - 1.0  # relative eye opening

    # Each rule: score (N,), then presence = score >= its threshold (plus any stated condition).
    lips_closed = d["lip_gap"] < THRESHOLDS[25]
    rules: dict[int, tuple[np.ndarray, np.ndarray | None]] = {
        1: (d["inner_brow"], None),  # AU01 inner brow raiser: inner brow ends rise
        2: (d["outer_brow"], None),  # AU02 outer brow raiser: outer brow ends rise
        4: (np.maximum(-d["brow_mid"], -d["brow_gap"]), None),  # AU04: brows lower or knit
        5: (rel_aperture, None),  # AU05 upper lid raiser: eyes open wider than neutral
        7: (-rel_aperture, -rel_aperture < THRESHOLDS[45]),  # AU07: narrowed, not closed
        10: (-d["nose_lip"], None),  # AU10 upper lip raiser: upper lip nears the nose
        # AU12 lip corner puller: the mouth wider and its corners higher than neutral.
        12: (np.minimum(d["mouth_width"], d["corner_lift"] * 2), None),
        15: (-d["corner_lift"], lips_closed),  # AU15 lip corner depressor: corners drop
        17: (-d["chin_lip"], lips_closed),  # AU17 chin raiser: chin nears the lower lip
        20: (d["mouth_width"], d["corner_lift"] < THRESHOLDS[12] / 4),  # AU20: wider, no lift
        23: (-d["lip_red"], lips_closed),  # AU23 lip tightener: the red of the lips thins
        25: (d["lip_gap"], None),  # AU25 lips part: inner lips apart
        26: (d["chin_drop"], None),  # AU26 jaw drop: chin lower than neutral
        45: (-rel_aperture, None),  # AU45 blink: eyes (nearly) closed
    }
    for au, (s, condition) in rules.items():
        k = AU_IDS.index(au)
        on = s >= THRESHOLDS[au]
        if condition is not None:
            on &= condition
        score[ok, k] = s
        presence[ok, k] = on
    return presence, score
