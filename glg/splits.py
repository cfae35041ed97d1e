"""Splits and fixed evaluation pairs of the prepared data (Sec IV-A): who is trained on, which
clips are the self-reenactment test, and the seeded source/driving pairs every experiment is
scored on. Decisions that the data are too small for are clamped and noted (`note`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from glg.config import PrepareConfig
from glg.errors import GlgError
from glg.prepared import KEY

log = logging.getLogger(__name__)

# Independent random streams, one per decision, so changing one size never reshuffles another.
_UNSEEN, _TEST_CLIPS, _SELF, _UNSEEN_PAIRS, _KNOWN_PEOPLE, _KNOWN_PAIRS = range(6)


# --- splits (Sec IV-A) ----------------------------------------------------------------------


def assign_splits(frames: pd.DataFrame, config: PrepareConfig, seed: int,
                  notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split usable frames into train / holdout / test / unseen; returns (frames, identities).

    Sec IV-A: `unseen_identities` people are never trained on (the paper's CelebV); `test_clips`
    whole clips are the self-reenactment test (VoxCeleb1's 100 test videos come from identities
    outside training, so unseen identities' clips are taken first, then known identities' clips,
    always leaving each known identity a training clip); the last `known_holdout` of every
    training clip is held out for the known-identity scenario (the paper's CelebV setting).
    """
    frames = frames.copy()
    clip_size = frames.groupby(["identity", "video"])["frame"].transform("size")
    small = clip_size < config.min_frames
    if small.any():
        clips = frames[small].drop_duplicates(["identity", "video"])
        note(notes, f"{len(clips)} clips with fewer than {config.min_frames} usable frames "
              f"skipped: {_names(clips)}")
        frames = frames[~small].reset_index(drop=True)
    if frames.empty:
        raise GlgError(f"no clip has prepare.min_frames={config.min_frames} usable frames; "
                       "nothing to train or test on")

    names = sorted(frames["identity"].unique())
    n_unseen = _clamp(config.unseen_identities, len(names) - 1, "unseen_identities",
                      "identities (one must stay for training)", notes)
    unseen = set(_rng(seed, _UNSEEN).choice(names, n_unseen, replace=False).tolist())
    if 0 < n_unseen < 2:
        note(notes, "only 1 unseen identity: no unseen-identity pairs (they need 2 people)")

    clips = frames[["identity", "video"]].drop_duplicates().sort_values(["identity", "video"])
    rng = _rng(seed, _TEST_CLIPS)
    from_unseen = [tuple(c) for c in clips[clips["identity"].isin(unseen)].to_numpy()]
    from_known = []
    for name in sorted(set(names) - unseen):
        own = [tuple(c) for c in clips[clips["identity"] == name].to_numpy()]
        from_known += [own[i] for i in rng.permutation(len(own))[1:]]  # keep one to train on
    candidates = ([from_unseen[i] for i in rng.permutation(len(from_unseen))]
                  + [from_known[i] for i in rng.permutation(len(from_known))])
    n_test = _clamp(config.test_clips, len(candidates), "test_clips", "candidate clips", notes)
    test = set(candidates[:n_test])

    clip_key = list(zip(frames["identity"], frames["video"]))
    split = np.full(len(frames), "train", dtype=object)
    split[frames["identity"].isin(unseen).to_numpy()] = "unseen"
    split[np.array([k in test for k in clip_key])] = "test"
    order = frames.groupby(["identity", "video"]).cumcount(ascending=False).to_numpy()  # 0 = last
    size = frames.groupby(["identity", "video"])["frame"].transform("size").to_numpy()
    holdout = np.minimum(np.rint(size * config.known_holdout), size - config.min_frames)
    split[(split == "train") & (order < holdout)] = "holdout"
    frames["split"] = split

    identities = pd.DataFrame({"identity": names, "index": np.arange(len(names), dtype=np.int64)})
    identities["role"] = ["unseen" if n in unseen else "known" for n in names]
    identities["clips"] = [int((clips["identity"] == n).sum()) for n in names]
    identities["frames"] = frames.groupby("identity").size().reindex(names).to_numpy()
    frames.insert(3, "identity_index",
                  frames["identity"].map(dict(zip(names, identities["index"]))).astype(np.int64))
    frames.insert(4, "split", frames.pop("split"))
    return frames, identities


# --- fixed evaluation pairs (Sec IV-A) -----------------------------------------------------


def evaluation_pairs(frames: pd.DataFrame, identities: pd.DataFrame, config: PrepareConfig,
                     seed: int, notes: list[str]) -> pd.DataFrame:
    """The fixed, seeded pair lists every experiment is scored on (Sec IV-A).

    self: two different frames of one test clip; unseen: a source frame of each unseen person
    with a driving frame of another unseen person; known: held-out frames of `known_identities`
    trained people, each as source with another known person's held-out frame as driving.
    """
    rows = np.arange(len(frames))
    blocks_self = [(idx, idx) for _, idx in
                   _groups(frames, frames["split"] == "test", ["identity", "video"])]
    chosen = [_sample_pairs(_rng(seed, _SELF), blocks_self, config.self_pairs, True, "self_pairs",
                            notes)]
    scenario = ["self"] * len(chosen[0][0])

    unseen = identities.loc[identities["role"] == "unseen", "index"]
    is_unseen = frames["identity_index"].isin(unseen).to_numpy()
    people = _groups(frames, is_unseen, ["identity"])
    if len(people) >= 2:
        everyone = rows[is_unseen]
        for k, (_, own) in enumerate(people):
            others = np.setdiff1d(everyone, own)
            chosen.append(_sample_pairs(_rng(seed, _UNSEEN_PAIRS, k), [(own, others)],
                                        config.unseen_pairs, False, "unseen_pairs", notes))
            scenario += ["unseen"] * len(chosen[-1][0])

    held = (frames["split"] == "holdout").to_numpy()
    people = _groups(frames, held, ["identity"])
    if len(people) >= 2:
        n_known = _clamp(config.known_identities, len(people), "known_identities",
                         "known identities with held-out frames", notes)
        picked = np.sort(_rng(seed, _KNOWN_PEOPLE).choice(len(people), n_known, replace=False))
        everyone = rows[held]
        for k in picked:
            own = people[k][1]
            others = np.setdiff1d(everyone, own)
            chosen.append(_sample_pairs(_rng(seed, _KNOWN_PAIRS, int(k)), [(own, others)],
                                        config.known_pairs, False, "known_pairs", notes))
            scenario += ["known"] * len(chosen[-1][0])
    elif config.known_pairs and config.known_identities:
        note(notes, "fewer than 2 known identities with held-out frames: no known-identity pairs")

    source = np.concatenate([s for s, _ in chosen]).astype(np.int64)
    driving = np.concatenate([d for _, d in chosen]).astype(np.int64)
    pairs = pd.DataFrame({"scenario": scenario})
    for role, at in (("source", source), ("driving", driving)):
        for column in KEY:
            pairs[f"{role}_{column}"] = frames[column].to_numpy()[at]
        pairs[f"{role}_row"] = at
    return pairs


def _sample_pairs(rng: np.random.Generator, blocks: list[tuple[np.ndarray, np.ndarray]],
                  count: int, distinct: bool, key: str, notes: list[str]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct (source, driving) pairs drawn uniformly from the blocks' products.

    A block (S, D) offers every source in S with every driving in D, minus identical frames when
    `distinct` (then S and D are the same clip). Clamped, with a note, to what the blocks offer.
    """
    sizes = [len(s) * (len(d) - 1 if distinct else len(d)) for s, d in blocks]
    total = int(sum(sizes))
    take = _clamp(count, total, key, "possible pairs", notes)
    flat = np.sort(rng.choice(total, take, replace=False)) if take < total else np.arange(total)
    starts = np.cumsum([0] + sizes)
    block = np.searchsorted(starts, flat, side="right") - 1
    source, driving = np.empty(take, np.int64), np.empty(take, np.int64)
    for b, (s, d) in enumerate(blocks):
        local = flat[block == b] - starts[b]
        width = len(d) - 1 if distinct else len(d)
        i, j = local // width, local % width
        if distinct:
            j = j + (j >= i)  # skip the source frame itself
        source[block == b], driving[block == b] = s[i], d[j]
    return source, driving


# --- helpers --------------------------------------------------------------------------------


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


def _clamp(asked: int, available: int, key: str, what: str, notes: list[str]) -> int:
    """`asked`, or `available` with a logged note when the data are smaller than asked."""
    available = max(int(available), 0)
    if asked > available:
        note(notes, f"prepare.{key}={asked} clamped to {available}: only {available} {what}")
        return available
    return asked


def note(notes: list[str], message: str) -> None:
    """Record a skip or clamp for `summary.json` and the log, once however often it happens."""
    if message not in notes:
        notes.append(message)
        log.info(message)


def _groups(frames: pd.DataFrame, mask, by: list[str]) -> list[tuple[tuple, np.ndarray]]:
    """Row indices of the masked frames grouped by `by`, groups in sorted key order."""
    rows = np.flatnonzero(np.asarray(mask))
    if len(rows) == 0:
        return []
    grouped = frames.iloc[rows].groupby(by, sort=True).indices
    return [(key, rows[idx]) for key, idx in sorted(grouped.items())]


def _names(clips: pd.DataFrame, limit: int = 5) -> str:
    names = [f"{i}/{v}" for i, v in zip(clips["identity"], clips["video"])]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
