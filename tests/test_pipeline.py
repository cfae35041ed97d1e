"""dvc.yaml against the code: each stage depends on exactly the params it reads and the glg
modules it imports, so a training param never re-runs extraction; and no param is one DVC's
run cache ignores, so a changed param re-runs its stage rather than restoring an old run."""

import ast
import dataclasses
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer.main
import yaml
from _prepare_data import write_dataset
from dvc.stage.cache import _get_cache_hash

from glg.config import Params
from glg.store.frames import FrameStore

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
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("glg"):
            names += [f"{node.module}.{a.name}" for a in node.names]  # a module, if one is named
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


def sections_loaded(path: Path) -> set[str]:
    """The params sections a file's `load_params` calls read; each call must name its section."""
    sections = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and "load_params" in (getattr(node.func, "id", None),
                                                            getattr(node.func, "attr", None)):
            section = node.args[0] if node.args else None
            assert isinstance(section, ast.Constant) and isinstance(section.value, str), (
                f"{path}:{node.lineno}: load_params without a literal section")
            sections.add(section.value)
    return sections


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_are_exactly_what_its_code_reads(name):
    """The stage file's and every imported glg module's sections: one read but not declared
    would let DVC skip a run, or restore one from its run cache, that the section changed."""
    file = stage_file(name)
    read = set().union(*map(sections_loaded, {file} | glg_modules(file, set())))
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
        expected |= glg_modules(ROOT / "glg" / "extract" / "_preload.py", set()) | {
            ROOT / "glg" / "extract" / "_preload.py"}
    assert code == expected


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_path_the_stage_reads_or_writes_is_declared(name):
    """Each path option of the stage's command but --params is given in its cmd, and each is a
    dep, out, metric or plot of the stage, or a folder holding one: an input read from a default
    path, or left out of deps, would not re-run the stage when it changes."""
    stage = STAGES[name]
    command = typer.main.get_command(importlib.import_module(f"stages.{stage_file(name).stem}").app)
    options = {o.opts[0] for o in command.params if isinstance(o.type, click.Path)} - {"--params"}
    words = shlex.split(stage["cmd"])
    given = {word: path for word, path in zip(words, words[1:]) if word in options}
    assert set(given) == options
    declared = [next(iter(entry)) if isinstance(entry, dict) else entry
                for key in ("deps", "outs", "metrics", "plots") for entry in stage.get(key, [])]
    for option, path in given.items():
        if option == "--ground-truth" and path == "none":  # real faces: no truth is read
            continue
        assert any(d == path or d.startswith(f"{path}/") for d in declared), (option, path)


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



# --- DVC's run cache ---------------------------------------------------------------------


def params_keys(cls: type = Params, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of the params schema: `("seed",)`, `("prepare", "image_px")`, ..."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            yield from params_keys(hints[field.name], (*prefix, field.name))
        else:
            yield (*prefix, field.name)


def run_cache_key(path: tuple[str, ...], value: int) -> str:
    """DVC's run-cache key of a stage whose lock entry holds params.yaml's `path` = `value`."""
    params = value
    for name in reversed(path):
        params = {name: params}
    entry = {"cmd": "python -m stages.prepare",
             "deps": [{"path": "data/frames", "hash": "md5", "md5": "0" * 32 + ".dir"}],
             "params": {"params.yaml": params},
             "outs": [{"path": "data/prepared", "hash": "md5", "md5": "1" * 32 + ".dir"}]}
    return _get_cache_hash(entry, key=True)


def test_no_params_key_is_one_dvcs_run_cache_ignores():
    """DVC keys its run cache on a stage's lock entry less the keys it drops at any depth
    (`size` and `nfiles` in DVC 3.x, treeverse/dvc#10296): a param of such a name lets
    `dvc repro` restore a run made at another value. Probed through DVC's own key, so a DVC
    that drops more names fails here."""
    assert len(list(params_keys())) > 100  # the whole schema, sections' fields included
    ignored = [".".join(p) for p in params_keys() if run_cache_key(p, 1) == run_cache_key(p, 2)]
    assert ignored == []


def test_a_new_image_side_reruns_prepare_rather_than_restoring_the_run_cache(tmp_path):
    """`dvc repro` of the real prepare stage on tiny data: after a run at 32 px, a new
    prepare.image_px re-runs it, and its store is at the new side (treeverse/dvc#10296: under
    a key named `size` DVC restored the 32 px run from its run cache)."""
    for folder in ("glg", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    write_dataset(tmp_path / "data", identities=6, clips=2, frames=3, side=64)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": STAGES["prepare"]}}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                        "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "site"),
                        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "global"),
                        "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "system")}

    def dvc(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def repro_at(side: int) -> int:
        params["prepare"] |= {"image_px": side, "workers": 1}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        assert "Running stage 'prepare'" in dvc("repro")
        return FrameStore(tmp_path / "data" / "prepared").frame_size()

    dvc("init", "--no-scm")
    assert repro_at(32) == 32
    assert repro_at(56) == 56
