"""The paper's Tables I-V and thesis Table 4.7 as printed: each table's scenario, metrics and
rows, transcribed from the text (bold and underline dropped), so the report sets ours beside them.

The paper's text carries no page numbers: a table is cited by the paper's table and section and
by the thesis table that repeats it, with the thesis page (its List of Tables).
"""

from __future__ import annotations

from typing import NamedTuple

# metric -> True when larger is better (the tables' arrows)
HIGHER_IS_BETTER = {"csim": True, "ssim": True, "psnr": True, "prmse": False, "aucon": True}


class PaperTable(NamedTuple):
    """One table: where it is printed, which of our scenarios it scores, its columns and rows."""

    key: str  # "I".."V" (paper), "4.7" (thesis)
    title: str
    cite: str
    scenario: str  # our scenario the table's test set is: self | unseen | known
    federated: bool  # rows split by train.mode, (C) centralised / (F) federated
    metrics: tuple[str, ...]
    rows: tuple[tuple[str, tuple[float, ...]], ...]  # (model as printed, values in metric order)


_ALL_FIVE = ("csim", "ssim", "psnr", "prmse", "aucon")
_THREE = ("csim", "prmse", "aucon")

TABLES: tuple[PaperTable, ...] = (
    PaperTable("I", "Evaluation of self-reenactment on VoxCeleb1",
               "paper Table I (Sec IV-D-1); thesis Table 4.2, p. 36", "self", False, _ALL_FIVE, (
                   ("Mesh Guided GCN [11]", (0.822, 0.739, 30.394, 3.20, 0.887)),
                   ("MarioNETte [7]", (0.755, 0.744, 23.244, 3.13, 0.825)),
                   ("Monkey-Net [9]", (0.697, 0.734, 23.472, 3.46, 0.770)),
                   ("FirstOrder [8]", (0.813, 0.723, 30.182, 3.79, 0.886)),
                   ("NeuralHead-FF [31]", (0.229, 0.635, 20.818, 3.76, 0.791)),
                   ("X2face [6]", (0.689, 0.719, 22.537, 3.26, 0.813)),
                   ("ViT", (0.879, 0.608, 29.297, 1.97, 0.767)),
                   ("ResNet", (0.878, 0.650, 29.606, 1.58, 0.793)))),
    PaperTable("II", "Evaluation of reenacting different identities with unseen data on CelebV",
               "paper Table II (Sec IV-D-2); thesis Table 4.3, p. 36", "unseen", False, _THREE, (
                   ("MarioNETte [7]", (0.520, 3.41, 0.710)),
                   ("Mesh Guided GCN [11]", (0.635, 3.41, 0.709)),
                   ("Monkey-Net [9]", (0.451, 4.81, 0.584)),
                   ("FirstOrder [8]", (0.462, 3.90, 0.667)),
                   ("NeuralHead-FF [31]", (0.108, 3.30, 0.722)),
                   ("X2face [6]", (0.450, 3.62, 0.679)),
                   ("ViT", (0.525, 2.95, 0.694)),
                   ("ResNet", (0.515, 2.35, 0.708)))),
    PaperTable("III", "Evaluation of reenacting different identities with models trained on CelebV",
               "paper Table III (Sec IV-D-2); thesis Table 4.4, p. 37", "known", False, _THREE, (
                   ("X2Face [6]", (0.467, 8.12, 0.611)),
                   ("ViT", (0.568, 2.77, 0.692)),
                   ("ViT+LGAN+Style", (0.653, 2.66, 0.675)),
                   ("ResNet", (0.570, 2.57, 0.695)),
                   ("ResNet+LGAN+Style", (0.661, 2.68, 0.672)))),
    PaperTable("IV", "Evaluation of landmark estimation for reenacting different identities on "
               "CelebV", "paper Table IV (Sec IV-D-4); thesis Table 4.5, p. 38", "known", False,
               _THREE, (
                   ("ViT", (0.568, 2.77, 0.692)),
                   ("ViT+LSt", (0.620, 3.87, 0.646)),
                   ("ViT+LGAN", (0.619, 2.60, 0.682)),
                   ("ResNet", (0.570, 2.57, 0.695)),
                   ("ResNet+LSt", (0.616, 3.78, 0.650)),
                   ("ResNet+LGAN", (0.614, 2.49, 0.687)))),
    PaperTable("V", "Evaluation of style transfer for reenacting different identities on CelebV",
               "paper Table V (Sec IV-D-4); thesis Table 4.6, p. 39", "known", False, _THREE, (
                   ("Style", (0.647, 4.75, 0.646)),
                   ("ViT", (0.568, 2.77, 0.692)),
                   ("ViT+Style", (0.587, 3.22, 0.668)),
                   ("ResNet", (0.570, 2.57, 0.695)),
                   ("ResNet+Style", (0.606, 2.97, 0.670)))),
    # the thesis writes the full model "ResNet+Style+LGAN"; glg.config.variants calls it
    # ResNet+LGAN+Style
    PaperTable("4.7", "Evaluation of federated face reenactment on CelebV",
               "thesis Table 4.7 (Sec 4.3.5), p. 40", "known", True, _THREE, (
                   ("ResNet+Style (C)", (0.606, 2.97, 0.670)),
                   ("ResNet+Style (F)", (0.555, 3.47, 0.665)),
                   ("ResNet+Style+LGAN (C)", (0.661, 2.68, 0.672)),
                   ("ResNet+Style+LGAN (F)", (0.601, 3.57, 0.672)))),
)


def paper_value(table: PaperTable, model: str, metric: str) -> float | None:
    """The value the table prints for `model` and `metric`, or None where it prints none."""
    for name, values in table.rows:
        if name == model and metric in table.metrics:
            return values[table.metrics.index(metric)]
    return None
