"""The trained networks the training stages hand on, one file each: `data/lgan/lgan.pt` (the
landmark generator, stage `train_lgan`) and `data/reenact/reenactor.pt` (the reenactor, stage
`train_reenact`). Each holds the state dict and the params and sizes it was built from, as
plain data, and is read with `weights_only=True`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glg.checkpoint import atomic_save
from glg.config import parse_section, to_dict
from glg.errors import GlgError
from glg.models import LandmarkGenerator, Reenactor, build_landmark_gan, build_model

LGAN_FILE = "lgan.pt"
REENACTOR_FILE = "reenactor.pt"


def save_landmark_generator(out_dir: Path, generator: LandmarkGenerator, config,
                            identities: int) -> Path:
    """Write the trained landmark generator (and its `lgan` params) to `out_dir/lgan.pt`."""
    embeddings = generator.condition.identity.face_embeddings
    path = Path(out_dir) / LGAN_FILE
    atomic_save(path, {"lgan": to_dict(config), "size": generator.size, "identities": identities,
                       "face_embedding_dim": None if embeddings is None else embeddings.shape[1],
                       "state": generator.state_dict()})
    return path


def load_landmark_generator(out_dir: Path) -> LandmarkGenerator:
    """The trained landmark generator from `out_dir/lgan.pt`, in eval mode, on the CPU."""
    saved = _read(Path(out_dir) / LGAN_FILE, "train_lgan")
    config = parse_section("lgan", saved["lgan"])
    dim = saved["face_embedding_dim"]
    embeddings = None if dim is None else torch.zeros(saved["identities"], dim)
    generator, _ = build_landmark_gan(config, size=saved["size"], identities=saved["identities"],
                                      face_embeddings=embeddings)
    generator.load_state_dict(saved["state"])
    return generator.eval().requires_grad_(False)


def save_reenactor(out_dir: Path, model: Reenactor) -> Path:
    """Write the trained reenactor (and its `model` params) to `out_dir/reenactor.pt`."""
    path = Path(out_dir) / REENACTOR_FILE
    atomic_save(path, {"model": to_dict(model.config), "size": model.size,
                       "state": model.state_dict()})
    return path


def load_reenactor(out_dir: Path) -> Reenactor:
    """The trained reenactor from `out_dir/reenactor.pt`, in eval mode, on the CPU."""
    saved = _read(Path(out_dir) / REENACTOR_FILE, "train_reenact")
    model = build_model(parse_section("model", saved["model"]), size=saved["size"])
    model.load_state_dict(saved["state"])
    return model.eval().requires_grad_(False)


def _read(path: Path, stage: str) -> dict:
    if not path.is_file():
        raise GlgError(f"{path}: trained weights not found (run {stage} first)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file
        raise GlgError(f"{path}: unreadable weights ({type(err).__name__}); "
                       f"re-run {stage}") from None
