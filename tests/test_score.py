"""`glg pairs export` and `glg score` through the CLI on the rendered faces of test_evaluate: the
exported frames scored as outputs give the evaluate stage's sanity rows, a missing output is a
counted, named failure, bad inputs are one-line errors; the lineage's metrics in the stage's
JSON."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pandas as pd
import pytest
import yaml
from test_evaluate import faces  # noqa: F401  (the fixture: the stage run on rendered faces)
from test_lineage import write_lpips_weights
from typer.testing import CliRunner

from glg.cli import app
from glg.store.prepared import SCENARIOS

RUNNER = CliRunner()
# computed by torch in batches that differ between the stage and glg score (the stage embeds
# each driving frame once, keyed; glg score every output): float32 BLAS paths, not bytes
EMBEDDED = {"csim": 1e-6, "aed": 1e-5}


@pytest.fixture(scope="module")
def scored(faces) -> Path:
    """test_evaluate's stage run on rendered faces, and each scenario's pairs exported."""
    for scenario in SCENARIOS:
        result = RUNNER.invoke(app, ["pairs", "export", str(faces / "pairs" / scenario),
                                     "--scenario", scenario, "--prepared", str(faces / "prepared"),
                                     "--params", str(faces / "params.yaml")])
        assert result.exit_code == 0, result.output
    return faces


def outputs_of(root: Path, scenario: str, side: str, name: str, scale: float = 1.0) -> Path:
    """A method's outputs that are the exported `side` frames, `scale` times their size."""
    folder = root / "outputs" / name / scenario
    folder.mkdir(parents=True, exist_ok=True)
    exported = root / "pairs" / scenario
    for row in pd.read_csv(exported / "pairs.csv").itertuples():
        image = cv2.imread(str(exported / getattr(row, f"{side}_path")))
        if scale != 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / f"{row.pair_id}.png"), image)
    return folder


def score(root: Path, outputs: Path, scenario: str, method: str, pairs: Path | None = None):
    return RUNNER.invoke(app, ["score", str(outputs), "--pairs",
                               str(pairs or root / "pairs" / scenario), "--scenario", scenario,
                               "--method", method, "--out", str(root / "scores" / method),
                               "--params", str(root / "params.yaml")])


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_same_row(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if key in EMBEDDED and value is not None:
            assert got[key] == pytest.approx(value, abs=EMBEDDED[key]), key
        else:
            assert got[key] == value, key  # dlib's landmarks and pose, the image metrics: bytes


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_exported_driving_frames_scored_are_the_driving_as_output_row(scored, scenario):
    result = score(scored, outputs_of(scored, scenario, "driving", "oracle"), scenario, "oracle")
    assert result.exit_code == 0, result.output
    got = read_json(scored / "scores" / "oracle" / "evaluate.json")
    want = read_json(scored / "metrics" / "evaluate_sanity.json")[scenario]["driving_as_output"]
    assert got["backends"]["method"] == "oracle"
    assert_same_row(got[scenario], want)
    assert got[scenario]["pairs"] > 0 and got[scenario]["akd"] == 0.0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_exported_sources_scored_are_the_source_as_output_row(scored, scenario):
    result = score(scored, outputs_of(scored, scenario, "source", "copy"), scenario, "copy")
    assert result.exit_code == 0, result.output
    got = read_json(scored / "scores" / "copy" / "evaluate.json")[scenario]
    want = read_json(scored / "metrics" / "evaluate_sanity.json")[scenario]["source_as_output"]
    assert_same_row(got, want)
    assert got["csim_scored"] > 0


def test_prepared_pairs_and_outputs_of_another_size_score_alike(scored):
    """--pairs takes the prepared folder too; outputs twice the size are resized back."""
    result = score(scored, outputs_of(scored, "self", "driving", "big", scale=2.0), "self", "big",
                   pairs=scored / "prepared")
    assert result.exit_code == 0, result.output
    got = read_json(scored / "scores" / "big" / "evaluate.json")["self"]
    want = read_json(scored / "metrics" / "evaluate_sanity.json")["self"]["driving_as_output"]
    assert got["pairs"] == want["pairs"] and got["missing"] == 0
    assert 0 < got["l1"] < 0.02 and got["ssim"] > 0.9  # near, not equal: resampled twice


def test_a_missing_or_unreadable_output_is_a_counted_named_failure(scored):
    outputs = outputs_of(scored, "self", "driving", "holes")
    ids = sorted(p.stem for p in outputs.glob("*.png"))
    (outputs / f"{ids[1]}.png").unlink()
    (outputs / f"{ids[3]}.png").write_bytes(b"not a png")
    result = score(scored, outputs, "self", "holes")
    assert result.exit_code == 0, result.output
    assert f"2 of {len(ids)} outputs missing or unreadable" in result.output
    row = read_json(scored / "scores" / "holes" / "evaluate.json")["self"]
    oracle = read_json(scored / "metrics" / "evaluate_sanity.json")["self"]["driving_as_output"]
    assert row["pairs"] == len(ids) and row["missing"] == 2
    assert row["no_face"] == oracle["no_face"] + 2
    assert row["csim_scored"] == oracle["csim_scored"] - 2
    table = pd.read_parquet(scored / "scores" / "holes" / "pairs.parquet")
    model = table[table["output"] == "model"]
    assert len(model) == len(ids)
    assert sorted(model.loc[model["missing"], "pair_id"]) == [ids[1], ids[3]]
    assert model.loc[model["missing"], ["ssim", "l1", "csim", "akd"]].isna().all().all()
    assert not model.loc[model["missing"], "face_found"].any()


def test_scenarios_scored_into_one_folder_join(scored):
    for scenario in ("self", "known"):
        assert score(scored, outputs_of(scored, scenario, "source", "both"), scenario,
                     "both").exit_code == 0
    metrics = read_json(scored / "scores" / "both" / "evaluate.json")
    assert set(metrics) == {"self", "known", "backends"}
    table = pd.read_parquet(scored / "scores" / "both" / "pairs.parquet")
    assert set(table["scenario"]) == {"self", "known"}
    assert len(table) == 3 * (metrics["self"]["pairs"] + metrics["known"]["pairs"])


def test_the_stage_json_carries_the_lineage_metrics_and_says_why_lpips_is_absent(scored):
    metrics = read_json(scored / "metrics" / "evaluate.json")
    for scenario in SCENARIOS:
        assert {"akd", "akd_scored", "aed", "aed_scored", "missing"} <= set(metrics[scenario])
        assert ("l1" in metrics[scenario]) == (scenario == "self")
        assert "lpips" not in metrics[scenario]
    assert metrics["backends"]["lpips"].startswith("absent: ")
    assert "evaluate.lpips_weights" in metrics["backends"]["lpips"]


def test_export_at_another_size_and_bad_inputs(scored, tmp_path):
    result = RUNNER.invoke(app, ["pairs", "export", str(tmp_path / "small"), "--scenario",
                                 "unseen", "--prepared", str(scored / "prepared"), "--size",
                                 "40", "--pairs", "3", "--params", str(scored / "params.yaml")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "small" / "pairs.csv")
    assert len(table) == 3 and table["pair_id"].str.startswith("unseen-").all()
    assert cv2.imread(str(tmp_path / "small" / table["driving_path"][0])).shape == (40, 40, 3)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    cases = [
        (score(scored, tmp_path / "nowhere", "self", "m"), "nowhere"),
        (score(scored, tmp_path, "self", "m", pairs=tmp_path / "junk"), "export.json"),
        (score(scored, tmp_path, "known", "m", pairs=scored / "pairs" / "self"), "scenario"),
        (score(scored, tmp_path, "selfie", "m", pairs=scored / "prepared"), "--scenario"),
        (RUNNER.invoke(app, ["pairs", "export", str(tmp_path / "junk"), "--scenario", "self",
                             "--prepared", str(scored / "prepared"), "--params",
                             str(scored / "params.yaml")]), "not empty"),
    ]
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "evaluate.json").write_text('{"backends": {"method": "oracle"}}')
    cases.append((RUNNER.invoke(app, [
        "score", str(tmp_path), "--pairs", str(scored / "pairs" / "self"), "--scenario", "self",
        "--method", "other", "--out", str(tmp_path / "taken"), "--params",
        str(scored / "params.yaml")]), "'oracle'"))
    for result, named in cases:
        assert result.exit_code == 1, result.output
        assert named in result.output and len(result.output.strip().splitlines()) == 1


def test_lpips_is_scored_where_its_weights_are(scored, tmp_path):
    """The loading path on weights the test builds: LPIPS in the self row, 0 for the oracle."""
    params = yaml.safe_load((scored / "params.yaml").read_text())
    params["evaluate"]["lpips_weights"] = str(write_lpips_weights(tmp_path / "lpips"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = RUNNER.invoke(app, [
        "score", str(outputs_of(scored, "self", "driving", "seen")), "--pairs",
        str(scored / "pairs" / "self"), "--scenario", "self", "--method", "seen", "--out",
        str(tmp_path / "seen"), "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 0, result.output
    metrics = read_json(tmp_path / "seen" / "evaluate.json")
    assert metrics["self"]["lpips"] == 0.0
    assert metrics["backends"]["lpips"].startswith("alexnet")
    sanity = read_json(tmp_path / "seen" / "evaluate_sanity.json")["self"]
    assert sanity["source_as_output"]["lpips"] > 0
