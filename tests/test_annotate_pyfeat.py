"""The py-feat backend: its `Fex` output mapped onto glg's schema, and the offline failure."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from _frame_store import write_store
from typer.testing import CliRunner

import glg.annotate.pyfeat as pyfeat
from glg.errors import GlgError
from glg.face.landmarks import AU_IDS, X_COLUMNS, Y_COLUMNS
from glg.store.annotations import to_table
from stages.annotate import app


def _fex():
    """py-feat's own `Fex` as `Detectorv1.detect` builds it: frame 0 has two faces, frame 1 none."""
    feat_data = pytest.importorskip("feat.data")
    from feat.pretrained import AU_LANDMARK_MAP
    from feat.utils import (FEAT_FACEBOX_COLUMNS, FEAT_FACEPOSE_COLUMNS_6D,
                            FEAT_IDENTITY_COLUMNS, openface_2d_landmark_columns)

    rows = []
    for frame, score, x0, pitch, yaw, roll, au in [(0, 0.7, 10.0, 1.0, 2.0, 3.0, 0.2),
                                                   (0, 0.99, 60.0, 5.0, 20.0, -10.0, 0.8),
                                                   (1, np.nan, np.nan, *[np.nan] * 4),
                                                   (2, 0.95, 62.0, -4.0, -15.0, 6.0, 0.3)]:
        row = {"FaceRectX": x0, "FaceRectY": 40.0, "FaceRectWidth": 120.0,
               "FaceRectHeight": 140.0, "FaceScore": score,
               "Pitch": pitch, "Roll": roll, "Yaw": yaw, "X": 0.0, "Y": 0.0, "Z": 0.0,
               "frame": frame, "input": "tensor"}
        row |= {c: x0 + i for i, c in enumerate(X_COLUMNS)}
        row |= {c: 50.0 + i for i, c in enumerate(Y_COLUMNS)}
        row |= {c: au for c in AU_LANDMARK_MAP["Feat"]}
        row["AU43"] = 1.0 - au  # eyes closed exactly when the other AUs are weak
        row |= {c: (1.0 if c == "Identity_1" else 0.0) * (frame + 1)
                for c in FEAT_IDENTITY_COLUMNS[1:]}
        rows.append(row)
    return feat_data.Fex(pd.DataFrame(rows), au_columns=AU_LANDMARK_MAP["Feat"],
                         facebox_columns=FEAT_FACEBOX_COLUMNS,
                         landmark_columns=openface_2d_landmark_columns,
                         facepose_columns=FEAT_FACEPOSE_COLUMNS_6D,
                         identity_columns=FEAT_IDENTITY_COLUMNS[1:], detector="Feat")


def test_fex_maps_onto_the_schema():
    result = pyfeat.from_fex(_fex(), np.array([10, 11, 12]))
    np.testing.assert_array_equal(result.frame, [10, 11, 12])
    np.testing.assert_array_equal(result.success, [True, False, True])
    # Frame 0 keeps its most confident face; boxes become corners.
    np.testing.assert_allclose(result.box[0], [60, 40, 180, 180])
    np.testing.assert_allclose(result.confidence, [0.99, 0.0, 0.95], rtol=1e-6)
    assert result.landmarks[0, 5, 0] == 65.0 and result.landmarks[0, 5, 1] == 55.0
    assert np.isnan(result.landmarks[1]).all() and np.isnan(result.pose[1]).all()
    # py-feat's +yaw / +roll turn toward the subject's right: glg's signs are the opposite.
    np.testing.assert_allclose(result.pose[0], [5.0, -20.0, 10.0])
    np.testing.assert_allclose(result.pose[2], [-4.0, 15.0, -6.0])
    k12, k45 = AU_IDS.index(12), AU_IDS.index(45)
    np.testing.assert_allclose(result.au_score[[0, 2], k12], [0.8, 0.3], rtol=1e-6)
    np.testing.assert_array_equal(result.au_presence[:, k12], [1, 0, 0])
    np.testing.assert_allclose(result.au_score[[0, 2], k45], [0.2, 0.7], rtol=1e-6)  # AU43
    np.testing.assert_array_equal(result.au_presence[:, k45], [0, 0, 1])
    assert np.isnan(result.au_score[1]).all() and not result.au_presence[1].any()
    assert result.embedding.shape == (512,) and result.embedding[0] == pytest.approx(1.0)
    assert to_table("id", "clip", result).num_rows == 3  # the mapped types fit the schema


def test_missing_weights_fail_before_py_feat_loads_naming_them(tmp_path, monkeypatch):
    monkeypatch.setattr(pyfeat, "cache_dir", lambda: tmp_path)
    monkeypatch.setitem(sys.modules, "feat.detector", None)  # importing it now fails
    with pytest.raises(GlgError) as err:
        pyfeat.load_detector()
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    for needed in ("py-feat/img2pose/model.safetensors", "py-feat/mobilefacenet",
                   "py-feat/xgb_au", "py-feat/arcface_r50"):
        assert needed in message


def test_cached_weights_are_found(tmp_path):
    for repo, names in pyfeat.REQUIRED_FILES:
        folder = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / names[-1]).write_bytes(b"")
    assert pyfeat.missing_weights(tmp_path) == []
    (tmp_path / "models--py-feat--mobilefacenet").rename(tmp_path / "elsewhere")
    assert pyfeat.missing_weights(tmp_path) == ["py-feat/mobilefacenet/"
                                                "mobilefacenet_model_best.pth.tar"]


def test_stage_with_pyfeat_and_no_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(pyfeat, "cache_dir", lambda: tmp_path / "cache")
    write_store(tmp_path / "frames", [])
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"annotate": {"backend": "pyfeat", "workers": 1}}))
    result = CliRunner().invoke(app, ["--frames", str(tmp_path / "frames"), "--out",
                                      str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"),
                                      "--params", str(params), "--no-progress"])
    assert result.exit_code == 1
    assert "py-feat weights missing" in result.output and "Traceback" not in result.output
