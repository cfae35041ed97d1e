"""The trained networks the training stages hand on, one file each: `data/lgan/lgan.pt` (the
landmark generator, stage `train_lgan`) and `data/reenact/reenactor.pt` (the reenactor, stage
`train_reenact`). Each holds the state dict and, as plain data, what running it needs besides:
the params and size it was built from, the identities it was trained on (names; the
reenactor also their paper Eq. 3 landmark statistics) and the reenactor's part crop sizes. Both
carry `FORMAT` and their `kind`, so a file of another glg version or of the other network is refused
in one line naming it. Read with `weights_only=True`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from glg.config import parse_section, to_dict
from glg.errors import GlgError
from glg.models import LandmarkGenerator, Reenactor, build_landmark_gan, build_model
from glg.store.checkpoint import atomic_save
from glg.store.prepared import read_identities, read_parts

LGAN_FILE = "lgan.pt"
REENACTOR_FILE = "reenactor.pt"
FORMAT = 2  # of both files; 2: format, kind, identities and part sizes


class IdentityStats(NamedTuple):
    """The trained-on people: names (I,) and paper Eq. 3's landmark mean and std, (I, 68, 2) each,
    in pixels of the S crop (`glg.store.prepared`'s identity table)."""

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    # the people of the training split (role `known`): an LGAN's learned vectors of the others
    # never trained; empty in a file written before this was recorded
    trained: tuple[str, ...] = ()


class TrainedReenactor(NamedTuple):
    """A trained reenactor and what feeding it needs: the part crop sizes and the identities."""

    model: Reenactor
    part_sizes: tuple[tuple[int, int], ...]  # (h, w) per part, PART_NAMES order
    identities: IdentityStats


class TrainedLandmarkGenerator(NamedTuple):
    """A trained landmark generator and the names of its identity rows."""

    generator: LandmarkGenerator
    identity_names: tuple[str, ...]


def save_landmark_generator(out_dir: Path, generator: LandmarkGenerator, config,
                            identity_names: Sequence[str]) -> Path:
    """Write the trained landmark generator (its `lgan` params, its identities' names) to
    `out_dir/lgan.pt`."""
    embeddings = generator.condition.identity.face_embeddings
    path = Path(out_dir) / LGAN_FILE
    atomic_save(path, {"format": FORMAT, "kind": "lgan", "lgan": to_dict(config),
                       "size": generator.size, "identity_names": [str(n) for n in identity_names],
                       "face_embedding_dim": None if embeddings is None else embeddings.shape[1],
                       "state": generator.state_dict()})
    return path


def read_landmark_generator(path: Path) -> TrainedLandmarkGenerator:
    """The trained landmark generator of `path` (a folder holding lgan.pt, or the file), in eval
    mode on the CPU, with its identities' names."""
    path, saved = _read(path, LGAN_FILE, "lgan", "train_lgan")
    names = tuple(saved["identity_names"])
    dim = saved["face_embedding_dim"]
    embeddings = None if dim is None else torch.zeros(len(names), dim)
    with _refused(path, "train_lgan"):
        generator, _ = build_landmark_gan(parse_section("lgan", saved["lgan"]), size=saved["size"],
                                          identities=len(names), face_embeddings=embeddings)
        generator.load_state_dict(saved["state"])
    return TrainedLandmarkGenerator(generator.eval().requires_grad_(False), names)


def load_landmark_generator(out_dir: Path, prepared_dir: Path) -> LandmarkGenerator:
    """The trained landmark generator from `out_dir/lgan.pt`, in eval mode, on the CPU, for the
    prepared dataset `prepared_dir`: its identity rows must be that dataset's identities (it
    knows a person by row, so another dataset's would silently get someone else's)."""
    trained = read_landmark_generator(out_dir)
    table = read_identities(prepared_dir)[0].sort_values("index")
    names = tuple(str(n) for n in table["identity"])
    if trained.identity_names != names:
        first = next((k for k, (a, b) in enumerate(zip(trained.identity_names, names)) if a != b),
                     min(len(names), len(trained.identity_names)))
        raise GlgError(f"{out_dir}: the landmark GAN was trained on other identities than "
                       f"{prepared_dir} holds ({len(trained.identity_names)} against "
                       f"{len(names)}; first difference at row {first}); re-run train_lgan on "
                       "this prepared data")
    return trained.generator


def save_reenactor(out_dir: Path, model: Reenactor, prepared_dir: Path) -> Path:
    """Write the trained reenactor (its `model` params) to `out_dir/reenactor.pt` with what
    feeding it needs from the prepared dataset it trained on: the part sizes and identities."""
    table, mean, std = read_identities(prepared_dir)
    table = table.sort_values("index")
    identities = IdentityStats(tuple(table["identity"]), mean[table.index], std[table.index],
                               tuple(table.loc[table["role"] == "known", "identity"]))
    part_sizes = read_parts(prepared_dir)
    path = Path(out_dir) / REENACTOR_FILE
    atomic_save(path, {"format": FORMAT, "kind": "reenactor", "model": to_dict(model.config),
                       "size": model.size, "part_sizes": [list(map(int, s)) for s in part_sizes],
                       "identity_names": [str(n) for n in identities.names],
                       "identity_mean": torch.as_tensor(np.asarray(identities.mean, np.float32)),
                       "identity_std": torch.as_tensor(np.asarray(identities.std, np.float32)),
                       "identity_trained": [str(n) for n in identities.trained],
                       "state": model.state_dict()})
    return path


def read_reenactor(path: Path) -> TrainedReenactor:
    """The trained reenactor of `path` (a folder holding reenactor.pt, or the file), in eval mode
    on the CPU, with its part sizes and identities."""
    path, saved = _read(path, REENACTOR_FILE, "reenactor", "train_reenact")
    with _refused(path, "train_reenact"):
        model = build_model(parse_section("model", saved["model"]), size=saved["size"])
        model.load_state_dict(saved["state"])
    identities = IdentityStats(tuple(saved["identity_names"]),
                               saved["identity_mean"].double().numpy(),
                               saved["identity_std"].double().numpy(),
                               tuple(saved.get("identity_trained", ())))
    return TrainedReenactor(model.eval().requires_grad_(False),
                            tuple((int(h), int(w)) for h, w in saved["part_sizes"]), identities)


def load_reenactor(out_dir: Path) -> Reenactor:
    """The trained reenactor from `out_dir/reenactor.pt`, in eval mode, on the CPU."""
    return read_reenactor(out_dir).model


def _read(path: Path, name: str, kind: str, stage: str) -> tuple[Path, dict]:
    path = Path(path)
    path = path / name if path.is_dir() or not path.suffix else path
    if not path.is_file():
        raise GlgError(f"{path}: trained network not found (run {stage} first)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file
        raise GlgError(f"{path}: unreadable network file ({type(err).__name__}); "
                       f"re-run {stage}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        found = saved.get("format", "none") if isinstance(saved, dict) else "none"
        raise GlgError(f"{path}: not a {kind} file of this glg version (format {found}, "
                       f"expected {FORMAT}); re-run {stage}")
    if saved.get("kind") != kind:
        raise GlgError(f"{path}: a {saved.get('kind')} file, expected a {kind} file "
                       f"(written by {stage})")
    return path, saved


@contextlib.contextmanager
def _refused(path: Path, stage: str) -> Iterator[None]:
    """Turns a saved config or state this code cannot build (another variant or version) into
    one line naming the file."""
    try:
        yield
    except (GlgError, RuntimeError, KeyError, TypeError) as err:
        first = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise GlgError(f"{path}: a network of another glg version or variant ({first}); "
                       f"re-run {stage}") from None
