"""Splits and fixed evaluation pairs of the prepared data (Sec IV-A): who is trained on, which
clips are the self-reenactment test, and the seeded source/driving pairs every experiment is
scored on. Both are decided from clip-level counts alone: the prepared frames are stored clip by
clip, so a clip is a range of rows and a set of frames a list of ranges (`Rows`), never a
per-frame table. Decisions that the data are too small for are clamped and noted (`note`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from glg.config import PrepareConfig
from glg.errors import GlgError

log = logging.getLogger(__name__)

# Independent random streams, one per decision, so changing one size never reshuffles another.
_UNSEEN, _TEST_CLIPS, _SELF, _UNSEEN_PAIRS, _KNOWN_PEOPLE, _KNOWN_PAIRS = range(6)

# A set of prepared rows as ranges in increasing order: (starts, lengths), (R,) int64 each.
Rows = tuple[np.ndarray, np.ndarray]


# --- splits (Sec IV-A) ----------------------------------------------------------------------


def assign_splits(clips: pd.DataFrame, config: PrepareConfig, seed: int, notes: list[str],
                  test_videos: list[str] | None = None,
                  unseen_only: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the stored clips into train / test / unseen; returns (clips, identities).

    `clips` has one row per clip in stored order (`identity`, `video`, `start`, `frames`); the
    returned copy adds `identity_index`, `split` and `holdout`. Sec IV-A: `unseen_identities`
    people are never trained on (the paper's CelebV); `test_clips` whole clips are the
    self-reenactment test (VoxCeleb1's 100 test videos come from identities outside training, so
    unseen identities' clips are taken first, then known identities' clips, always leaving each
    known identity a training clip); the last `holdout` frames of every training clip (the
    fraction `known_holdout`) are held out for the known-identity scenario (the paper's CelebV).

    `test_videos` (from `read_test_videos`) replaces the random draw of test clips: the listed
    clips are the test, and their people are never trained on (VoxCeleb1's test split is by
    identity), on top of `unseen_identities` drawn from the others. `unseen_only`: every person
    is unseen, nothing is trained on or tested (a second dataset scored as `unseen`, Sec IV-A).
    """
    if clips.empty:
        raise GlgError(f"no clip has prepare.min_frames={config.min_frames} usable frames; "
                       "nothing to train or test on")
    clips = clips.reset_index(drop=True)
    names = sorted(clips["identity"].unique())
    keys = sorted(zip(clips["identity"], clips["video"]))
    # the test list names the training dataset's clips; an all-unseen dataset has no test split
    listed = _listed_clips(keys, test_videos, notes) if test_videos and not unseen_only else set()
    tested = {name for name, _ in listed}
    drawable = [n for n in names if n not in tested]
    n_unseen = len(names) if unseen_only else _clamp(
        config.unseen_identities, len(drawable) - 1, "unseen_identities",
        "identities (one must stay for training)", notes)
    unseen = set(names) if unseen_only else tested | set(
        _rng(seed, _UNSEEN).choice(drawable, n_unseen, replace=False).tolist())
    if 0 < len(unseen) < 2:
        note(notes, "only 1 unseen identity: no unseen-identity pairs (they need 2 people)")

    if not unseen_only and unseen >= set(names):
        raise _none_left_to_train(len(names))
    rng = _rng(seed, _TEST_CLIPS)
    from_unseen = [k for k in keys if k[0] in unseen]
    from_known = []
    for name in sorted(set(names) - unseen):
        own = [k for k in keys if k[0] == name]
        from_known += [own[i] for i in rng.permutation(len(own))[1:]]  # keep one to train on
    candidates = ([from_unseen[i] for i in rng.permutation(len(from_unseen))]
                  + [from_known[i] for i in rng.permutation(len(from_known))])
    if unseen_only or listed:
        test = listed
    else:
        n_test = _clamp(config.test_clips, len(candidates), "test_clips", "candidate clips",
                        notes)
        test = set(candidates[:n_test])

    index = {name: k for k, name in enumerate(names)}
    clips["identity_index"] = clips["identity"].map(index).astype(np.int64)
    clips["split"] = ["test" if k in test else "unseen" if k[0] in unseen else "train"
                      for k in zip(clips["identity"], clips["video"])]
    size = clips["frames"].to_numpy()
    holdout = np.minimum(np.rint(size * config.known_holdout), size - config.min_frames)
    clips["holdout"] = np.where(clips["split"] == "train", holdout, 0).astype(np.int64)

    per_person = clips.groupby("identity")
    identities = pd.DataFrame({"identity": names, "index": np.arange(len(names), dtype=np.int64)})
    identities["role"] = ["unseen" if n in unseen else "known" for n in names]
    identities["clips"] = per_person.size().reindex(names).to_numpy()
    identities["frames"] = per_person["frames"].sum().reindex(names).to_numpy()
    return clips, identities


def read_test_videos(config: PrepareConfig) -> list[str]:
    """The test clips `prepare.test_videos` lists, or the lines of `prepare.test_videos_file`
    (`<identity>/<video>` each, blank lines and `#` comments skipped); [] when neither is set."""
    if not config.test_videos_file:
        return list(config.test_videos)
    path = Path(config.test_videos_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise GlgError(f"prepare.test_videos_file: {path} is not readable ({err.strerror})"
                       ) from err
    entries = [line.split("#", 1)[0].strip() for line in lines]
    entries = [e for e in entries if e]
    if not entries:
        raise GlgError(f"prepare.test_videos_file: {path} lists no <identity>/<video> lines")
    return entries


def check_test_videos(keys: list[tuple[str, str]], entries: list[str]) -> None:
    """The checks of `assign_splits` on a test list that need only the clips in the frame store
    (`keys`), so prepare can run them before it replaces an earlier output: no entry names a
    stored clip, or the listed clips leave no one to train on."""
    listed = _listed_clips(keys, entries, [])
    names = {name for name, _ in keys}
    if {name for name, _ in listed} >= names:
        raise _none_left_to_train(len(names))


def _none_left_to_train(identities: int) -> GlgError:
    return GlgError(f"prepare.test_videos names clips of all {identities} identities: none is "
                    "left to train on")


def _listed_clips(keys: list[tuple[str, str]], entries: list[str],
                  notes: list[str]) -> set[tuple[str, str]]:
    """The clips `entries` name: an entry `<identity>/<video>` names that clip and, as a folder,
    every clip under it (`id10270/5r0dWxy17C8` is all of that YouTube video's clips)."""
    bad = [e for e in entries if "/" not in e.strip("/")]
    if bad:
        raise GlgError(f"prepare.test_videos: {bad[0]!r} is not <identity>/<video>")
    listed, unmatched = set(), []
    for entry in entries:
        entry = entry.strip("/")
        found = {k for k in keys if f"{k[0]}/{k[1]}" == entry
                 or f"{k[0]}/{k[1]}".startswith(entry + "/")}
        listed |= found
        unmatched += [] if found else [entry]
    if not listed:
        raise GlgError(f"prepare.test_videos: none of its {len(entries)} entries is a stored "
                       f"clip (first: {entries[0]!r}; clips are <identity>/<video> as in "
                       "data/frames)")
    if unmatched:
        note(notes, f"prepare.test_videos: {len(unmatched)} of {len(entries)} entries match no "
                    f"stored clip (skipped by extract or annotate?), e.g. {unmatched[0]!r}")
    return listed


def split_counts(clips: pd.DataFrame) -> dict[str, int]:
    """Frames per split (glg.store.prepared.SPLITS order) of clips from `assign_splits`."""
    frames = clips["frames"] - clips["holdout"]
    return {"train": int(frames[clips["split"] == "train"].sum()),
            "holdout": int(clips["holdout"].sum()),
            "test": int(frames[clips["split"] == "test"].sum()),
            "unseen": int(frames[clips["split"] == "unseen"].sum())}


# --- fixed evaluation pairs (Sec IV-A) -----------------------------------------------------


def evaluation_pairs(clips: pd.DataFrame, identities: pd.DataFrame, config: PrepareConfig,
                     seed: int, notes: list[str], unseen_only: bool = False) -> pd.DataFrame:
    """The fixed, seeded pairs every experiment is scored on (Sec IV-A): `scenario`,
    `source_row`, `driving_row`, from the clips and identities of `assign_splits`.

    self: two different frames of one test clip; unseen: a source frame of each unseen person
    with a driving frame of another unseen person; known: held-out frames of `known_identities`
    trained people, each as source with another known person's held-out frame as driving.
    `unseen_only`: the unseen pairs alone (a dataset nobody is trained on).
    """
    clips = clips.reset_index(drop=True)
    start, size = clips["start"].to_numpy(np.int64), clips["frames"].to_numpy(np.int64)
    test = np.flatnonzero(clips["split"] == "test")
    blocks_self = [(_rows(start[k:k + 1], size[k:k + 1]),) * 2 for k in test]
    chosen = [] if unseen_only else [_sample_pairs(_rng(seed, _SELF), blocks_self,
                                                   config.self_pairs, True, "self_pairs", notes)]
    scenario = ["self"] * sum(len(s) for s, _ in chosen)

    person = clips["identity"].to_numpy()
    unseen = np.isin(person, identities.loc[identities["role"] == "unseen", "identity"])
    people = sorted(set(person[unseen]))
    if len(people) >= 2:
        for k, name in enumerate(people):
            own, others = unseen & (person == name), unseen & (person != name)
            chosen.append(_sample_pairs(
                _rng(seed, _UNSEEN_PAIRS, k), [(_rows(start[own], size[own]),
                                                _rows(start[others], size[others]))],
                config.unseen_pairs, False, "unseen_pairs", notes))
            scenario += ["unseen"] * len(chosen[-1][0])

    held = (clips["holdout"] > 0).to_numpy()
    held_start = (start + size - clips["holdout"].to_numpy())[held]
    held_size, held_person = clips["holdout"].to_numpy()[held], clips["identity"].to_numpy()[held]
    people = sorted(set(held_person))
    if unseen_only:
        pass
    elif len(people) >= 2:
        n_known = _clamp(config.known_identities, len(people), "known_identities",
                         "known identities with held-out frames", notes)
        picked = np.sort(_rng(seed, _KNOWN_PEOPLE).choice(len(people), n_known, replace=False))
        for k in picked:
            own = held_person == people[k]
            chosen.append(_sample_pairs(
                _rng(seed, _KNOWN_PAIRS, int(k)), [(_rows(held_start[own], held_size[own]),
                                                    _rows(held_start[~own], held_size[~own]))],
                config.known_pairs, False, "known_pairs", notes))
            scenario += ["known"] * len(chosen[-1][0])
    elif config.known_pairs and config.known_identities:
        note(notes, "fewer than 2 known identities with held-out frames: no known-identity pairs")

    empty = [np.empty(0, np.int64)]
    return pd.DataFrame({"scenario": scenario,
                         "source_row": np.concatenate([s for s, _ in chosen] + empty
                                                      ).astype(np.int64),
                         "driving_row": np.concatenate([d for _, d in chosen] + empty
                                                       ).astype(np.int64)})


def _sample_pairs(rng: np.random.Generator, blocks: list[tuple[Rows, Rows]], count: int,
                  distinct: bool, key: str, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct (source, driving) row pairs drawn uniformly from the blocks' products.

    A block (S, D) offers every source in S with every driving in D, minus identical frames when
    `distinct` (then S and D are the same clip). Clamped, with a note, to what the blocks offer.
    """
    sizes = [_count(s) * (_count(d) - 1 if distinct else _count(d)) for s, d in blocks]
    total = int(sum(sizes))
    take = _clamp(count, total, key, "possible pairs", notes)
    flat = np.sort(rng.choice(total, take, replace=False)) if take < total else np.arange(total)
    starts = np.cumsum([0] + sizes)
    block = np.searchsorted(starts, flat, side="right") - 1
    source, driving = np.empty(take, np.int64), np.empty(take, np.int64)
    for b, (s, d) in enumerate(blocks):
        local = flat[block == b] - starts[b]
        width = _count(d) - 1 if distinct else _count(d)
        i, j = local // width, local % width
        if distinct:
            j = j + (j >= i)  # skip the source frame itself
        source[block == b], driving[block == b] = _row(s, i), _row(d, j)
    return source, driving


# --- row sets -------------------------------------------------------------------------------


def _rows(starts: np.ndarray, lengths: np.ndarray) -> Rows:
    return np.asarray(starts, np.int64), np.asarray(lengths, np.int64)


def _count(rows: Rows) -> int:
    return int(rows[1].sum())


def _row(rows: Rows, k: np.ndarray) -> np.ndarray:
    """The k-th rows (K,) of a row set, counting through its ranges in order."""
    starts, lengths = rows
    ends = np.cumsum(lengths)
    at = np.searchsorted(ends, k, side="right")
    return starts[at] + k - (ends[at] - lengths[at])


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
