"""`glg score`: any method's outputs of a scenario's fixed pairs, scored by the evaluate stage's
own code (`glg.evaluate.scoring.score_outputs`) into the evaluate stage's JSON layout.

The outputs are a folder of `<pair id>.png`, one per pair of a prepared folder (the pairs the
evaluate stage scores, `evaluate.pairs` of them) or of an exported one (every pair it lists).
An image of any size is resized to the pairs' side as `glg.evaluate.scoring.resize` does the
reenactor's (then read at `evaluate.read_size`, as the stage reads its outputs). An output that
is missing or unreadable is a failure: scored as an output without a face, counted in `missing`
(and `no_face`), named in the per-pair table; never skipped.

Writes to the output folder `evaluate.json` (scenario -> the method's row, `backends` naming
the method), `evaluate_sanity.json` (the sanity rows of the same pairs) and `pairs.parquet`; a
later scenario scored into the same folder joins the earlier ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from glg.config import EvaluateConfig
from glg.data import EvaluationPairs
from glg.errors import GlgError, reading
from glg.evaluate import PAIRS_TABLE
from glg.evaluate.exported import EXPORT, ExportedPairs
from glg.evaluate.scoring import (OUTPUTS, PairFrames, PreparedPairs, backends, clip_neutrals_of,
                                  optional_lpips, score_outputs, subset)
from glg.evaluate.face_id import make_embedder
from glg.evaluate.face_reading import FaceReader
from glg.metrics import write_metrics
from glg.models import pick_device
from glg.store.prepared import PAIRS, SCENARIOS

METRICS_FILE, SANITY_FILE = "evaluate.json", "evaluate_sanity.json"
# backends that must agree for scenarios scored into one folder to stand in one table
SAME_BACKENDS = ("method", "embedder", "annotator", "read_size", "lpips")


def read_output(path: Path, side: int) -> np.ndarray | None:
    """The (side, side, 3) uint8 RGB output at `path`, resized as the reenactor's outputs are
    for scoring (`glg.evaluate.scoring.resize`); None when it is missing or unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        return None
    if image.shape[:2] != (side, side):
        grow = image.shape[0] < side or image.shape[1] < side
        image = cv2.resize(image, (side, side),
                           interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _pairs(folder: Path, scenario: str, cap: int) -> tuple[PairFrames, np.ndarray, dict]:
    """The pairs of a prepared or exported folder, the indices scored and the clips' AU
    neutrals."""
    if scenario not in SCENARIOS:
        raise GlgError(f"--scenario {scenario}: expected one of {', '.join(SCENARIOS)}")
    if (folder / PAIRS).is_file():
        dataset = EvaluationPairs(folder, scenario)
        return (PreparedPairs(dataset, scenario), subset(len(dataset), cap),
                clip_neutrals_of(dataset.frames))
    exported = ExportedPairs(folder)
    if exported.scenario != scenario:
        raise GlgError(f"{folder / EXPORT}: pairs of scenario {exported.scenario}, but "
                       f"--scenario {scenario}")
    return exported, np.arange(len(exported)), exported.neutrals


def score(outputs_dir: Path, pairs_dir: Path, scenario: str, method: str, out_dir: Path,
          config: EvaluateConfig, annotator: str,
          say: Callable[[str], None] = print) -> dict:
    """Score `method`'s outputs in `outputs_dir` on `scenario`'s pairs of `pairs_dir`; write the
    metrics, sanity rows and per-pair table to `out_dir`; return the method's row."""
    outputs_dir, pairs_dir, out_dir = Path(outputs_dir), Path(pairs_dir), Path(out_dir)
    if not method.strip():
        raise GlgError("--method: name the method whose outputs these are")
    if not outputs_dir.is_dir():
        raise GlgError(f"{outputs_dir}: no such folder of outputs (<pair id>.png)")
    pairs, indices, neutrals = _pairs(pairs_dir, scenario, config.pairs)
    earlier = _earlier(out_dir, method)
    device = pick_device(config.device, "evaluate.device")
    if device.type == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    reader = FaceReader(annotator, make_embedder(config.embedder, config.arcface_weights, device),
                        neutrals, str(device))
    lpips_net, lpips_backend = optional_lpips(config.lpips_weights, device, say, "score")
    read_by = backends(config, annotator, lpips_backend) | {
        "method": method, "pairs_from": str(pairs_dir), "outputs": str(outputs_dir)}
    _check_same(out_dir, earlier[0].get("backends", {}), read_by)
    ids = list(pairs.keys(indices)["pair_id"])
    position = {int(i): k for k, i in enumerate(indices)}
    absent: list[str] = []

    def outputs(at: list[int]) -> tuple[np.ndarray, np.ndarray]:
        images = [read_output(outputs_dir / f"{ids[position[i]]}.png", pairs.size) for i in at]
        absent.extend(ids[position[i]] for i, image in zip(at, images) if image is None)
        blank = np.zeros((pairs.size, pairs.size, 3), np.uint8)  # read, then not counted
        return (np.stack([blank if image is None else image for image in images]),
                np.array([image is not None for image in images]))

    say(f"score: {method}: {scenario}: {len(indices)} pairs of {pairs_dir}")
    scores = score_outputs(pairs, indices, outputs, reader, config.read_size, config.batch, device,
                           scenario == "self", config.grid_rows, lpips_net)
    if absent:
        say(f"score: {len(absent)} of {len(indices)} outputs missing or unreadable, counted as "
            f"failures (first: {outputs_dir / absent[0]}.png)")
    metrics, sanity, table = earlier
    metrics[scenario] = scores.summary["model"]
    sanity[scenario] = {o: scores.summary[o] for o in OUTPUTS[1:]}
    metrics["backends"] = sanity["backends"] = read_by
    write_metrics(out_dir / METRICS_FILE, metrics)
    write_metrics(out_dir / SANITY_FILE, sanity)
    per_pair = scores.per_pair.assign(scenario=scenario, method=method)
    if table is not None:
        per_pair = pd.concat([table[table["scenario"] != scenario], per_pair], ignore_index=True)
    per_pair.to_parquet(out_dir / PAIRS_TABLE, index=False)
    return metrics[scenario]


def _earlier(out_dir: Path, method: str) -> tuple[dict, dict, pd.DataFrame | None]:
    """What an earlier `glg score` of `method` wrote to `out_dir` (its other scenarios)."""
    found = []
    for name in (METRICS_FILE, SANITY_FILE):
        path = out_dir / name
        if not path.is_file():
            found.append({})
            continue
        with reading(path, "glg score result"):
            found.append(json.loads(path.read_text()))
        was = found[-1].get("backends", {}).get("method") if isinstance(found[-1], dict) else None
        if was != method:
            raise GlgError(f"{path}: holds the scores of {was!r}, not {method!r}; use another "
                           "--out")
    table = None
    if (out_dir / PAIRS_TABLE).is_file():
        with reading(out_dir / PAIRS_TABLE, "per-pair table"):
            table = pd.read_parquet(out_dir / PAIRS_TABLE)
    return found[0], found[1], table


def _check_same(out_dir: Path, was: dict, now: dict) -> None:
    """Scenarios of one folder must be scored alike, or their rows would not compare."""
    for key in SAME_BACKENDS:
        if was and was.get(key) != now.get(key):
            raise GlgError(f"{out_dir / METRICS_FILE}: scored with {key} {was.get(key)!r}, now "
                           f"{now.get(key)!r}; use another --out")
