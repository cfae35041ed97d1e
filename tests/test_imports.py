"""The import graph of glg/: every import, function-level ones included, and no cycle in it."""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400  # a module longer than this holds several ideas


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of `package` -> the modules of the package it imports, anywhere in its code.

    `from pkg import name` counts as importing `pkg.name` when that is a module, else `pkg`.
    """
    root = package.parent
    modules = {module_name(p, root): p for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package, up level - 1
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
                imported |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                             for alias in node.names}
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [node, nxt]  # nxt is on the path
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def test_glg_has_no_import_cycle():
    cycle = find_cycle(import_graph(ROOT / "glg"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.low import helper\n")
    (package / "sub" / "low.py").write_text("def helper():\n    from pkg import top\n")
    (package / "top.py").write_text("from pkg.sub import helper\n")
    assert find_cycle(import_graph(package)) == ["pkg.sub", "pkg.sub.low", "pkg.top", "pkg.sub"]


@pytest.mark.parametrize("path", sorted((ROOT / "glg").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_holds_several_ideas(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_folders_show_the_pipeline():
    """glg/'s root holds a few shared modules; each data stage's code is the subpackage named as
    the stage; the package docstring maps every dvc.yaml stage to its code."""
    package = ROOT / "glg"
    assert len(list(package.glob("*.py"))) <= 8
    for stage in ("synthesize", "extract", "annotate", "prepare", "evaluate"):
        assert (package / stage / "__init__.py").is_file(), stage
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    rows = [line for line in doc.splitlines() if line.startswith("|") and "`glg." in line]
    for name in stages:  # extract_eval etc. run extract's code on a second dataset
        assert any(name.split("_eval")[0] in row for row in rows), name
