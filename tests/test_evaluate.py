"""The evaluate stage end to end through its CLI on tiny prepared data: the metrics JSON keyed by
scenario, the sanity rows, the per-pair table, the figures, the extra datasets, bad inputs.

The metrics themselves (SSIM/PSNR against scikit-image, a face scored against itself, blur and
noise of growing strength scoring worse) are tested in test_metrics.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _frame_store import write_store
from _prepare_data import write_dataset
from _training import LGAN, MODEL, S, prepared_data, write_params
from typer.testing import CliRunner

from glg.config import LganConfig, ModelConfig, PrepareConfig
from glg.evaluate import _ground_truth
from glg.metrics.images import psnr_cap
from glg.models import build_landmark_gan, build_model
from glg.prepare import prepare
from glg.report import EVALUATE, Run, not_reproduction
from glg.store.frames import FrameStore
from glg.store.networks import save_landmark_generator, save_reenactor
from glg.store.prepared import PAIRS, SCENARIOS
from glg.synthesize.faces import identity_image, make_identity
from glg.synthesize.render import render_frame
from stages.evaluate import app

RUNNER = CliRunner()
METRICS = ("csim", "prmse", "prmse_pitch", "prmse_yaw", "prmse_roll", "aucon", "aucon_aus",
           "pairs", "no_face", "no_face_source")


def trained_files(root: Path, prepared: Path, landmark_mode: str = "lgan") -> tuple[Path, Path]:
    """An (untrained) reenactor and LGAN saved as train_reenact and train_lgan save theirs: the
    evaluation scores whatever weights it is given."""
    model = build_model(ModelConfig(**{**MODEL, "landmark_mode": landmark_mode}), size=S)
    save_reenactor(root / "reenact", model, prepared)
    names = list(pd.read_parquet(prepared / "identities.parquet").sort_values("index")["identity"])
    config = LganConfig(**{k: v for k, v in LGAN.items() if k != "betas"})
    generator, _ = build_landmark_gan(config, size=S, identities=len(names))
    save_landmark_generator(root / "lgan", generator, config, names)
    return root / "reenact", root / "lgan"


def faces_dataset(root: Path) -> Path:
    """The tiny prepared dataset with rendered demo faces in its frames (the annotations stay
    the tiny set's), so that the annotator finds faces."""
    frames, annotations = write_dataset(root, identities=4, clips=2, frames=6, side=96)
    store = FrameStore(frames)
    clips = []
    for k, (identity, video) in enumerate(zip(store.clips["identity"], store.clips["video"])):
        # even indices share a portrait: one portrait fit (seconds) serves every person
        person = make_identity(2 * (k // 2), np.random.default_rng(k // 2))
        image = identity_image(person)
        clips.append((identity, video, [
            render_frame(person, image, np.array([0.0, 4.0 * f - 10, 0.0]), np.zeros(18),
                         np.zeros(2), 1.0, 96)[0] for f in range(6)]))
    shutil.rmtree(frames)
    write_store(frames, clips)
    prepare(frames, annotations, root / "prepared", PrepareConfig(
        image_px=S, unseen_identities=2, test_clips=1, known_identities=2, self_pairs=6,
        unseen_pairs=4, known_pairs=4), seed=0)
    return root / "prepared"


def params_file(root: Path, **evaluate) -> Path:
    path = write_params(root / "params.yaml")
    params = yaml.safe_load(path.read_text())
    params["evaluate"] = {"pairs": 0, "batch": 4, "read_size": 112, "grid_rows": 2,
                          "device": "cpu", **evaluate}
    path.write_text(yaml.safe_dump(params))
    return path


def run(root: Path, prepared: Path, reenact: Path, lgan: Path, *extra: str):
    return RUNNER.invoke(app, [
        "--prepared", str(prepared), "--reenact", str(reenact), "--lgan", str(lgan),
        "--out", str(root / "evaluate"), "--metrics", str(root / "metrics" / "evaluate.json"),
        "--sanity", str(root / "metrics" / "evaluate_sanity.json"),
        "--figures", str(root / "metrics" / "evaluate"), "--ground-truth",
        str(root / "absent.parquet"), "--frames", str(root / "frames"),
        "--params", str(params_file(root)), *extra])


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    prepared = faces_dataset(root)
    result = run(root, prepared, *trained_files(root, prepared))
    assert result.exit_code == 0, result.output
    return root


def test_metrics_are_keyed_by_scenario_with_every_metric(faces):
    metrics = read_json(faces / "metrics" / "evaluate.json")
    pairs = pd.read_parquet(faces / "prepared" / PAIRS)
    assert set(metrics) == {*SCENARIOS, "backends"}
    for scenario in SCENARIOS:
        assert set(METRICS) <= set(metrics[scenario])
        assert metrics[scenario]["pairs"] == (pairs["scenario"] == scenario).sum()
        assert ("ssim" in metrics[scenario]) == (scenario == "self")
    assert metrics["backends"]["aus_measured"] == metrics["self"]["aucon_aus"] == 14  # dlib


def test_sources_the_lgans_learned_vectors_never_trained_on_are_counted(faces):
    """The LGAN (learned vectors) trains on the known people only; a scored pair whose source
    is another (guided by lst instead) is counted per scenario, and the report names them."""
    backends = read_json(faces / "metrics" / "evaluate.json")["backends"]
    pairs = pd.read_parquet(faces / "prepared" / PAIRS)
    roles = pd.read_parquet(faces / "prepared" / "identities.parquet").set_index("identity")
    expected = {s: int((roles.loc[pairs.loc[pairs["scenario"] == s, "source_identity"], "role"]
                        != "known").sum()) for s in SCENARIOS}
    assert expected["unseen"] > 0 and expected["known"] == 0
    assert backends["lgan_untrained_sources"] == expected
    notes = not_reproduction(Run("x", "rev", {}, {EVALUATE: {"backends": backends}}))
    assert any(n.startswith("lst (paper Eq. 3), not the LGAN, guides the sources of ")
               and f"{expected['unseen']} unseen" in n for n in notes)


def test_driving_as_output_is_the_oracle_and_source_as_output_csims_ceiling(faces):
    sanity = read_json(faces / "metrics" / "evaluate_sanity.json")
    oracle, source = sanity["self"]["driving_as_output"], sanity["self"]["source_as_output"]
    assert oracle["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert oracle["psnr"] == pytest.approx(psnr_cap((S, S, 3)))
    assert source["ssim"] < 1.0 and source["psnr"] < oracle["psnr"]
    for scenario in SCENARIOS:
        row = sanity[scenario]["source_as_output"]
        assert row["no_face"] < row["pairs"], "the rendered faces were not found"
        assert row["csim"] == pytest.approx(1.0, abs=1e-6)  # each source against itself
        assert sanity[scenario]["driving_as_output"]["csim"] < 1.0  # other frames, or people


def test_per_pair_table_holds_every_pair_output_and_metric(faces):
    table = pd.read_parquet(faces / "evaluate" / "pairs.parquet")
    metrics = read_json(faces / "metrics" / "evaluate.json")
    for scenario in SCENARIOS:
        rows = table[(table["scenario"] == scenario) & (table["output"] == "model")]
        assert len(rows) == metrics[scenario]["pairs"]
        assert (~rows["face_found"]).sum() == metrics[scenario]["no_face"]
        mean = metrics[scenario]["csim"]  # null when no output shows a face
        assert rows["csim"].notna().any() == (mean is not None)
        assert mean is None or rows["csim"].mean() == pytest.approx(mean)
    assert set(table["output"]) == {"model", "driving_as_output", "source_as_output"}
    for name in ("self", "unseen", "known"):
        assert (faces / "metrics" / "evaluate" / "grids" / f"{name}.png").is_file()
    assert (faces / "metrics" / "evaluate" / "distributions.png").is_file()


def test_faceless_outputs_are_counted_and_an_extra_dataset_scored_under_its_name(tmp_path):
    prepared, _ = prepared_data(tmp_path / "main")  # flat-coloured frames: no face anywhere
    other, _ = prepared_data(tmp_path / "other")
    reenact, lgan = trained_files(tmp_path, prepared, landmark_mode="lst")
    result = run(tmp_path, prepared, reenact, lgan, "--extra", f"celebv={other}")
    assert result.exit_code == 0, result.output
    metrics = read_json(tmp_path / "metrics" / "evaluate.json")
    for row in (*(metrics[s] for s in SCENARIOS), metrics["celebv"]["unseen"]):
        assert row["pairs"] > 0 and row["no_face"] == row["pairs"]
        assert row["no_face_source"] == row["pairs"]
        assert row["csim"] is None and row["prmse"] is None and row["aucon"] is None
    assert metrics["self"]["ssim"] is not None  # the image metrics need no face
    pairs = pd.read_parquet(other / PAIRS)
    assert set(metrics["celebv"]) == {"unseen"}
    assert metrics["celebv"]["unseen"]["pairs"] == (pairs["scenario"] == "unseen").sum()
    assert set(read_json(tmp_path / "metrics" / "evaluate_sanity.json")["celebv"]) == {"unseen"}
    table = pd.read_parquet(tmp_path / "evaluate" / "pairs.parquet")
    assert set(table["dataset"]) == {"main", "celebv"}
    assert not table["face_found"].any()


def test_a_missing_ground_truth_is_said_not_passed_over(tmp_path):
    said: list[str] = []
    assert _ground_truth(tmp_path / "tru th.parquet", tmp_path / "frames", said.append) is None
    assert said == [f"evaluate: no ground truth at {tmp_path / 'tru th.parquet'}: the "
                    "annotator's own error not measured"]
    assert _ground_truth(None, None, said.append) is None and len(said) == 1  # none asked for


def test_bad_inputs_are_one_line_errors(tmp_path):
    prepared, _ = prepared_data(tmp_path)
    reenact, lgan = trained_files(tmp_path, prepared)
    cases = [
        (run(tmp_path, prepared, tmp_path / "nowhere", lgan), "reenactor.pt"),
        (run(tmp_path, tmp_path / "nothing", reenact, lgan), "pairs.parquet"),
        (run(tmp_path, prepared, reenact, lgan, "--extra", f"celebv={prepared}"), "lgan"),
        (run(tmp_path, prepared, reenact, lgan, "--extra", "celebv"), "NAME=PREPARED_DIR"),
    ]
    params_file(tmp_path, embedder="arcface", arcface_weights=str(tmp_path / "none.pth"))
    cases.append((RUNNER.invoke(app, ["--prepared", str(prepared), "--reenact", str(reenact),
                                      "--lgan", str(lgan), "--params",
                                      str(tmp_path / "params.yaml")]),
                  "evaluate.arcface_weights"))
    for result, named in cases:
        assert result.exit_code == 1
        assert named in result.output and len(result.output.strip().splitlines()) == 1
