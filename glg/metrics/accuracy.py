"""The annotator against ground truth and landmark sets against annotated ones: landmark NME,
pose RMSE, AU agreement. `annotation_accuracy` scores the annotate stage against the
synthesizer's truth; the LGAN's validation reuses the pieces (`glg.train.lgan`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from glg.face.landmarks import (
    AU_IDS,
    AU_PRESENCE,
    AU_SCORE,
    POSE_COLUMNS,
    X_COLUMNS,
    Y_COLUMNS,
    interocular,
    landmarks_from_table,
    rescale_points,
)


def nme(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-frame mean point error (M,) of (M, 68, 2) landmarks over the truth's inter-ocular
    distance."""
    return np.linalg.norm(points - truth, axis=-1).mean(-1) / interocular(truth)


def pose_rmse(angle: np.ndarray, truth: np.ndarray) -> float:
    """RMS error of one pose angle (M,) in degrees; frames where either is NaN are left out."""
    return float(np.sqrt(np.nanmean((np.asarray(angle, np.float64) - truth) ** 2)))


def au_agreement(said: np.ndarray, true: np.ndarray) -> tuple[float, float | None, float]:
    """(agreement, F1 of the positives or None without any, truth rate) of one AU's presence,
    (M,) bool each; agreement is the paper's AUCON per AU (Sec IV-C)."""
    both = int((said & true).sum())
    f1 = float(2 * both / (said.sum() + true.sum())) if said.any() or true.any() else None
    return float((said == true).mean()), f1, float(true.mean())


def annotation_accuracy(annotations: pd.DataFrame, manifest: pd.DataFrame,
                        ground_truth: pd.DataFrame | None, size: int) -> dict:
    """Landmark NME, pose RMSE per angle and per-AU agreement of annotations against the
    synthesizer's truth.

    Rows match on identity, video and the manifest's `source_frame`; ground-truth points map
    into stored-frame pixels (`size` px) through the manifest's crop box. NME is averaged over
    successful matched frames.
    """
    out: dict = {"matched_frames": 0, "nme": None, "pose_rmse": None, "au_agreement": None}
    if ground_truth is None or ground_truth.empty:
        out["note"] = "no ground truth: accuracy not measured"
        return out
    rows = annotations.merge(
        manifest[["identity", "video", "frame", "source_frame", "crop_x0", "crop_y0",
                  "crop_size"]], on=["identity", "video", "frame"], how="inner")
    truth = ground_truth.rename(columns=lambda c: f"gt_{c}" if c not in (
        "identity", "video", "frame") else c).rename(columns={"frame": "source_frame"})
    rows = rows.merge(truth, on=["identity", "video", "source_frame"], how="inner")
    out["matched_frames"] = len(rows)
    if rows.empty:
        out["note"] = "ground truth has no rows for these clips (real data): accuracy not measured"
        return out
    ok = rows[rows["success"]]
    out["matched_success_rate"] = float(len(ok) / len(rows))
    if ok.empty:
        out["note"] = "no matched frame has a successful annotation"
        return out
    crop_side = ok[["crop_size"]].to_numpy()  # (M, 1): source px -> stored px, pixel convention
    gt_x = rescale_points(ok[[f"gt_{c}" for c in X_COLUMNS]].to_numpy()
                          - ok[["crop_x0"]].to_numpy(), crop_side, size)
    gt_y = rescale_points(ok[[f"gt_{c}" for c in Y_COLUMNS]].to_numpy()
                          - ok[["crop_y0"]].to_numpy(), crop_side, size)
    error = nme(landmarks_from_table(ok), np.stack([gt_x, gt_y], -1))  # (M,)
    out["nme"] = float(error.mean())
    out["nme_median"] = float(np.median(error))
    out["pose_rmse"] = {a: pose_rmse(ok[a].to_numpy(), ok[f"gt_{a}"].to_numpy())
                        for a in POSE_COLUMNS if f"gt_{a}" in ok}
    # Most frames show few AUs, so the share of frames the truth marks present and the F1 of
    # the positives are reported beside the agreement.
    agreement, f1, truth_rate = {}, {}, {}
    for au, c, r in zip(AU_IDS, AU_PRESENCE, AU_SCORE):
        name = f"AU{au:02d}"
        if f"gt_{c}" not in ok or ok[r].isna().all():
            agreement[name] = f1[name] = truth_rate[name] = None  # no truth, or not measured
            continue
        agreement[name], f1[name], truth_rate[name] = au_agreement(
            ok[c].to_numpy() == 1, ok[f"gt_{c}"].to_numpy() == 1)
    out["au_agreement"], out["au_f1"], out["au_truth_rate"] = agreement, f1, truth_rate
    return out
