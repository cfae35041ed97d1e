"""What `glg report` reads besides `dvc exp show`: the workspace's scenario x metric table that
`make demo` ends with (`--summary`), and the methods outside glg that `glg score` scored
(`--scores`: `<folder>/<method>/evaluate.json`, the evaluate stage's layout with the method named
in `backends`), as runs the report marks external. JSON only, as `glg.report`.
"""

from __future__ import annotations

from pathlib import Path

from glg.errors import GlgError
from glg.report import (COUNTS, EVALUATE, LINEAGE, METRICS, SANITY, SANITY_ROWS, Run, _cell,
                        _read_json, not_reproduction, scenario_scores)

SCORES = Path("scores")  # `glg score`'s default folder: one folder per method


def summary(metrics_dir: Path) -> str:
    """The scenario x metric table of `metrics_dir/evaluate.json` and the sanity rows of
    `evaluate_sanity.json`, as plain text for a terminal (what `make demo` ends with)."""
    path = Path(metrics_dir) / Path(EVALUATE).name
    if not path.is_file():
        raise GlgError(f"{path}: not found (run the evaluate stage: dvc repro)")
    evaluation = _read_json(path)
    rows = [[label, *(scores.get(k) for k in METRICS + LINEAGE + COUNTS)]
            for label, scores in scenario_scores(evaluation).items()]
    sanity_path = Path(metrics_dir) / Path(SANITY).name
    sanity = _read_json(sanity_path) if sanity_path.is_file() else {}
    rows += [[f"{label}: {row.replace('_', ' ')}",
              *(v.get(k) for k in METRICS + LINEAGE + COUNTS)]
             for label, scores in scenario_scores(sanity).items()
             for row, v in scores.items() if row in SANITY_ROWS and isinstance(v, dict)]
    header = ["scenario", *METRICS, *LINEAGE, *COUNTS]
    cells = [header] + [[_cell(v, k) for v, k in zip(row, header)] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))) for row in cells]
    backends = evaluation.get("backends") or {}
    if backends:
        lines.append("backends: " + ", ".join(f"{k} {v}" for k, v in backends.items()))
    if not sanity:
        lines.append(f"(no sanity rows: {sanity_path} not found)")
    return "\n".join(lines)


def external_runs(scores_dir: Path) -> list[Run]:
    """A run for each method `glg score` scored under `scores_dir` (`<method>/evaluate.json`);
    none without the folder."""
    found = []
    for path in sorted(Path(scores_dir).glob(f"*/{Path(EVALUATE).name}")):
        evaluation = _read_json(path)
        method = (evaluation.get("backends") or {}).get("method")
        if not method:
            raise GlgError(f"{path}: names no method in its backends (not written by glg score)")
        run = Run(str(method), "external", {}, {EVALUATE: evaluation}, external=True)
        run.notes = not_reproduction(run)
        found.append(run)
    return found
