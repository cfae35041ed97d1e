"""Built-in demo dataset: talking-head clips rendered from two public-domain portraits.

`synthesize` (the stage's function) plans every clip (`plans.py`) of every identity
(`faces.py`), renders and encodes the clips over a pool of processes (`render.py`) and writes
their exact ground truth, one row per frame: landmarks (px, glg/face/landmarks.py's convention),
pose (degrees) and the presence of the paper's 18 AUs (Sec III-B-2).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from glg.config import SynthesizeConfig
from glg.errors import GlgError
from glg.face.landmarks import AU_PRESENCE, POSE_COLUMNS, X_COLUMNS, Y_COLUMNS
from glg.synthesize.faces import Identity
from glg.synthesize.plans import ClipPlan, plan_dataset
from glg.synthesize.render import render_clip

GROUND_TRUTH = "ground_truth.parquet"

# An AU is present in the ground truth when its intensity (0..1, FACS' 0..5 scale / 5) reaches
# 0.4, i.e. FACS intensity 2 ("B", slight evidence); the paper fixes no threshold (Sec IV-C
# takes presence from OpenFace), so this is our choice.
PRESENT_AT = 0.4


def ground_truth_table(identity: str, plan: ClipPlan, landmarks: np.ndarray) -> pd.DataFrame:
    """The ground-truth rows of one clip: ids, landmarks (px), pose (degrees), AU presence."""
    n = len(plan.poses)
    columns = {"identity": [identity] * n, "video": [plan.name] * n,
               "frame": np.arange(n, dtype=np.int64)}
    columns |= {c: landmarks[:, i, 0].astype(np.float32) for i, c in enumerate(X_COLUMNS)}
    columns |= {c: landmarks[:, i, 1].astype(np.float32) for i, c in enumerate(Y_COLUMNS)}
    columns |= {c: plan.poses[:, i].astype(np.float32) for i, c in enumerate(POSE_COLUMNS)}
    columns |= {c: (plan.aus[:, i] >= PRESENT_AT).astype(np.int8)
                for i, c in enumerate(AU_PRESENCE)}
    return pd.DataFrame(columns)


def _render_job(job: tuple[Identity, ClipPlan, Path, int, int]) -> pd.DataFrame:
    identity, plan = job[:2]
    return ground_truth_table(identity.name, plan, render_clip(*job))


def synthesize(out: Path, config: SynthesizeConfig, seed: int) -> pd.DataFrame:
    """Write the demo dataset to `out`: `<identity>/<clip>.mp4` and `ground_truth.parquet`.

    The result depends only on `config` (not `config.workers`) and `seed`. `out` is replaced
    as a whole; an existing folder that is not a previous output is refused.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / GROUND_TRUTH).is_file():
        raise GlgError(f"{out}: exists and is not a synthesize output; refusing to replace it")
    identities, plans = plan_dataset(config, seed)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    jobs = [(identities[p.identity], p, partial / identities[p.identity].name / f"{p.name}.mp4",
             config.frame_px, config.fps) for p in plans]
    if config.workers > 1 and len(jobs) > 1:
        workers = min(config.workers, len(jobs))
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            tables = list(pool.map(_render_job, jobs))
    else:
        tables = [_render_job(job) for job in jobs]
    truth = pd.concat(tables, ignore_index=True)
    truth.to_parquet(partial / GROUND_TRUTH, index=False)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return truth
