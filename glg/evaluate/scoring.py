"""The five metrics (thesis 4.2, Eq. 4.1-4.4) of one scenario's pairs, for the reenactor's outputs
and, in the same pass, for the two sanity rows that need no model: the driving frame as the
output (the oracle: SSIM 1, PRMSE and AUCON at the annotator's own noise) and the source frame
as the output (CSIM's ceiling; its PRMSE and AUCON measure how far the pairs' poses and
expressions lie apart).

Faces are read at `evaluate.read_size` px by a `glg.evaluate.face_reading.FaceReader`: sources and
driving frames are keyed by their prepared row, so a frame repeated across pairs is read once.
An output is read against the AU neutral of the source's clip (it shows the source person).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import pandas as pd
import torch

from glg.annotate.aus import neutral
from glg.data import EvaluationPairs, pairs_batch
from glg.evaluate.face_reading import Clip, FaceReader, Readings
from glg.face.landmarks import POSE_COLUMNS, rescale_points
from glg.metrics.faces import AuAgreement, Csim, PoseError, aucon, csim, prmse
from glg.metrics.images import psnr, ssim
from glg.store.prepared import PreparedFrames

# What stands in as "the output" in each row: the reenactor's, or a sanity row's frame.
OUTPUTS = ("model", "driving_as_output", "source_as_output")


class Scores(NamedTuple):
    """One scenario's metrics of every row of OUTPUTS, per pair and summarised."""

    summary: dict[str, dict]  # output -> metric name -> value (the metrics JSON's numbers)
    per_pair: pd.DataFrame  # one row per pair and output: keys and every metric
    grid: np.ndarray  # (rows x S, 3 x S, 3) uint8: source | driving | output
    driving: pd.DataFrame  # the driving frames read: key, found, landmarks (S px), pose, AUs


def clip_neutrals_of(frames: PreparedFrames) -> dict[Clip, dict[str, float]]:
    """Each prepared clip's AU neutral from its stored landmarks: the successful annotated frames
    the clip kept (the geometry is scale-free, so S px landmarks give annotate's baseline)."""
    return {(str(i), str(v)): neutral(np.asarray(frames.landmarks[frames.clip == c], np.float64))
            for c, (i, v) in enumerate(zip(frames.clips["identity"], frames.clips["video"]))}


def subset(count: int, cap: int) -> np.ndarray:
    """`cap` pair indices spread evenly over prepare's list (grouped by source), all when 0."""
    if cap == 0 or cap >= count:
        return np.arange(count)
    return np.linspace(0, count - 1, cap).round().astype(np.int64)  # distinct: step >= 1


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) in [-1, 1] -> (B, S, S, 3) uint8 RGB on the CPU."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu(
    ).numpy()


def resize(images: np.ndarray, side: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, side, side, 3): bilinear up, area down (pixel convention:
    `glg.face.landmarks`); unchanged when S is `side`."""
    if images.shape[1] == side:
        return images
    method = cv2.INTER_LINEAR if side > images.shape[1] else cv2.INTER_AREA
    return np.stack([cv2.resize(im, (side, side), interpolation=method) for im in images])


def score_pairs(dataset: EvaluationPairs, indices: Sequence[int], model: torch.nn.Module,
                reader: FaceReader, read_size: int, batch: int, device: torch.device,
                image_metrics: bool, grid_rows: int) -> Scores:
    """The metrics of pairs `indices` of `dataset`, `batch` pairs a forward; SSIM and PSNR only
    with `image_metrics` (self-reenactment: only there is the driving frame the ground truth)."""
    frames = dataset.frames
    clip_keys = list(zip(frames.clips["identity"], frames.clips["video"]))
    batches: dict[str, list] = {name: [] for name in OUTPUTS}  # output -> per-batch results
    driving_read, grid = [], []
    for start in range(0, len(indices), batch):
        at = list(indices[start:start + batch])
        rows = dataset.pairs[at]  # (B, 2) source row, driving row
        with torch.no_grad():
            output = to_uint8(model(pairs_batch(dataset, at, device)).image)
        source = np.stack([frames.image(int(r)) for r in rows[:, 0]])
        driving = np.stack([frames.image(int(r)) for r in rows[:, 1]])
        source_clips = [clip_keys[c] for c in frames.clip[rows[:, 0]]]
        driving_clips = [clip_keys[c] for c in frames.clip[rows[:, 1]]]
        read = {
            "source": reader.read(resize(source, read_size), source_clips, rows[:, 0].tolist()),
            "model": reader.read(resize(output, read_size), source_clips),  # the source person
            "driving": reader.read(resize(driving, read_size), driving_clips,
                                   rows[:, 1].tolist()),
        }
        driving_read.append((rows[:, 1], read["driving"]))
        pose, aus = frames.pose[rows[:, 1]], frames.aus[rows[:, 1]]
        shown = {"model": (output, read["model"]), "driving_as_output": (driving, read["driving"]),
                 "source_as_output": (source, read["source"])}
        for name, (images, faces) in shown.items():
            batches[name].append((
                csim(read["source"], faces), prmse(faces, pose), aucon(faces, aus),
                ssim(images, driving, device) if image_metrics else None,
                psnr(images, driving, device) if image_metrics else None))
        if len(grid) < grid_rows:
            grid += [np.concatenate(row, 1) for row in zip(source, driving, output)]
    keys = pair_keys(frames, dataset.pairs[list(indices)])
    summary, tables = {}, []
    for name in OUTPUTS:
        summary[name], table = _join(batches[name], image_metrics)
        tables.append(pd.concat([keys, table.assign(output=name)], axis=1))
    image = np.concatenate(grid[:grid_rows], 0) if grid else np.zeros((0, 0, 3), np.uint8)
    return Scores(summary, pd.concat(tables, ignore_index=True), image,
                  _driving_table(frames, driving_read, read_size))


def pair_keys(frames: PreparedFrames, rows: np.ndarray) -> pd.DataFrame:
    """(identity, video, frame) of each pair's source and driving rows (P, 2)."""
    columns = {}
    for k, side in enumerate(("source", "driving")):
        clips = frames.clips.iloc[frames.clip[rows[:, k]]]
        columns |= {f"{side}_identity": clips["identity"].to_numpy(),
                    f"{side}_video": clips["video"].to_numpy(),
                    f"{side}_frame": frames.frame[rows[:, k]], f"{side}_row": rows[:, k]}
    return pd.DataFrame(columns)


def _join(batches: list[tuple], image_metrics: bool) -> tuple[dict, pd.DataFrame]:
    """Batches' metric results as one summary (the JSON's names) and one per-pair table."""
    similarity = Csim(np.concatenate([b[0].per_pair for b in batches]),
                      sum(b[0].no_face_output for b in batches),
                      sum(b[0].no_face_source for b in batches), batches[0][0].backend)
    pose = PoseError(np.concatenate([b[1].per_pair for b in batches]),
                     sum(b[1].no_face for b in batches), batches[0][1].annotator)
    agreement = AuAgreement(np.concatenate([b[2].per_pair for b in batches]),
                            sum(b[2].no_face for b in batches), batches[0][2].aus,
                            batches[0][2].annotator)
    c, p, a = similarity.summary(), pose.summary(), agreement.summary()
    summary = {"pairs": len(similarity.per_pair), "csim": c["csim"], "csim_scored": c["scored"],
               "prmse": p["prmse"], **{f"prmse_{angle}": p[angle] for angle in POSE_COLUMNS},
               "aucon": a["aucon"], "aucon_aus": a["denominator"],
               "no_face": p["no_face"], "no_face_source": c["no_face_source"]}
    table = pd.DataFrame({"csim": similarity.per_pair, "aucon": agreement.per_pair,
                          "prmse": np.sqrt(np.mean(pose.per_pair ** 2, 1)),
                          **{f"{angle}_error": pose.per_pair[:, k]
                             for k, angle in enumerate(POSE_COLUMNS)}})
    table["face_found"] = np.isfinite(pose.per_pair).all(1)
    if image_metrics:
        table["ssim"] = np.concatenate([b[3] for b in batches])
        table["psnr"] = np.concatenate([b[4] for b in batches])
        summary["ssim"], summary["psnr"] = float(table["ssim"].mean()), float(table["psnr"].mean())
    return summary, table


def _driving_table(frames: PreparedFrames, read: list[tuple[np.ndarray, Readings]],
                   read_size: int) -> pd.DataFrame:
    """Each driving frame read once: its key and what the reader found, landmarks in S px."""
    rows = np.concatenate([r for r, _ in read]) if read else np.zeros(0, np.int64)
    if not len(rows):
        return pd.DataFrame()
    faces = [f for _, f in read]
    found = np.concatenate([f.found for f in faces])
    landmarks = rescale_points(np.concatenate([f.landmarks for f in faces]), read_size,
                               frames.size)
    table = pair_keys(frames, np.stack([rows, rows], 1)).filter(like="driving_")
    table.columns = [c.removeprefix("driving_") for c in table.columns]
    table["found"] = found
    table["landmarks"] = list(landmarks)
    table[list(POSE_COLUMNS)] = np.concatenate([f.pose for f in faces])
    table["au_presence"] = list(np.concatenate([f.au_presence for f in faces]))
    return table.drop_duplicates("row").reset_index(drop=True)
