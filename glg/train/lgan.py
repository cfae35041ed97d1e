"""Training of the landmark conditional GAN (thesis 3.3.2, Eq. 3.4), validated against a baseline.

The thesis gives no loss or optimiser for it; we take pix2pix's (Isola et al. 2017), the usual
conditional GAN with a ground truth: the DCGAN loss of a discriminator that sees the condition
(`glg.train.losses`, thesis Eq. 3.7's form) plus lambda = 100 times the L1 distance to the frame's
own landmarks, in unit coordinates (pix2pix's images are in [-1, 1] too); Adam at 2e-4, betas
(0.5, 0.999). Each step updates the discriminator, then the generator.

Samples: every training-split frame is one (identity, pose, AUs) -> landmarks pair, in the
S px coordinates the loader uses. Validation (`landmark_scores`): the held-out frames of known
identities, and the unseen identities (meaningful with face embeddings, thesis 5.2), each
scored next to the identity's mean shape (paper Eq. 3's statistics) in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from glg.annotate.aus import GEOMETRIC_AUS, action_units
from glg.config import LganConfig, to_dict
from glg.errors import GlgError
from glg.face.landmarks import AU_IDS, POSE_COLUMNS
from glg.face.mean_face import head_pose
from glg.metrics.accuracy import au_agreement, nme, pose_rmse
from glg.models import build_landmark_gan
from glg.models.warp import unit_from_pixels
from glg.store.annotations import read_identity_embeddings
from glg.store.checkpoint import digest, flat
from glg.store.networks import save_landmark_generator
from glg.store.prepared import PreparedFrames, read_identities
from glg.train import losses
from glg.train.loop import open_run, trajectory
from glg.train.runtime import (Trained, adam, check_finite, code_digest, prepared_digest,
                               start_runtime)

VALIDATION_FRAMES = 2000  # frames scored per validation set at most: a stable mean, bounded time
# The lgan params a run's weights depend on (`glg.train.loop.trajectory`).
TRAJECTORY = ("identity_input", "identity_dim", "au_dim", "noise_dim", "hidden", "batch", "lr",
              "betas", "adversarial", "reconstruction")


def train_lgan(prepared_dir: Path, annotations_dir: Path, out_dir: Path, checkpoint_dir: Path,
               metrics_dir: Path, config: LganConfig, seed: int,
               say: Callable[[str], None] = print) -> Trained:
    """Train the LGAN, resuming from `checkpoint_dir`; write `out_dir/lgan.pt` and the dvclive
    curves and summary (with the validation scores) into `metrics_dir`."""
    threads = torch.get_num_threads()
    try:
        return _train_lgan(prepared_dir, annotations_dir, out_dir, checkpoint_dir, metrics_dir,
                           config, seed, say)
    finally:
        torch.set_num_threads(threads)


def _train_lgan(prepared_dir: Path, annotations_dir: Path, out_dir: Path, checkpoint_dir: Path,
                metrics_dir: Path, config: LganConfig, seed: int,
                say: Callable[[str], None]) -> Trained:
    runtime = start_runtime("lgan", config.device)
    if runtime.device.type == "cpu":
        # MLPs this small run fastest on one thread, and a second thread contends with
        # whatever else the machine runs (benchmarks/bench_train.py times a step)
        torch.set_num_threads(1)
    device = runtime.device
    frames = PreparedFrames(prepared_dir)
    identities, _, _ = read_identities(prepared_dir)
    size = int(frames.image(0).shape[0])
    train = frames.rows("train")
    if len(train) == 0:
        raise GlgError(f"{prepared_dir}: no training frames")
    embeddings = None
    if config.identity_input == "face_recognition":
        embeddings = torch.from_numpy(read_identity_embeddings(annotations_dir,
                                                               identities["identity"]))
    torch.manual_seed(seed)
    generator, discriminator = build_landmark_gan(config, size=size, identities=len(identities),
                                                  face_embeddings=embeddings)
    generator, discriminator = generator.to(device), discriminator.to(device)
    opt_g = adam(generator.parameters(), config.lr, config.betas)
    opt_d = adam(discriminator.parameters(), config.lr, config.betas)
    sampler = torch.Generator().manual_seed(seed)  # batches and noise; checkpointed

    fingerprint = {
        "lgan": trajectory(config, TRAJECTORY),
        "seed": seed,
        "inputs": {"code": code_digest(), "prepared": prepared_digest(frames),
                   "embeddings": None if embeddings is None else digest([("e", embeddings)])},
    }
    run = open_run("train_lgan", checkpoint_dir, metrics_dir, fingerprint,
                   {"lgan": to_dict(config), "seed": seed},
                   {"generator": generator, "discriminator": discriminator},
                   {"generator": opt_g, "discriminator": opt_d}, config.steps,
                   config.keep_checkpoints, runtime, say)
    if run.resumed is not None:
        sampler.set_state(run.resumed["loader"]["sampler"])
    start, history, live = run.start, run.history, run.live

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, device=device)  # a copy: the frame tables are read-only

    real_all, identity_all = tensor(frames.landmarks[train]), tensor(frames.identity[train])
    pose_all, aus_all = tensor(frames.pose[train]), tensor(frames.aus[train])
    validation = validation_sets(frames, identities["role"].to_numpy())

    def validate(step: int) -> dict:
        generator.eval()
        scores = {name: landmark_scores(frames, rows, generated_landmarks(generator, frames))
                  for name, rows in validation.items()}
        generator.train()
        live.step = step
        for name, values in scores.items():
            for key, value in flat(values, "/").items():  # a frame count is no curve
                live.log_metric(f"val/{name}/{key}", value, plot=key != "frames")
        history["scores"] = scores
        return scores

    if start == 0:
        validate(0)
    done = start
    for step in run.steps():
        pick = torch.randint(len(train), (config.batch,), generator=sampler).to(device)
        real, identity = real_all[pick], identity_all[pick]
        pose, aus = pose_all[pick], aus_all[pick]
        noise = None
        if config.noise_dim:
            noise = torch.randn(config.batch, config.noise_dim, generator=sampler).to(device)

        fake = generator(identity, pose, aus, noise)  # (B, 68, 2) px
        loss_d = losses.discriminator_loss(discriminator(real, identity, pose, aus),
                                           discriminator(fake.detach(), identity, pose, aus))
        check_finite(step, {"discriminator": loss_d})
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        terms = losses.weighted({
            "adversarial": losses.generator_loss(discriminator(fake, identity, pose, aus)),
            "reconstruction": losses.l1(unit_from_pixels(fake, size),
                                        unit_from_pixels(real, size)),
        }, config)
        check_finite(step, terms)
        opt_g.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        opt_g.step()

        done = step + 1
        if run.due(done, config.log_every):
            live.step = done
            for name, value in {"discriminator": loss_d, **terms}.items():
                live.log_metric(f"train/{name}", value.item())
            live.log_metric("train/lr", config.lr)
            elapsed = time.perf_counter() - run.started
            live.log_metric("perf/samples_per_s", (done - start) * config.batch / elapsed)
        if run.due(done, config.checkpoint_every):
            validate(done)
            run.save(done, sampler=sampler.get_state())
    save_landmark_generator(out_dir, generator.cpu(), config,
                            identities.sort_values("index")["identity"].tolist())
    live.summary.update({"steps": config.steps, "device": device.type,
                         "identity_input": config.identity_input,
                         "samples_per_s": run.samples_per_s(done, config.batch)})
    live.end()
    return Trained(generator, {**live.summary, "val": history.get("scores", {})})


# --- validation ------------------------------------------------------------------------------


def validation_sets(frames: PreparedFrames, roles: np.ndarray) -> dict[str, np.ndarray]:
    """Rows scored: `known` (held-out frames of trained people) and `unseen` (every frame of
    the people never trained on), each at most VALIDATION_FRAMES, evenly spread."""
    sets = {"known": frames.rows("holdout"),
            "unseen": np.flatnonzero(roles[frames.identity] == "unseen")}
    return {name: rows[np.unique(np.linspace(0, len(rows) - 1, VALIDATION_FRAMES).astype(int))]
            for name, rows in sets.items() if len(rows)}


def generated_landmarks(generator: torch.nn.Module, frames: PreparedFrames) -> np.ndarray:
    """(N, 68, 2) the generator's landmarks for every prepared frame's own identity, pose, AUs."""
    device = next(generator.parameters()).device
    with torch.no_grad():
        out = generator(torch.tensor(frames.identity, device=device),
                        torch.tensor(frames.pose, device=device),
                        torch.tensor(frames.aus, device=device))
    return out.float().cpu().numpy()


def landmark_scores(frames: PreparedFrames, rows: np.ndarray, generated: np.ndarray) -> dict:
    """Generated landmarks (N, 68, 2) on `rows` against the annotations, next to the baseline of
    each identity's mean shape (paper Eq. 3's mean): NME over the inter-ocular distance; RMSE of the
    head pose the annotator (`head_pose`, solvePnP) reads off them against the input pose; and
    agreement of the AUs the annotator's rules read off them (per clip, over the AUs the rules
    measure) with the input AUs."""
    size = int(frames.image(0).shape[0])
    baseline = frames.mean[frames.identity].astype(np.float32)  # (N, 68, 2)
    truth = frames.landmarks[rows]
    out: dict = {"frames": len(rows)}
    for name, points in (("lgan", generated), ("mean_shape", baseline)):
        poses = np.array([head_pose(p, size, size) for p in points[rows]])  # (M, 3)
        said = clip_action_units(frames, rows, points)
        measured = [AU_IDS.index(au) for au in GEOMETRIC_AUS]
        agreement = [au_agreement(said[:, k] == 1, frames.aus[rows, k] == 1) for k in measured]
        f1 = [f for _, f, _ in agreement if f is not None]
        centred = points[rows] - points[rows].mean(1, keepdims=True) + truth.mean(1, keepdims=True)
        out[name] = {
            "nme": float(nme(points[rows], truth).mean()),
            # the same without the face's place in the crop, which thesis Eq. 3.4's condition lacks
            "nme_centred": float(nme(centred, truth).mean()),
            "pose_rmse": {a: pose_rmse(poses[:, k], frames.pose[rows, k])
                          for k, a in enumerate(POSE_COLUMNS)},
            "au_agreement": float(np.mean([a for a, _, _ in agreement])),
            "au_f1": float(np.mean(f1)) if f1 else 0.0,
        }
    return out


def clip_action_units(frames: PreparedFrames, rows: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(M, 18) AU presence the annotator's rules read off `points` (N, 68, 2) at `rows`: the
    rules compare each frame with its clip's neutral, so each clip of `rows` is read whole."""
    out = np.zeros((len(rows), len(AU_IDS)), np.int8)
    for clip in np.unique(frames.clip[rows]):
        members = np.flatnonzero(frames.clip == clip)  # every frame of the clip, in order
        presence, _ = action_units(points[members].astype(np.float64), np.ones(len(members), bool))
        at = np.searchsorted(members, rows[frames.clip[rows] == clip])
        out[frames.clip[rows] == clip] = presence[at]
    return out
