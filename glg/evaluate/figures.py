"""The evaluation's figures, as `dvc plots` images: a sample grid per scenario (source | driving |
output) and, per metric, the distribution of the per-pair values of each scenario with the
sanity rows' means beside it."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")  # files only; no display on a stage's machine
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

# per-pair column -> (title, better)
METRICS = {"csim": ("CSIM (thesis Eq. 4.1)", "higher"), "ssim": ("SSIM (thesis Eq. 4.3)", "higher"),
           "psnr": ("PSNR (thesis Eq. 4.2), dB", "higher"), "prmse": ("pose RMSE per pair, degrees",
                                                              "lower"),
           "aucon": ("AUCON (thesis Eq. 4.4)", "higher")}
SANITY_LINES = {"driving_as_output": "--", "source_as_output": ":"}


def write_grid(path: Path, grid: np.ndarray) -> None:
    """A sample grid (rows x S, 3 x S, 3) RGB uint8 as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if grid.size:
        cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def write_distributions(path: Path, per_pair: pd.DataFrame) -> None:
    """One PNG, a panel per metric: histograms of the model's per-pair values, one per scenario,
    and vertical lines at the sanity rows' means (dashed: driving as output; dotted: source)."""
    shown = [m for m in METRICS if m in per_pair and per_pair[m].notna().any()]
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, panels = plt.subplots(1, max(len(shown), 1), figsize=(3.2 * max(len(shown), 1), 3),
                                  dpi=100, squeeze=False)
    for axes, metric in zip(panels[0], shown):
        title, better = METRICS[metric]
        for k, (scenario, rows) in enumerate(per_pair.groupby("scenario", sort=False)):
            model = rows.loc[rows["output"] == "model", metric].dropna()
            if len(model):
                axes.hist(model, bins=20, alpha=0.5, color=f"C{k}")
            for output, style in SANITY_LINES.items():
                values = rows.loc[rows["output"] == output, metric].dropna()
                if len(values):
                    axes.axvline(values.mean(), color=f"C{k}", linestyle=style)
        axes.set_title(f"{title}\n{better} is better", fontsize=8)
        axes.tick_params(labelsize=7)
    scenarios = per_pair.loc[per_pair["output"] == "model"].groupby("scenario", sort=False)
    figure.legend(handles=[Patch(color=f"C{k}", alpha=0.5, label=f"{scenario}: "
                                 f"{rows['face_found'].sum()} of {len(rows)} outputs with a face")
                           for k, (scenario, rows) in enumerate(scenarios)],
                  loc="upper left", fontsize=7)
    figure.suptitle("model per pair; dashed: driving as output, dotted: source as output "
                    "(means)", fontsize=8)
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.12, top=0.72, wspace=0.3)
    figure.savefig(path)
    plt.close(figure)
