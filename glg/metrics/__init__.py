"""Metrics, apart by what they need: `glg.metrics.accuracy` (numpy: the annotator against the
synthesizer's ground truth, the LGAN against annotated landmarks; imported by annotate, so no
torch), `glg.metrics.faces` (numpy: CSIM, PRMSE, AUCON on what `glg.evaluate.face_reading` read) and
`glg.metrics.images` (torch: SSIM, PSNR), the paper's five evaluation metrics (thesis 4.2,
thesis Eq. 4.1-4.4; paper Sec IV-C). `write_metrics` writes any stage's metrics as DVC reads them.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_metrics(path: str | Path, metrics: dict) -> None:
    """Metrics as sorted, indented JSON (byte-identical for identical runs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
