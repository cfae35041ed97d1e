"""dvc.yaml against the code: each stage depends on exactly the params it reads and the glg
modules it imports, so a training param never re-runs extraction."""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# a foreach stage (the *_eval stages, one per second dataset) is checked through its `do`
STAGES = {name: stage.get("do", stage)
          for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}


def stage_file(name: str) -> Path:
    """The stages/<name>.py a stage's command runs (`python -m stages.<name>`)."""
    return ROOT / "stages" / (re.search(r"-m stages\.(\w+)", STAGES[name]["cmd"]).group(1) + ".py")


def glg_modules(path: Path, seen: set[Path]) -> set[Path]:
    """The glg source files a module imports, transitively, with the packages they sit in
    (config and errors excluded: every stage shares them and their params are tracked as
    params)."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module == "glg":
            names += [f"glg.{a.name}" for a in node.names]
        # importing glg.a.b runs glg/a/__init__.py first
        names += [name.rsplit(".", k)[0] for name in names for k in range(1, name.count("."))]
        for name in names:
            if not name.startswith("glg") or name in ("glg.config", "glg.errors", "glg"):
                continue
            file = ROOT / (name.replace(".", "/") + ".py")
            file = file if file.exists() else ROOT / name.replace(".", "/") / "__init__.py"
            if file.exists() and file not in seen:
                seen.add(file)
                glg_modules(file, seen)
    return seen


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_are_exactly_what_it_reads(name):
    source = stage_file(name).read_text()
    read = set(re.findall(r'load_params\("(\w+)"', source))
    if "${data.videos}" in STAGES[name]["cmd"]:
        read.add("data.videos")
    assert set(STAGES[name]["params"]) == read


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_its_file_and_every_glg_module_it_imports(name):
    file = stage_file(name)
    deps = {ROOT / d for d in STAGES[name]["deps"] if not d.startswith("${")}
    code = {d for d in deps if d.suffix == ".py"}
    expected = {file} | glg_modules(file, set())
    if file.stem == "extract":  # imported by the worker processes' fork server, by name
        expected |= glg_modules(ROOT / "glg" / "_extract_preload.py", set()) | {
            ROOT / "glg" / "_extract_preload.py"}
    assert code == expected


@pytest.mark.parametrize("name", ["train_lgan", "train_reenact"])
def test_dvclive_writes_where_dvc_yaml_declares_metrics_plots_and_checkpoints(name):
    stage = STAGES[name]
    folder = re.search(r"--metrics (\S+)", stage["cmd"]).group(1)
    assert [next(iter(m)) for m in stage["metrics"]] == [f"{folder}/metrics.json"]
    plots = {next(iter(p)): p[next(iter(p))] for p in stage["plots"]}
    assert plots[f"{folder}/plots/metrics"]["x"] == "step"
    checkpoints = re.search(r"--checkpoints (\S+)", stage["cmd"]).group(1)
    outs = {next(iter(o)) if isinstance(o, dict) else o: o for o in stage["outs"]}
    assert outs[checkpoints][checkpoints]["persist"] is True


def test_a_second_dataset_runs_the_main_stages_code_into_its_own_folders():
    """The *_eval stages: the main stage's command, params and code under data/eval/<name>/."""
    for name in ("extract", "annotate", "prepare"):
        main, second = STAGES[name], STAGES[f"{name}_eval"]
        assert stage_file(f"{name}_eval") == stage_file(name)
        assert second["params"] == main["params"] or name == "extract"
        code = {d for d in main["deps"] if d.endswith(".py")}
        assert {d for d in second["deps"] if d.endswith(".py")} == code
        assert all(str(o).startswith("data/eval/${key}/") for o in second["outs"])
    assert "--unseen-only" in STAGES["prepare_eval"]["cmd"]
