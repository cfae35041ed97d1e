"""The five metrics (thesis 4.2, Eq. 4.1-4.4) and the first-order-model lineage's (L1, AKD, AED:
`glg.metrics.lineage`; LPIPS: `glg.metrics.lpips`) of one scenario's pairs, for the outputs of
the reenactor or of any method (`score_outputs`, `glg score`) and, in the same pass, for the two
sanity rows that need no model: the driving frame as the output (the oracle, scored exactly as
an output is, so `glg score` on the driving frames gives it: SSIM 1, PRMSE at the annotator's
own noise, and AUCON too in self-reenactment) and the source frame as the output (CSIM's
ceiling; its PRMSE and AUCON measure how far the pairs' poses and expressions lie apart).

Faces are read at `evaluate.read_size` px by a `glg.evaluate.face_reading.FaceReader`: sources and
driving frames are keyed (by prepared row or exported path), so a frame repeated across pairs is
read once.
An output is read against the AU neutral of the source's clip (it shows the source person).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple, Protocol

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from glg.annotate.aus import neutral
from glg.config import EvaluateConfig
from glg.data import EvaluationPairs, pairs_batch
from glg.errors import GlgError
from glg.evaluate.face_reading import Clip, FaceReader, Readings, measured_aus
from glg.face.landmarks import POSE_COLUMNS, rescale_points
from glg.metrics.faces import AuAgreement, Csim, PoseError, _mean, aucon, csim, prmse
from glg.metrics.images import psnr, ssim
from glg.metrics.lineage import aed, akd, l1
from glg.metrics.lpips import Lpips, load_lpips, lpips
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


class PairBatch(NamedTuple):
    """A batch of B pairs as scoring reads them, besides the outputs."""

    source: np.ndarray  # (B, S, S, 3) uint8 RGB
    driving: np.ndarray  # (B, S, S, 3) uint8 RGB
    source_clips: list[Clip]  # whose AU neutral each frame is read against (it shows them)
    driving_clips: list[Clip]
    source_keys: list[Hashable]  # FaceReader cache keys: a frame repeated is read once
    driving_keys: list[Hashable]
    driving_pose: np.ndarray  # (B, 3) degrees, as annotated: PRMSE's reference
    driving_aus: np.ndarray  # (B, 18) 0/1 in AU_IDS order, as annotated: AUCON's reference


class PairFrames(Protocol):
    """One scenario's pairs as scoring reads them: a prepared folder's (`PreparedPairs`) or an
    exported one's (`glg.evaluate.exported.ExportedPairs`)."""

    size: int  # S, the frames' side: outputs are scored at it

    def batch(self, at: Sequence[int]) -> PairBatch: ...

    def keys(self, at: Sequence[int]) -> pd.DataFrame:
        """`pair_id`, then `source_`/`driving_` `identity`, `video`, `frame` of each pair."""


def pair_id(scenario: str, index: int) -> str:
    """A pair's name: its scenario and its place in prepare's list of them (`self-000012`)."""
    return f"{scenario}-{index:06d}"


class PreparedPairs:
    """The pairs of a prepared folder's `EvaluationPairs` as scoring reads them."""

    def __init__(self, dataset: EvaluationPairs, scenario: str):
        self.dataset, self.scenario, self.frames = dataset, scenario, dataset.frames
        self.size = self.frames.size
        self.clip_keys = list(zip(self.frames.clips["identity"], self.frames.clips["video"]))

    def batch(self, at: Sequence[int]) -> PairBatch:
        rows = self.dataset.pairs[list(at)]  # (B, 2) source row, driving row
        frames = self.frames
        return PairBatch(
            np.stack([frames.image(int(r)) for r in rows[:, 0]]),
            np.stack([frames.image(int(r)) for r in rows[:, 1]]),
            [self.clip_keys[c] for c in frames.clip[rows[:, 0]]],
            [self.clip_keys[c] for c in frames.clip[rows[:, 1]]],
            rows[:, 0].tolist(), rows[:, 1].tolist(), frames.pose[rows[:, 1]],
            frames.aus[rows[:, 1]])

    def keys(self, at: Sequence[int]) -> pd.DataFrame:
        keys = pair_keys(self.frames, self.dataset.pairs[list(at)])
        keys.insert(0, "pair_id", [pair_id(self.scenario, int(i)) for i in at])
        return keys


def optional_lpips(folder: str | Path, device: torch.device, say: Callable[[str], None],
                   who: str) -> tuple[Lpips | None, str]:
    """LPIPS-Alex from `folder`, or None and why, said and returned for the backends block: its
    weights are not shipped, so the other metrics go on without it."""
    try:
        return load_lpips(folder, device), f"alexnet, LPIPS v0.1 ({folder})"
    except GlgError as err:
        say(f"{who}: LPIPS left out: {err}")
        return None, f"absent: {err}"


def backends(config: EvaluateConfig, annotator: str, lpips_backend: str) -> dict:
    """What read and scored the metrics (the JSON's `backends` block)."""
    return {"embedder": config.embedder, "annotator": annotator,
            "aus": [f"AU{au:02d}" for au in measured_aus(annotator)],
            "aus_measured": len(measured_aus(annotator)), "read_size": config.read_size,
            "pairs_cap": config.pairs, "lpips": lpips_backend}


def score_pairs(dataset: EvaluationPairs, indices: Sequence[int], model: torch.nn.Module,
                reader: FaceReader, read_size: int, batch: int, device: torch.device,
                image_metrics: bool, grid_rows: int, lpips_net: Lpips | None = None,
                scenario: str = "self") -> Scores:
    """The metrics of the reenactor's outputs for pairs `indices` of `dataset`, `batch` pairs a
    forward (`score_outputs`)."""

    def outputs(at: list[int]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            images = to_uint8(model(pairs_batch(dataset, at, device)).image)
        return images, np.ones(len(at), bool)

    return score_outputs(PreparedPairs(dataset, scenario), indices, outputs, reader, read_size,
                         batch, device, image_metrics, grid_rows, lpips_net)


def score_outputs(pairs: PairFrames, indices: Sequence[int],
                  outputs: Callable[[list[int]], tuple[np.ndarray, np.ndarray]],
                  reader: FaceReader, read_size: int, batch: int, device: torch.device,
                  image_metrics: bool, grid_rows: int, lpips_net: Lpips | None = None) -> Scores:
    """Every metric of the outputs of pairs `indices`, `batch` pairs a step, beside the sanity
    rows. `outputs(at)` gives (B, S, S, 3) uint8 images and (B,) whether each is there: one that
    is not is scored as an output without a face (image metrics NaN) and counted as `missing`.
    SSIM, PSNR, L1 and LPIPS only with `image_metrics` (self-reenactment: only there is the
    driving frame the ground truth); AED's reference is the driving frame there, else the
    source (`glg.metrics.lineage`)."""
    batches: dict[str, list] = {name: [] for name in OUTPUTS}  # output -> per-batch results
    driving_read, grid = [], []
    for start in range(0, len(indices), batch):
        at = [int(i) for i in indices[start:start + batch]]
        output, present = outputs(at)
        pair = pairs.batch(at)
        driving = resize(pair.driving, read_size)
        read = {
            "source": reader.read(resize(pair.source, read_size), pair.source_clips,
                                  pair.source_keys),
            # the source person: read against the source's neutral
            "model": _absent(reader.read(resize(output, read_size), pair.source_clips), present),
            "driving": reader.read(driving, pair.driving_clips, pair.driving_keys),
            # the oracle is scored as any output is, against the source's neutral (the keyed
            # reading is reused: only the AU rule reruns)
            "driving_as_output": reader.read(driving, pair.source_clips, pair.driving_keys),
        }
        driving_read.append(read["driving"])
        everything = np.ones(len(at), bool)
        shown = {"model": (output, read["model"], present),
                 "driving_as_output": (pair.driving, read["driving_as_output"], everything),
                 "source_as_output": (pair.source, read["source"], everything)}
        identity = read["driving" if image_metrics else "source"]  # AED's reference
        for name, (images, faces, there) in shown.items():
            scored = {"csim": csim(read["source"], faces), "prmse": prmse(faces, pair.driving_pose),
                      "aucon": aucon(faces, pair.driving_aus), "akd": akd(read["driving"], faces),
                      "aed": aed(identity, faces), "missing": ~there,
                      "no_face_driving": ~read["driving"].found}
            if image_metrics:
                images_scored = {"ssim": ssim(images, pair.driving, device),
                                 "psnr": psnr(images, pair.driving, device),
                                 "l1": l1(images, pair.driving)}
                if lpips_net is not None:
                    images_scored["lpips"] = lpips(images, pair.driving, lpips_net)
                scored |= {k: np.where(there, v, np.nan) for k, v in images_scored.items()}
            batches[name].append(scored)
        if len(grid) < grid_rows:
            grid += [np.concatenate(row, 1) for row in zip(pair.source, pair.driving, output)]
    keys = pairs.keys([int(i) for i in indices])
    summary, tables = {}, []
    for name in OUTPUTS:
        summary[name], table = _join(batches[name], image_metrics, lpips_net is not None, reader)
        tables.append(pd.concat([keys, table.assign(output=name)], axis=1))
    image = np.concatenate(grid[:grid_rows], 0) if grid else np.zeros((0, 0, 3), np.uint8)
    return Scores(summary, pd.concat(tables, ignore_index=True), image,
                  _driving_table(keys, driving_read, read_size, pairs.size))


def _absent(faces: Readings, present: np.ndarray) -> Readings:
    """`faces` with no face found where the output is not there (what was read in its place
    does not count)."""
    return faces._replace(found=faces.found & present)


def pair_keys(frames: PreparedFrames, rows: np.ndarray) -> pd.DataFrame:
    """(identity, video, frame) of each pair's source and driving rows (P, 2)."""
    columns = {}
    for k, side in enumerate(("source", "driving")):
        clips = frames.clips.iloc[frames.clip[rows[:, k]]]
        columns |= {f"{side}_identity": clips["identity"].to_numpy(),
                    f"{side}_video": clips["video"].to_numpy(),
                    f"{side}_frame": frames.frame[rows[:, k]], f"{side}_row": rows[:, k]}
    return pd.DataFrame(columns)


def _join(batches: list[dict], image_metrics: bool, with_lpips: bool,
          reader: FaceReader) -> tuple[dict, pd.DataFrame]:
    """Batches' metric results as one summary (the JSON's names) and one per-pair table; every
    metric null, and the table empty, without pairs."""
    def cat(parts: list[np.ndarray], *width: int) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros((0, *width))

    def each(key: str, field: str) -> list:
        return [getattr(b[key], field) for b in batches]

    embedder = None if reader.embedder is None else reader.embedder.name
    similarity = Csim(cat(each("csim", "per_pair")), sum(each("csim", "no_face_output")),
                      sum(each("csim", "no_face_source")), embedder)
    pose = PoseError(cat(each("prmse", "per_pair"), 3), sum(each("prmse", "no_face")),
                     reader.annotator)
    agreement = AuAgreement(cat(each("aucon", "per_pair")), sum(each("aucon", "no_face")),
                            measured_aus(reader.annotator), reader.annotator)
    akd_, aed_ = (cat([b[key] for b in batches]) for key in ("akd", "aed"))
    c, p, a = similarity.summary(), pose.summary(), agreement.summary()
    summary = {"pairs": len(similarity.per_pair), "csim": c["csim"], "csim_scored": c["scored"],
               "prmse": p["prmse"], **{f"prmse_{angle}": p[angle] for angle in POSE_COLUMNS},
               "aucon": a["aucon"], "aucon_aus": a["denominator"],
               "akd": _mean(akd_), "akd_scored": int(np.isfinite(akd_).sum()),
               "aed": _mean(aed_), "aed_scored": int(np.isfinite(aed_).sum()),
               "no_face": p["no_face"], "no_face_source": c["no_face_source"],
               "no_face_driving": int(cat([b["no_face_driving"] for b in batches]).sum()),
               "missing": int(cat([b["missing"] for b in batches]).sum())}
    table = pd.DataFrame({"csim": similarity.per_pair, "aucon": agreement.per_pair,
                          "prmse": np.sqrt(np.mean(pose.per_pair ** 2, 1)),
                          **{f"{angle}_error": pose.per_pair[:, k]
                             for k, angle in enumerate(POSE_COLUMNS)},
                          "akd": akd_, "aed": aed_})
    table["face_found"] = np.isfinite(pose.per_pair).all(1)
    table["missing"] = cat([b["missing"] for b in batches]).astype(bool)
    if image_metrics:
        for key in ("ssim", "psnr", "l1", *(("lpips",) if with_lpips else ())):
            table[key] = cat([b[key] for b in batches])
            summary[key] = _mean(table[key].to_numpy())
    return summary, table


def _driving_table(keys: pd.DataFrame, read: list[Readings], read_size: int,
                   size: int) -> pd.DataFrame:
    """Each driving frame read once: its key and what the reader found, landmarks in S px."""
    if not len(keys):
        return pd.DataFrame()
    landmarks = rescale_points(np.concatenate([f.landmarks for f in read]), read_size, size)
    table = keys.filter(like="driving_").reset_index(drop=True)
    table.columns = [c.removeprefix("driving_") for c in table.columns]
    table["found"] = np.concatenate([f.found for f in read])
    table["landmarks"] = list(landmarks)
    table[list(POSE_COLUMNS)] = np.concatenate([f.pose for f in read])
    table["au_presence"] = list(np.concatenate([f.au_presence for f in read]))
    return table.drop_duplicates(["identity", "video", "frame"]).reset_index(drop=True)
