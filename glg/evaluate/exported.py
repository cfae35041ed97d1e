"""A scenario's fixed pairs as a folder any method can read (`glg pairs export`), and that folder
read back for scoring (`ExportedPairs`, `glg score`):

- `frames/<identity>/<video>/<frame>.png`: each source and driving frame once, RGB, lossless, at
  the side asked for (at the prepared side: the prepared JPEG's pixels as decoded);
- `pairs.csv`: `pair_id`, `source_path`, `driving_path` (relative to the folder), then each
  side's `identity`, `video` and `frame`; a method writes its output of a pair as
  `<pair_id>.png`;
- `reference.parquet`: what scoring compares with, per pair: the driving frame's annotated
  pose (`driving_pitch`, ...) and AU presence (`driving_AU01_c`, ...), float32 as prepared;
- `export.json`: the scenario, the side, the prepared side, and each clip's AU neutral
  (`glg.evaluate.scoring.clip_neutrals_of`), so a folder scores without its prepared data.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from glg.data import EvaluationPairs
from glg.errors import GlgError, reading
from glg.evaluate.scoring import PairBatch, clip_neutrals_of, pair_id, resize, subset
from glg.face.landmarks import AU_PRESENCE, POSE_COLUMNS
from glg.store.prepared import SCENARIOS

PAIRS_CSV = "pairs.csv"
REFERENCE = "reference.parquet"
EXPORT = "export.json"
FRAMES = "frames"
SIDES = ("source", "driving")
KEY_COLUMNS = [f"{side}_{k}" for side in SIDES for k in ("identity", "video", "frame")]
REFERENCE_COLUMNS = [f"driving_{c}" for c in (*POSE_COLUMNS, *AU_PRESENCE)]


def frame_path(identity: str, video: str, frame: int) -> str:
    """Where a frame lies in an exported folder, relative to it."""
    for name in (identity, video):
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise GlgError(f"identity or video {name!r}: not usable as a folder name")
    return f"{FRAMES}/{identity}/{video}/{frame:06d}.png"


def export_pairs(prepared_dir: Path, scenario: str, out_dir: Path, side: int = 0,
                 cap: int = 0) -> int:
    """Write `scenario`'s pairs of `prepared_dir` (`cap` of them spread over prepare's list as
    the evaluate stage picks them, all when 0) to `out_dir` at `side` px (0: the prepared side);
    returns the number of pairs."""
    dataset = EvaluationPairs(prepared_dir, scenario)
    frames = dataset.frames
    side = side or frames.size
    if side < 1:
        raise GlgError(f"--size {side}: expected a side in px >= 1 (0: the prepared side)")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / EXPORT).is_file():
        raise GlgError(f"{out_dir}: not empty and not an exported pairs folder; name a new one")
    for name in (FRAMES, PAIRS_CSV, REFERENCE, EXPORT):  # a previous export's files only
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    indices = subset(len(dataset), cap)
    rows = dataset.pairs[indices]  # (P, 2)
    table = pd.DataFrame({"pair_id": [pair_id(scenario, int(i)) for i in indices]})
    for k, side_name in enumerate(SIDES):
        keys = [frames.key(int(r)) for r in rows[:, k]]
        table[f"{side_name}_path"] = [frame_path(str(i), str(v), f) for i, v, f in keys]
    for k, side_name in enumerate(SIDES):
        keys = [frames.key(int(r)) for r in rows[:, k]]
        for j, name in enumerate(("identity", "video", "frame")):
            table[f"{side_name}_{name}"] = [key[j] for key in keys]
    for row, path in {**dict(zip(rows[:, 0], table["source_path"])),
                      **dict(zip(rows[:, 1], table["driving_path"]))}.items():
        image = resize(frames.image(int(row))[None], side)[0]
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out_dir / path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise GlgError(f"{out_dir / path}: OpenCV could not write the PNG")
    reference = pd.DataFrame(np.concatenate([frames.pose[rows[:, 1]], frames.aus[rows[:, 1]]], 1),
                             columns=REFERENCE_COLUMNS)
    reference.insert(0, "pair_id", table["pair_id"])
    table.to_csv(out_dir / PAIRS_CSV, index=False)
    reference.to_parquet(out_dir / REFERENCE, index=False)
    neutrals = [{"identity": i, "video": v, "neutral": n}
                for (i, v), n in clip_neutrals_of(frames).items()]
    (out_dir / EXPORT).write_text(json.dumps(
        {"scenario": scenario, "size": side, "prepared_size": frames.size, "pairs": len(table),
         "prepared": str(prepared_dir), "neutrals": neutrals}, indent=2) + "\n")
    return len(table)


class ExportedPairs:
    """The pairs of an exported folder as scoring reads them (`glg.evaluate.scoring.PairFrames`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        path = self.folder / EXPORT
        if not path.is_file():
            raise GlgError(f"{path}: not found; --pairs takes a prepared folder (pairs.parquet) "
                           "or one `glg pairs export` wrote")
        with reading(path, "pairs export description"):
            about = json.loads(path.read_text())
        try:
            self.scenario, self.size = str(about["scenario"]), int(about["size"])
            self.neutrals = {(str(n["identity"]), str(n["video"])): dict(n["neutral"])
                             for n in about["neutrals"]}
        except (KeyError, TypeError, ValueError) as err:
            raise GlgError(f"{path}: not what `glg pairs export` writes (no {err})") from None
        if self.scenario not in SCENARIOS:
            raise GlgError(f"{path}: scenario {self.scenario!r}, expected one of "
                           f"{', '.join(SCENARIOS)}")
        with reading(self.folder / PAIRS_CSV, "pair table"):
            self.table = pd.read_csv(self.folder / PAIRS_CSV, dtype={
                c: str for c in ("pair_id", "source_path", "driving_path", "source_identity",
                                 "source_video", "driving_identity", "driving_video")})
        with reading(self.folder / REFERENCE, "pair reference table"):
            reference = pd.read_parquet(self.folder / REFERENCE)
        missing = [c for c in ("pair_id", "source_path", "driving_path", *KEY_COLUMNS)
                   if c not in self.table]
        missing += [c for c in REFERENCE_COLUMNS if c not in reference]
        if missing:
            raise GlgError(f"{self.folder}: column {missing[0]} missing from {PAIRS_CSV} or "
                           f"{REFERENCE}; export the pairs again")
        if list(reference["pair_id"]) != list(self.table["pair_id"]):
            raise GlgError(f"{self.folder / REFERENCE}: its pairs are not those of {PAIRS_CSV}; "
                           "export the pairs again")
        self.pose = reference[REFERENCE_COLUMNS[:3]].to_numpy(np.float64)  # (P, 3)
        self.aus = reference[REFERENCE_COLUMNS[3:]].to_numpy(np.float64)  # (P, 18)

    def __len__(self) -> int:
        return len(self.table)

    def _images(self, paths: Sequence[str]) -> np.ndarray:
        images = []
        for path in paths:
            image = cv2.imread(str(self.folder / path), cv2.IMREAD_COLOR)
            if image is None:
                raise GlgError(f"{self.folder / path}: exported frame missing or unreadable")
            if image.shape[:2] != (self.size, self.size):
                raise GlgError(f"{self.folder / path}: {image.shape[1]}x{image.shape[0]} px, "
                               f"but {EXPORT} says {self.size} px")
            images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        return np.stack(images)

    def batch(self, at: Sequence[int]) -> PairBatch:
        rows = self.table.iloc[list(at)]
        clips = {side: list(zip(rows[f"{side}_identity"], rows[f"{side}_video"]))
                 for side in SIDES}
        return PairBatch(self._images(rows["source_path"]), self._images(rows["driving_path"]),
                         clips["source"], clips["driving"], list(rows["source_path"]),
                         list(rows["driving_path"]), self.pose[list(at)], self.aus[list(at)])

    def keys(self, at: Sequence[int]) -> pd.DataFrame:
        return self.table.iloc[list(at)][["pair_id", *KEY_COLUMNS]].reset_index(drop=True)
