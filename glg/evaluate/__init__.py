"""The evaluation stage (thesis 4.2, Eq. 4.1-4.4; paper Sec IV-A, IV-C): the trained reenactor on
the fixed pairs of each scenario (self, unseen, known), scored by CSIM, SSIM, PSNR, PRMSE and
AUCON, beside the sanity rows of the same pairs (`glg.evaluate.scoring`).

Writes `metrics/evaluate.json` keyed by scenario (and by extra dataset: `{"celebv": {"unseen":
...}}`), `metrics/evaluate_sanity.json` (the sanity rows and, with synthetic ground truth, the
annotator's own error on the evaluated driving frames), the per-pair table
`data/evaluate/pairs.parquet` and the figures (`glg.evaluate.figures`). The guiding landmarks
are the checkpoint's `model.landmark_mode`'s; with `lgan` they are g(source identity, driving
pose, driving AUs) (thesis Eq. 3.4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from glg.config import EvaluateConfig
from glg.data import EvaluationPairs, knows_trained_people_only
from glg.errors import GlgError, reading
from glg.evaluate.face_id import make_embedder
from glg.evaluate.face_reading import FaceReader, measured_aus
from glg.evaluate.figures import write_distributions, write_grid
from glg.evaluate.scoring import (OUTPUTS, backends, clip_neutrals_of, optional_lpips,
                                  score_pairs, subset)
from glg.face.landmarks import AU_IDS, AU_PRESENCE, AU_SCORE, POSE_COLUMNS, X_COLUMNS, Y_COLUMNS
from glg.metrics import write_metrics
from glg.metrics.accuracy import annotation_accuracy
from glg.models import pick_device
from glg.store.frames import read_manifest
from glg.store.networks import load_landmark_generator, load_reenactor
from glg.store.prepared import PAIRS, SCENARIOS

PAIRS_TABLE = "pairs.parquet"  # under the stage's data folder, one row per pair and output
DISTRIBUTIONS = "distributions.png"  # under the figures folder, beside grids/<scenario>.png


def evaluate(prepared_dir: Path, reenact_dir: Path, lgan_dir: Path, out_dir: Path,
             metrics_path: Path, sanity_path: Path, figures_dir: Path, config: EvaluateConfig,
             annotator: str, extras: Mapping[str, Path] | None = None,
             ground_truth: Path | None = None, frames_dir: Path | None = None,
             say: Callable[[str], None] = print) -> dict:
    """Score the reenactor on `prepared_dir`'s scenarios and on each extra prepared dataset's
    unseen pairs; write the metrics, sanity rows, per-pair table and figures; return the
    metrics."""
    extras = dict(extras or {})
    for name in extras:
        if name in (*SCENARIOS, "backends") or not name.isidentifier():
            raise GlgError(f"--extra {name}: a dataset name must be a plain word other than "
                           f"{', '.join(SCENARIOS)} and backends")
    for folder in (prepared_dir, *extras.values()):
        if not (Path(folder) / PAIRS).is_file():
            raise GlgError(f"{Path(folder) / PAIRS}: evaluation pairs not found (run prepare "
                           "first)")
    device = pick_device(config.device, "evaluate.device")
    if device.type == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    model = load_reenactor(reenact_dir).to(device)
    mode = model.config.landmark_mode
    if extras and mode == "lgan":
        raise GlgError(f"--extra {next(iter(extras))}: the reenactor's model.landmark_mode is "
                       "lgan, whose generator knows people by the training set's identity "
                       "table; another dataset's people are not in it (use driving or lst)")
    lgan = load_landmark_generator(lgan_dir, prepared_dir) if mode == "lgan" else None
    # learned identity vectors train on the training split's people only: a source of another
    # is guided by paper Eq. 3 instead (glg.data.EvaluationPairs); counted and recorded
    learned = lgan is not None and knows_trained_people_only(lgan)
    untrained: dict[str, int] = {}
    embedder = make_embedder(config.embedder, config.arcface_weights, device)
    lpips_net, lpips_backend = optional_lpips(config.lpips_weights, device, say, "evaluate")
    truth = _ground_truth(ground_truth, frames_dir, say)

    metrics: dict = {}
    sanity: dict = {}
    tables, grids = [], {}
    datasets = [("main", Path(prepared_dir), SCENARIOS), *((n, Path(d), ("unseen",))
                                                           for n, d in extras.items())]
    for name, folder, scenarios in datasets:
        reader = None
        for scenario in scenarios:
            pairs = EvaluationPairs(folder, scenario, mode, lgan if name == "main" else None)
            if pairs.frames.size != model.size:
                raise GlgError(f"{folder}: frames are {pairs.frames.size} px but the reenactor "
                               f"was trained at {model.size} px (prepare.image_px)")
            reader = reader or FaceReader(annotator, embedder, clip_neutrals_of(pairs.frames),
                                          str(device))
            indices = subset(len(pairs), config.pairs)
            say(f"evaluate: {name} {scenario}: {len(indices)} of {len(pairs)} pairs")
            if learned and name == "main":
                untrained[scenario] = int(pairs.untrained[indices].sum())
                if untrained[scenario]:
                    say(f"evaluate: main {scenario}: {untrained[scenario]} of {len(indices)} "
                        "pairs' sources were never trained on, so the LGAN has no identity "
                        "vector for them (lgan.identity_input: embedding): guided by lst "
                        "(paper Eq. 3), as glg reenact does")
            scores = score_pairs(pairs, indices, model, reader, config.read_size, config.batch,
                                 device, scenario == "self", config.grid_rows, lpips_net, scenario)
            row = {o: scores.summary[o] for o in OUTPUTS[1:]}
            if truth is not None and len(scores.driving):
                row["annotator_vs_truth"] = _annotator_vs_truth(scores.driving, *truth,
                                                                pairs.frames.size, annotator)
            target = (metrics, sanity) if name == "main" else (
                metrics.setdefault(name, {}), sanity.setdefault(name, {}))
            target[0][scenario], target[1][scenario] = scores.summary["model"], row
            tables.append(scores.per_pair.assign(dataset=name, scenario=scenario))
            grids[scenario if name == "main" else f"{name}_{scenario}"] = scores.grid

    read_by = backends(config, annotator, lpips_backend) | {"landmark_mode": mode}
    if learned:  # pairs guided by lst, not the LGAN
        read_by["lgan_untrained_sources"] = untrained
    metrics["backends"] = sanity["backends"] = read_by
    write_metrics(metrics_path, metrics)
    write_metrics(sanity_path, sanity)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_pair = pd.concat(tables, ignore_index=True)
    per_pair.to_parquet(out_dir / PAIRS_TABLE, index=False)
    for key, grid in grids.items():
        write_grid(figures_dir / "grids" / f"{key}.png", grid)
    write_distributions(figures_dir / DISTRIBUTIONS, per_pair[per_pair["dataset"] == "main"])
    return metrics




def _ground_truth(path: Path | None, frames_dir: Path | None,
                  say: Callable[[str], None]) -> tuple | None:
    """(ground truth, extract's manifest) when the synthesizer's truth is there, else None
    (said: a mistyped path must not pass for data without truth)."""
    if path is None:
        return None
    if not Path(path).is_file():
        say(f"evaluate: no ground truth at {path}: the annotator's own error not measured")
        return None
    if frames_dir is None:
        raise GlgError(f"{path}: scoring against ground truth needs --frames (extract's "
                       "manifest maps the truth into the frames)")
    manifest = read_manifest(frames_dir, ["identity", "video", "frame", "source_frame",
                                          "crop_x0", "crop_y0", "crop_size"])
    with reading(path, "ground-truth table"):
        return pd.read_parquet(path), manifest


def _annotator_vs_truth(driving: pd.DataFrame, truth: pd.DataFrame, manifest: pd.DataFrame,
                        size: int, annotator: str) -> dict:
    """The annotator's own error on the driving frames as they are read as outputs (each alone,
    at read_size) against the synthesizer's truth: the floor under PRMSE and AUCON."""
    landmarks = np.stack(driving["landmarks"].to_numpy())  # (M, 68, 2), S px
    presence = np.stack(driving["au_presence"].to_numpy())  # (M, 18)
    measured = measured_aus(annotator)
    columns = {"identity": driving["identity"], "video": driving["video"],
               "frame": driving["frame"], "success": driving["found"],
               **{c: driving[c] for c in POSE_COLUMNS},
               **dict(zip(X_COLUMNS, landmarks[:, :, 0].T)),
               **dict(zip(Y_COLUMNS, landmarks[:, :, 1].T)),
               **dict(zip(AU_PRESENCE, presence.T))}
    # annotation_accuracy skips an AU whose scores are all NaN: the unmeasured ones
    columns |= {s: np.where(au in measured, presence[:, k].astype(np.float32), np.nan)
                for k, (au, s) in enumerate(zip(AU_IDS, AU_SCORE))}
    accuracy = annotation_accuracy(pd.DataFrame(columns), manifest, truth, size)
    if accuracy.get("pose_rmse") is None:
        return {"frames": accuracy["matched_frames"], "note": accuracy.get("note")}
    pose = accuracy["pose_rmse"]
    agreement = [v for v in accuracy["au_agreement"].values() if v is not None]
    return {"frames": accuracy["matched_frames"], "found": accuracy["matched_success_rate"],
            "prmse": float(np.sqrt(np.mean(np.square(list(pose.values()))))),
            **{f"prmse_{a}": v for a, v in pose.items()},
            "aucon": float(np.mean(agreement)) if agreement else None,
            "aucon_aus": len(agreement), "nme": accuracy["nme"]}
