"""`glg report`: the runs of `dvc exp show --json` set beside the paper's Tables I-V and thesis
Table 4.7 (glg/report/paper_tables.py), with the sanity rows, the metric backends, the
perceptual-loss weights and the training steps, written to `reports/report.md` and the figure it
shows.

Reads JSON only (no torch): `metrics/evaluate.json` (scenario -> metrics, `backends`, and an
extra all-unseen dataset as `<name> -> unseen -> metrics`), `metrics/evaluate_sanity.json`
(scenario -> `driving_as_output` / `source_as_output` / `annotator_vs_truth`, the annotator's
noise floor against synthetic ground truth -> metrics), `metrics/train_reenact/metrics.json`
and `metrics/train_lgan/metrics.json`; beside them, other methods' rows (`glg.report.extra`).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glg.config import (DataConfig, LganConfig, LossConfig, ModelConfig, PrepareConfig,
                        TrainConfig, parse_section)
from glg.config.variants import variant_name
from glg.errors import ConfigError, GlgError
from glg.report.paper_tables import HIGHER_IS_BETTER, TABLES, PaperTable, paper_value
from glg.store.prepared import SCENARIOS

EVALUATE = "metrics/evaluate.json"
SANITY = "metrics/evaluate_sanity.json"
TRAIN_REENACT = "metrics/train_reenact/metrics.json"
TRAIN_LGAN = "metrics/train_lgan/metrics.json"
METRICS = ("csim", "ssim", "psnr", "prmse", "aucon")
COUNTS = ("pairs", "no_face")
SANITY_ROWS = ("driving_as_output", "source_as_output", "annotator_vs_truth")
REPORT, FIGURE = "report.md", "metrics.png"
DECIMALS = {"csim": 3, "ssim": 3, "psnr": 3, "prmse": 2, "aucon": 3,  # as the paper prints them
            "l1": 4, "lpips": 3, "akd": 2, "aed": 3}  # as first-order-model prints them
LINEAGE = ("l1", "lpips", "akd", "aed")  # first-order-model's metrics (glg.metrics.lineage)
PAPER_SIZE = 224  # Sec III-A: 224 x 224 network input


@dataclass
class Run:
    """One row of `dvc exp show`: a commit, an experiment or the workspace."""

    name: str
    rev: str
    params: dict  # params.yaml's sections
    metrics: dict  # metrics file -> its JSON
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # why this is not a reproduction
    external: bool = False  # another method's outputs scored by `glg score`, not a glg run

    @property
    def evaluation(self) -> dict:
        evaluation = self.metrics.get(EVALUATE)
        return evaluation if isinstance(evaluation, dict) else {}

    @property
    def variant(self) -> str:
        """The paper's name of the run's `model` params, `(F)` appended when federated."""
        if self.external:
            return "external method (glg score)"
        try:
            name = variant_name(parse_section("model", self.params.get("model", {})))
        except ConfigError as err:
            return f"(model params not readable: {err})"
        return name or "(not a paper variant)"

    @property
    def federated(self) -> bool:
        return self.params.get("train", {}).get("mode", "central") == "federated"


# --- reading dvc exp show --------------------------------------------------------------------


def exp_show(path: Path | None) -> list:
    """`dvc exp show --json` as parsed JSON: read from `path`, or run in this folder's repo."""
    if path is not None:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise GlgError(f"{path}: not the JSON `dvc exp show --json` writes ({err})") from err
    done = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"],
                          capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise GlgError(f"`dvc exp show --json` failed ({last}); run inside the repository or "
                       "pass --exp-json FILE")
    return json.loads(done.stdout)


def runs(shown: list) -> list[Run]:
    """Every commit, experiment and the workspace of `dvc exp show --json` (DVC 3's shape: a list
    of revisions, each with `data` and `experiments: [{name, revs: [...]}]`), the workspace
    left out when it equals a run already listed."""
    if not isinstance(shown, list):
        raise GlgError("dvc exp show --json: expected a list of revisions, got "
                       f"{type(shown).__name__}")
    found: list[Run] = []
    for k, entry in enumerate(shown):
        try:
            found.append(_run(entry, entry.get("name") or _short(entry.get("rev"))))
            for experiment in entry.get("experiments") or []:
                for rev in experiment.get("revs") or []:
                    found.append(_run(rev, rev.get("name") or experiment.get("name")
                                      or _short(rev.get("rev"))))
        except (AttributeError, TypeError) as err:  # a list or string where DVC writes objects
            raise GlgError(f"dvc exp show --json: revision {k} is not in DVC 3's shape ({err})"
                           ) from None
    listed = [(r.params, r.metrics) for r in found if r.rev != "workspace"]
    return [r for r in found if r.rev != "workspace" or (r.params, r.metrics) not in listed]


def _short(rev: str | None) -> str:
    """A commit's 7 first hex digits; `workspace` as it is."""
    rev = str(rev or "?")
    return rev[:7] if len(rev) == 40 else rev


def _run(entry: dict, name: str) -> Run:
    data = entry.get("data") or {}
    params: dict = {}
    for file in (data.get("params") or {}).values():
        params.update(file.get("data") or {})
    metrics = {path: file.get("data") or {} for path, file in (data.get("metrics") or {}).items()}
    error = entry.get("error")
    run = Run(name, str(entry.get("rev", "?")), params, metrics,
              (error.get("msg") if isinstance(error, dict) else error) or None)
    run.notes = not_reproduction(run)
    return run


# Params whose demo values depart from the paper's recipe (glg/config/sections.py has the paper's).
RECIPE_CHOICES = {"model": ("output", "flow_prior", "generator_channels"), "loss": ("warp",)}


def not_reproduction(run: Run) -> list[str]:
    """Why a run's numbers are not the paper's protocol, each a short sentence; empty: none."""
    notes = []
    if run.external:
        notes.append("another method's outputs, scored by glg score on our pairs")
    train = run.metrics.get(TRAIN_REENACT) or {}
    steps = train.get("steps", run.params.get("train", {}).get("steps"))
    if steps is not None and steps < TrainConfig().steps:
        notes.append(f"demo-length run: the reenactor trained {steps:,} steps (our full "
                     f"schedule: {TrainConfig().steps:,})")
    lgan_steps = (run.metrics.get(TRAIN_LGAN) or {}).get("steps")
    if lgan_steps is not None and lgan_steps < LganConfig().steps:
        notes.append(f"the LGAN trained {lgan_steps:,} steps (our full schedule: "
                     f"{LganConfig().steps:,})")
    videos = run.params.get("data", {}).get("videos")
    if videos == DataConfig().videos:
        notes.append("data: the demo's synthetic faces, not VoxCeleb1 or CelebV")
    prepare = run.params.get("prepare", {})
    # experiments committed under the old name (glg.config.RENAMED) still report theirs
    side = prepare.get("image_px", prepare.get("size", PrepareConfig().image_px))
    if side != PAPER_SIZE:
        notes.append(f"prepare.image_px {side} px (the paper: {PAPER_SIZE}, Sec III-A)")
    # the recipe's choices that are not the paper's (each keeps the paper's value as default)
    for section, defaults in (("model", ModelConfig()), ("loss", LossConfig())):
        for key in RECIPE_CHOICES[section]:
            value = run.params.get(section, {}).get(key, getattr(defaults, key))
            if value != getattr(defaults, key):
                notes.append(f"{section}.{key} {value}, not the full model's "
                             f"{getattr(defaults, key)} (docs/learning.md)")
    weights = train.get("perceptual_weights")
    if weights not in (None, "imagenet"):
        notes.append(f"perceptual loss on {weights} VGG19 weights (the paper: ImageNet)")
    backends = run.evaluation.get("backends") or {}
    if backends.get("embedder") not in (None, "arcface"):
        notes.append(f"CSIM by the {backends['embedder']} embedder (the paper: ArcFace)")
    if backends.get("annotator") not in (None, "openface"):
        notes.append(f"pose and AUs read by {backends['annotator']} (the paper: OpenFace)")
    untrained = {k: n for k, n in (backends.get("lgan_untrained_sources") or {}).items() if n}
    if untrained:
        notes.append("lst (paper Eq. 3), not the LGAN, guides the sources of " + ", ".join(
            f"{n} {k}" for k, n in untrained.items()) + " pairs, people the LGAN never trained "
            "on (lgan.identity_input: embedding; face_recognition embeds any face)")
    return notes


# --- scores ----------------------------------------------------------------------------------


def scenario_scores(evaluation: dict) -> dict[str, dict]:
    """`evaluation`'s metrics by scenario label: `self`, `unseen`, `known`, and an extra
    dataset's `<name>/unseen`."""
    scores = {}
    for key, value in evaluation.items():
        if not isinstance(value, dict) or key == "backends":
            continue
        if key in SCENARIOS:
            scores[key] = value
        else:
            scores.update({f"{key}/{s}": v for s, v in value.items()
                           if s in SCENARIOS and isinstance(v, dict)})
    return scores


def _cell(value, metric: str | None = None) -> str:
    if isinstance(value, float) and metric in DECIMALS and not math.isnan(value):
        return f"{value:.{DECIMALS[metric]}f}"
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list], metrics: tuple[str, ...] = ()) -> list[str]:
    """Markdown; the columns named in `metrics` (lower case, as the header's first word) are
    printed with the paper's decimals."""
    keys = [h.split()[0].lower() if h.split()[0].lower() in metrics else None for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v, k) for v, k in zip(row, keys)) + " |"
                    for row in rows]


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise GlgError(f"{path}: not readable JSON ({err})") from err
    if not isinstance(value, dict):
        raise GlgError(f"{path}: expected a JSON object of scenarios, got a "
                       f"{type(value).__name__}")
    return value


# --- the report ------------------------------------------------------------------------------


def paper_table(table: PaperTable, all_runs: list[Run]) -> list[str]:
    """One table as the paper prints it, then our runs of its variants on its scenario."""
    lines = [f"### Table {table.key}: {table.title}", "",
             f"Paper rows: {table.cite}. Ours: scenario `{table.scenario}`"
             + (" and every extra dataset's `unseen`" if table.scenario == "unseen" else "")
             + "; bold in the paper dropped.", ""]
    header = ["model", "from", *(m.upper() + (" ↑" if HIGHER_IS_BETTER[m] else " ↓")
                                 for m in table.metrics), "scored on", "pairs", "no face"]
    rows = [[name, "paper", *values, "", None, None] for name, values in table.rows]
    for run in all_runs:
        label = _label(table, run)
        if label is None:
            continue
        for scenario, scores in scenario_scores(run.evaluation).items():
            if scenario.split("/")[-1] == table.scenario:
                rows.append([label, "external" if run.external else f"ours: {run.name}",
                             *(scores.get(m) for m in table.metrics),
                             scenario, scores.get("pairs"), scores.get("no_face")])
    return lines + _table(header, rows, table.metrics) + [""]


def _label(table: PaperTable, run: Run) -> str | None:
    """The run's model name as `table` writes it, or None when the table has no such row."""
    if run.external:
        return None if table.federated else run.name
    variant = run.variant
    if table.federated:
        printed = {"ResNet+LGAN+Style": "ResNet+Style+LGAN"}.get(variant, variant)
        printed += " (F)" if run.federated else " (C)"
    else:
        printed = variant if not run.federated else None
    return printed if any(name == printed for name, _ in table.rows) else None


def write_report(shown: list, out: Path, metrics_dir: Path | None = None,
                 external: Sequence[Run] = ()) -> Path:
    """Write `out/report.md` and `out/metrics.png` from `dvc exp show --json` and the `external`
    methods (`glg.report.extra.external_runs`); returns the .md."""
    all_runs = runs(shown) + list(external)
    scored = [r for r in all_runs if r.evaluation and not r.error]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# glg: our runs beside the paper's tables", "",
             "Written by `glg report` from `dvc exp show --json`. The paper's rows are transcribed "
             "from Hu, Xie, Wu, *Face Reenactment via Generative Landmark Guidance* (Tables I-V) "
             "and Hu's MSc thesis (Table 4.7), each table cited below.", ""]
    lines += _runs_section(all_runs, scored)
    if scored:
        lines += [f"![our runs' metrics per scenario beside the paper's value for the same "
                  f"variant]({FIGURE})", ""]
        _figure(scored, out / FIGURE)
    lines += ["## The paper's tables and ours", ""]
    for table in TABLES:
        lines += paper_table(table, scored)
    lines += _every_metric_section(scored)
    lines += _sanity_section(scored, metrics_dir)
    path = out / REPORT
    path.write_text("\n".join(lines))
    return path


def _runs_section(all_runs: list[Run], scored: list[Run]) -> list[str]:
    lines = ["## Runs", ""]
    header = ["run", "rev", "variant", "train.mode", "steps (reenactor / LGAN)",
              "perceptual weights", "metric backends"]
    rows = []
    for run in scored:
        train = run.metrics.get(TRAIN_REENACT) or {}
        lgan = run.metrics.get(TRAIN_LGAN) or {}
        backends = run.evaluation.get("backends") or {}
        rows.append([run.name, _short(run.rev), run.variant,
                     run.params.get("train", {}).get("mode", "central"),
                     f"{_cell(train.get('steps'))} / {_cell(lgan.get('steps'))}",
                     train.get("perceptual_weights", "not recorded"),
                     ", ".join(f"{k}: {v}" for k, v in backends.items()) or "not recorded"])
    lines += _table(header, rows) + [""]
    for run in scored:
        if run.notes:
            lines.append(f"> **{run.name}: not a reproduction of the paper.** "
                         + "; ".join(run.notes) + ".")
            lines.append("")
    for run in all_runs:
        if run.error:
            lines.append(f"- {run.name} ({_short(run.rev)}): left out, DVC could not read it: "
                         f"{run.error}")
        elif not run.evaluation:
            lines.append(f"- {run.name} ({_short(run.rev)}): left out, no {EVALUATE}")
    if not scored:
        lines.append(f"No run has {EVALUATE} yet: run `dvc repro` (or `dvc exp run`) first.")
    return lines + [""]


def _every_metric_section(scored: list[Run]) -> list[str]:
    """Every run's and external method's rows with the paper's metrics and first-order-model's,
    each scenario."""
    lines = ["## Every metric: the paper's and first-order-model's (L1, LPIPS, AKD, AED)", ""]
    rows = [[run.name, "external" if run.external else "ours", scenario,
             *(scores.get(m) for m in METRICS + LINEAGE + COUNTS)]
            for run in scored for scenario, scores in scenario_scores(run.evaluation).items()]
    return lines + _table(["model", "from", "scenario", *METRICS, *LINEAGE, *COUNTS], rows,
                          METRICS + LINEAGE) + [""]


def _sanity_section(scored: list[Run], metrics_dir: Path | None) -> list[str]:
    """The no-model rows of the newest run that has them (the workspace's files otherwise)."""
    sanity = next((r.metrics[SANITY] for r in scored if r.metrics.get(SANITY)), None)
    if sanity is None and metrics_dir is not None and (Path(metrics_dir) / "evaluate_sanity.json"
                                                       ).is_file():
        sanity = _read_json(Path(metrics_dir) / "evaluate_sanity.json")
    lines = ["## Sanity rows (no model, same pairs)", ""]
    if not sanity:
        return lines + [f"No {SANITY} found.", ""]
    rows = [[scenario, row.replace("_", " "), *(v.get(m) for m in METRICS + LINEAGE + COUNTS)]
            for scenario, scores in scenario_scores(sanity).items()
            for row, v in scores.items() if row in SANITY_ROWS and isinstance(v, dict)]
    lines += _table(["scenario", "output", *METRICS, *LINEAGE, *COUNTS], rows,
                    METRICS + LINEAGE) + [""]
    return lines


def _figure(scored: list[Run], path: Path) -> None:
    """One panel per metric: each run's value per scenario, the paper's for its variant as a
    black tick (Table I for self, II for unseen, III-V for known)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.4))
    for ax, metric in zip(axes, METRICS):
        x = 0
        ticks, labels = [], []
        for run in scored:
            for scenario, scores in scenario_scores(run.evaluation).items():
                value = scores.get(metric)
                if not isinstance(value, (int, float)):
                    continue
                ax.bar(x, value, color=f"C{SCENARIOS.index(scenario.split('/')[-1])}")
                reference = _paper_reference(run, scenario.split("/")[-1], metric)
                if reference is not None:
                    ax.hlines(reference, x - 0.4, x + 0.4, colors="black")
                ticks.append(x)
                labels.append(f"{run.name}\n{scenario}")
                x += 1
        ax.set_title(metric.upper() + (" ↑" if HIGHER_IS_BETTER[metric] else " ↓"))
        ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _paper_reference(run: Run, scenario: str, metric: str) -> float | None:
    for table in TABLES:
        label = _label(table, run)
        if table.scenario == scenario and label is not None:
            value = paper_value(table, label, metric)
            if value is not None:
                return value
    return None
