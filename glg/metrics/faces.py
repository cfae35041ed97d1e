"""CSIM, PRMSE and AUCON (thesis 4.2, Eq. 4.1 and 4.4; paper Sec IV-C) on what a
`glg.evaluate.face_reading.FaceReader` read (`FaceReadings`). A pair whose output (or, for CSIM,
source) shows no face is NaN in `per_pair`, counted in `no_face`, and every `summary()` reports both
counts beside the mean."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from glg.errors import GlgError
from glg.face.landmarks import AU_IDS, POSE_COLUMNS


class FaceReadings(Protocol):
    """What the face metrics read of N images (`glg.evaluate.face_reading.Readings` is one)."""

    found: np.ndarray  # (N,) bool
    pose: np.ndarray  # (N, 3) degrees
    au_presence: np.ndarray  # (N, 18) 0/1, AU_IDS order
    embedding: np.ndarray  # (N, D) unit rows, NaN where no face
    annotator: str
    embedder: str | None
    measured_aus: tuple[int, ...]


def _check_rows(name: str, values: np.ndarray, n: int, width: int) -> np.ndarray:
    """`values` as a float64 (n, width) array, or a one-line `GlgError` naming it."""
    values = np.asarray(values, np.float64)
    if values.shape != (n, width):
        raise GlgError(f"{name}: expected shape ({n}, {width}), got {values.shape}")
    return values


def _mean(values: np.ndarray) -> float | None:
    """Mean over the finite values; None (JSON null) when there is none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


class Csim(NamedTuple):
    """CSIM (thesis Eq. 4.1) of N (source, output) pairs."""

    per_pair: np.ndarray  # (N,) cosine similarity; NaN where the source or output has no face
    no_face_output: int  # outputs with no face found: unscored, counted here
    no_face_source: int  # sources with no face found: unscored, counted here
    backend: str  # the face-recognition embedder

    def summary(self) -> dict:
        """Mean over the scored pairs (JSON null without any), beside the unscored counts."""
        return {"csim": _mean(self.per_pair), "scored": int(np.isfinite(self.per_pair).sum()),
                "no_face_output": self.no_face_output, "no_face_source": self.no_face_source,
                "backend": self.backend}


def csim(source: FaceReadings, output: FaceReadings) -> Csim:
    """Cosine similarity of the source's and the output's face embeddings, per pair."""
    if source.embedder is None or source.embedder != output.embedder:
        raise GlgError(f"CSIM needs one embedder for sources and outputs, got "
                       f"{source.embedder!r} and {output.embedder!r}")
    n, dim = output.embedding.shape
    cosine = np.einsum("nd,nd->n", _check_rows("source embeddings", source.embedding, n, dim),
                       output.embedding.astype(np.float64))  # unit rows
    cosine[~(source.found & output.found)] = np.nan
    return Csim(cosine, int((~output.found).sum()), int((~source.found).sum()), output.embedder)


class PoseError(NamedTuple):
    """Head pose error of N outputs against their driving frames (PRMSE, thesis 4.2)."""

    per_pair: np.ndarray  # (N, 3) |output - driving| pitch, yaw, roll in degrees; NaN: no face
    no_face: int  # outputs with no face found: unscored, counted here
    annotator: str

    def summary(self) -> dict:
        """PRMSE over every scored angle, and per angle (RMSE over the scored pairs)."""
        scored = self.per_pair[np.isfinite(self.per_pair).all(1)]  # (M, 3)

        def rmse(errors: np.ndarray) -> float | None:
            return float(np.sqrt(np.mean(errors ** 2))) if len(scored) else None

        return {"prmse": rmse(scored), **{a: rmse(scored[:, k]) for k, a in
                                          enumerate(POSE_COLUMNS)},
                "scored": len(scored), "no_face": self.no_face, "annotator": self.annotator}


def prmse(output: FaceReadings, driving_pose: np.ndarray) -> PoseError:
    """Per-pair pose error of outputs against the driving frames' stored pose (N, 3) degrees."""
    driving_pose = _check_rows("driving pose", driving_pose, len(output.found), 3)
    if not np.isfinite(driving_pose).all():
        raise GlgError("driving pose: NaN rows; driving frames must be successfully annotated ones")
    diff = np.abs((output.pose - driving_pose + 180.0) % 360.0 - 180.0)  # angles wrap at 360
    diff[~output.found] = np.nan
    return PoseError(diff, int((~output.found).sum()), output.annotator)


class AuAgreement(NamedTuple):
    """AUCON (thesis Eq. 4.4) of N outputs against their driving frames."""

    per_pair: np.ndarray  # (N,) (TP + TN) / len(aus); NaN where the output has no face
    no_face: int  # outputs with no face found: unscored, counted here
    aus: tuple[int, ...]  # the AUs compared: the annotator's measured ones, the denominator
    annotator: str

    def summary(self) -> dict:
        """Mean over the scored pairs (JSON null without any), the AUs and the unscored count."""
        return {"aucon": _mean(self.per_pair), "scored": int(np.isfinite(self.per_pair).sum()),
                "no_face": self.no_face, "aus": [f"AU{au:02d}" for au in self.aus],
                "denominator": len(self.aus), "annotator": self.annotator}


def aucon(output: FaceReadings, driving_aus: np.ndarray) -> AuAgreement:
    """Share of the measured AUs whose presence in the output agrees with the driving frame's
    stored presence (N, 18) 0/1 in AU_IDS order; unmeasured AUs are left out, not counted as
    agreeing (the thesis' denominator is 18 with OpenFace, which measures all 18)."""
    columns = [AU_IDS.index(au) for au in output.measured_aus]
    said = np.asarray(output.au_presence)[:, columns] == 1
    true = _check_rows("driving AUs", driving_aus, len(output.found), len(AU_IDS))[:, columns] == 1
    agreement = (said == true).mean(1) if columns else np.full(len(said), np.nan)
    agreement[~output.found] = np.nan
    return AuAgreement(agreement, int((~output.found).sum()), tuple(output.measured_aus),
                       output.annotator)
