"""Test helper: a tiny prepared dataset with face embeddings, tiny params for both training
stages, and the stages' command lines."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from _prepare_data import write_dataset

from glg.config import PrepareConfig, load_params, parse_section
from glg.models import build_landmark_gan
from glg.prepare import prepare
from glg.store.annotations import write_identities
from glg.store.checkpoint import digest
from glg.store.networks import save_landmark_generator
from glg.train.reenactor import train_reenact

ROOT = Path(__file__).resolve().parents[1]
S = 56  # 7 * 2^3: the smallest crop the flow head and 14-px patches both allow

# Tiny widths with the paper's structure; the ViT trunk (ResNet-34 is 21M parameters at any
# width), the LGAN's landmarks and the style branch, as Table III's ViT+LGAN+Style.
MODEL = {"backbone": "vit", "landmark_mode": "lgan", "style": True, "vit_dim": 16,
         "vit_heads": 1, "vit_mlp": 16, "vit_layers": 1, "flow_code": 4, "flow_hidden": 8,
         "flow_channels": 4, "part_channels": 2, "part_levels": 2, "generator_channels": 2,
         "generator_blocks": 1, "style_dim": 8, "discriminator_channels": 2,
         "discriminator_layers": 2}
# No download attempt; no VGG19 (a quarter of a second a step even at 56 px) but where a test
# turns it on.
LOSS = {"vgg_weights": "random", "perceptual": 0.0}
LGAN = {"identity_dim": 4, "au_dim": 4, "hidden": 16, "steps": 40, "batch": 8, "lr": 0.003,
        "log_every": 5, "checkpoint_every": 20, "device": "cpu"}
# A demo-sized federation: 2 clients, 2 local steps, 2 rounds before the stop rule may stop it.
FEDERATED = {"local_steps": 2, "min_rounds": 2, "max_rounds": 3, "round_timeout": 120.0}
TRAIN = {"steps": 6, "batch": 2, "workers": 0, "log_every": 1, "checkpoint_every": 2,
         "sample_every": 3, "val_pairs": 3, "seed": 0, "device": "cpu"}


def prepared_data(root: Path, people: int = 4) -> tuple[Path, Path]:
    """A prepared dataset at S px (`people` people, 2 of them unseen, so `people - 2` training
    identities) and annotations with face embeddings; returns (prepared, annotations)."""
    frames, annotations = write_dataset(root, identities=people, clips=2, frames=6, side=96)
    rng = np.random.default_rng(0)
    write_identities(annotations, [
        {"identity": f"id{i:02d}", "video": f"clip{c}", "backend": "dlib",
         "embedding": rng.normal(size=128).astype(np.float32)}
        for i in range(people) for c in range(2)])
    prepare(frames, annotations, root / "prepared", PrepareConfig(
        image_px=S, unseen_identities=2, test_clips=1, known_identities=2, self_pairs=6,
        unseen_pairs=4, known_pairs=4), seed=0)
    return root / "prepared", annotations


def prepared_with_lgan(root: Path, people: int = 4) -> tuple[Path, Path]:
    """(prepared, lgan): the tiny dataset and an (untrained) landmark generator for it."""
    prepared, _ = prepared_data(root, people)
    torch.manual_seed(0)
    generator, _ = build_landmark_gan(parse_section("lgan", LGAN), size=S, identities=people)
    names = pd.read_parquet(prepared / "identities.parquet").sort_values("index")["identity"]
    save_landmark_generator(root / "lgan", generator, parse_section("lgan", LGAN), list(names))
    return prepared, root / "lgan"


def write_params(path: Path, **sections: dict) -> Path:
    """params.yaml with the tiny sections above, each updated by `sections`."""
    params = {"seed": 0, "model": MODEL, "loss": LOSS, "lgan": LGAN, "train": TRAIN,
              "federated": FEDERATED}
    for name, changes in sections.items():
        params[name] = {**params[name], **changes}
    path.write_text(yaml.safe_dump(params))
    return path


def lgan_args(root: Path, prepared: Path, annotations: Path, params: Path) -> list[str]:
    return ["--prepared", str(prepared), "--annotations", str(annotations),
            "--out", str(root / "lgan"), "--checkpoints", str(root / "checkpoints" / "lgan"),
            "--metrics", str(root / "metrics" / "train_lgan"), "--params", str(params)]


def reenact_args(root: Path, prepared: Path, lgan: Path, params: Path) -> list[str]:
    return ["--prepared", str(prepared), "--lgan", str(lgan), "--out", str(root / "reenact"),
            "--checkpoints", str(root / "checkpoints" / "reenact"),
            "--metrics", str(root / "metrics" / "train_reenact"), "--params", str(params)]


def logged_steps(path: Path) -> list[int]:
    """The steps of a dvclive metric history, in the order written (repeats kept)."""
    return [int(line.split()[0]) for line in path.read_text().splitlines()[1:]]


def read_tsv(path: Path) -> dict[int, float]:
    """A dvclive metric history: step -> value."""
    lines = path.read_text().split()[2:]
    return {int(step): float(value) for step, value in zip(lines[::2], lines[1::2])}


def train_in_process(rank: int, world: int, port: int, args: list[str]) -> None:
    """One of `world` torchrun-like processes running train_reenact with the stage's `args`;
    writes the digest of the weights it ends with to `<root>/rank<r>.digest`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    paths = {key.lstrip("-"): Path(value) for key, value in zip(args[::2], args[1::2])}
    params = paths["params"]
    trained = train_reenact(paths["prepared"], paths["lgan"], paths["out"], paths["checkpoints"],
                            paths["metrics"], load_params("model", params),
                            load_params("loss", params), load_params("train", params))
    weights = digest(trained.model.state_dict().items())
    (paths["out"].parent / f"rank{rank}.digest").write_text(weights)
