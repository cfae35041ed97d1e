"""Training checkpoints, shared by both trainers: atomic, the newest few kept, resumed only
under the same fingerprint.

A checkpoint is one `step-NNNNNNNNN.pt` holding plain data and tensors only (so it loads with
`weights_only=True`): the step, the fingerprint it was written under, the params, the state
dicts of models and optimisers, every RNG state (`rng_state`) and the loader's position. It is
written to a hidden temporary file, fsynced and renamed, so a process killed at any moment
leaves either the previous checkpoints or the new one, never a half-written file under a
checkpoint's name. On resume the newest readable one is used; one that cannot be read is named
in one line and the one before it is tried. The fingerprint is what the training trajectory
depends on (params and inputs, each trainer says which); a checkpoint written under another one
is named in one line with the first difference, and training starts fresh. The process that
writes checkpoints moves the old ones into `stale/` (replacing an earlier `stale/`), where they
wait until the new run has written its first checkpoint: a run that fails before then loses
nothing, and a later run under their fingerprint moves them back and resumes from them. A run
asked for fewer steps than the folder's newest checkpoint (same fingerprint) resumes from the
newest at or before its end; the later ones stay, never pruned by its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_GLOB = "step-*.pt"
STALE = "stale"  # the subfolder where checkpoints of other params wait for a new run's first
REQUIRED = ("step", "fingerprint", "models", "optimizers", "rng")


def checkpoint_path(directory: Path, step: int) -> Path:
    """The file of the checkpoint at `step`."""
    return Path(directory) / f"step-{step:09d}.pt"


def checkpoints(directory: Path) -> list[Path]:
    """The checkpoint files in `directory`, oldest step first."""
    return sorted(Path(directory).glob(CHECKPOINT_GLOB), key=_step)


def atomic_save(path: Path, value: Any) -> None:
    """`torch.save` to a hidden temporary file beside `path`, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.tmp"
    with open(temporary, "wb") as file:
        torch.save(value, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync_folder(path.parent)


def save_checkpoint(directory: Path, step: int, state: Mapping[str, Any], keep: int) -> Path:
    """Write `state` as the checkpoint at `step` (`atomic_save`), then delete `stale/` and all
    but the newest `keep` checkpoints at `step` or before. Later ones are a longer run's of the
    same fingerprint (`load_checkpoint` moved any other aside): they stay, and a run asked for
    their steps again resumes from them."""
    final = checkpoint_path(directory, step)
    atomic_save(final, dict(state))
    stale = Path(directory) / STALE
    if stale.is_dir():  # this run has a checkpoint of its own now
        shutil.rmtree(stale)
    for old in [p for p in checkpoints(directory) if _step(p) <= step][:-keep]:
        old.unlink()
    return final


def load_checkpoint(directory: Path, fingerprint: Mapping[str, Any], say: Callable[[str], None],
                    remove_stale: bool = True, until: int | None = None) -> dict | None:
    """The newest readable checkpoint written under `fingerprint`, at step `until` at the most,
    or None for a fresh start.

    An unreadable checkpoint (truncated, corrupt, not ours): one line naming it, then the one
    before. One written under another fingerprint: one line naming it and the first difference;
    with `remove_stale` (the process that writes checkpoints) every checkpoint there is moved
    into `stale/`, replacing an earlier one. With no readable checkpoint in `directory`, the
    newest in `stale/` is tried: one of `fingerprint` is resumed, and with `remove_stale` the
    checkpoints there are moved back. The newest checkpoint decides whether the folder is of
    `fingerprint`; when it is past `until`, a longer run's of these params, the newest at
    `until` or before is resumed (said), or none.
    """
    directory = Path(directory)
    stale = directory / STALE
    for temporary in directory.glob(f".{CHECKPOINT_GLOB}.tmp"):
        temporary.unlink(missing_ok=True)  # a write that was cut short
    found = _newest_readable(directory, say)
    if found is None and stale.is_dir():  # a run under other params failed before its first
        found = _newest_readable(stale, say)
    if found is None:
        return None
    path, state = found
    difference = first_difference(state["fingerprint"], fingerprint)
    if difference is None:
        if remove_stale and path.parent == stale:
            _move_checkpoints(stale, directory)
            shutil.rmtree(stale)
            say(f"checkpoint {path} is of these params: the checkpoints in {stale} are moved "
                "back")
            path = directory / path.name
        if until is None or _step(path) <= until:
            return state
        earlier = _newest_readable(path.parent, say, until)
        say(f"checkpoint {path} is past step {until}, where this run ends (a longer run of "
            "these params; it stays): " + (f"resuming from {earlier[0]}" if earlier else
                                           "none at or before it, starting fresh"))
        return earlier[1] if earlier else None
    if remove_stale and path.parent == directory:
        if stale.is_dir():
            shutil.rmtree(stale)
        stale.mkdir()
        _move_checkpoints(directory, stale)
    kept = f" (the old checkpoints wait in {stale} until this run writes its first)"
    say(f"checkpoint {path} was written under other params ({difference}); starting fresh"
        f"{kept if stale.is_dir() else ''}")
    return None


def first_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """`key: old -> new` for the first differing dotted key of two nested mappings, in the new
    one's order (params before input digests, as the trainers write them), or None."""
    a, b = flat(_plain(old)), flat(_plain(new))
    for key in [*b, *(k for k in a if k not in b)]:
        if a.get(key) != b.get(key):
            return f"{key}: {_short(a.get(key))} -> {_short(b.get(key))}"
    return None


def digest(tensors: Iterable[tuple[str, torch.Tensor | np.ndarray]]) -> str:
    """SHA-256 of named tensors or arrays (names, dtypes, shapes and bytes), for fingerprints."""
    sha = hashlib.sha256()
    for name, value in tensors:
        array = value.detach().cpu().contiguous() if isinstance(value, torch.Tensor) else value
        sha.update(f"{name}:{array.dtype}:{tuple(array.shape)};".encode())
        if isinstance(array, torch.Tensor):
            array = array.view(-1).view(torch.uint8).numpy()
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()


def training_state(step: int, fingerprint: Mapping[str, Any], params: Mapping[str, Any],
                   models: Mapping[str, torch.nn.Module],
                   optimizers: Mapping[str, torch.optim.Optimizer], **extra: Any) -> dict:
    """A checkpoint's content: step, fingerprint, params, the state dicts of `models` and
    `optimizers` by name, every RNG state (`rng_state`) and any `extra` plain data."""
    return {"step": step, "fingerprint": dict(fingerprint), "params": dict(params),
            "models": {name: m.state_dict() for name, m in models.items()},
            "optimizers": {name: o.state_dict() for name, o in optimizers.items()},
            "rng": rng_state(), **extra}


def restore(state: Mapping[str, Any], models: Mapping[str, torch.nn.Module],
            optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    """Load what `training_state` saved into the same models and optimisers, and the RNGs."""
    for name, model in models.items():
        model.load_state_dict(state["models"][name])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    set_rng_state(state["rng"])


# --- random number generators ----------------------------------------------------------------


def rng_state() -> dict:
    """Every global RNG state (Python, numpy, torch CPU and CUDA) as checkpoint-safe data."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- helpers ---------------------------------------------------------------------------------


def _step(path: Path) -> int:
    return int(path.stem[5:])  # step-NNNNNNNNN.pt


def _newest_readable(directory: Path, say: Callable[[str], None],
                     until: int | None = None) -> tuple[Path, dict] | None:
    """The newest checkpoint in `directory` at step `until` at the most that loads, with its
    content; one line for each newer one that does not."""
    for path in reversed(checkpoints(directory)):
        if until is not None and _step(path) > until:
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or any(key not in state for key in REQUIRED):
                raise ValueError("not a glg checkpoint")
        except Exception as err:  # torch raises many kinds on a truncated or foreign file
            say(f"checkpoint {path} is unreadable ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:80] if str(err) else ''}); trying the previous one")
            continue
        return path, state
    return None


def _move_checkpoints(source: Path, target: Path) -> None:
    """Rename every checkpoint in `source` into `target`, newest first: a move cut short leaves
    the newest where it is read first."""
    for path in reversed(checkpoints(source)):
        os.replace(path, target / path.name)
    _fsync_folder(target)
    _fsync_folder(source)


def _plain(value: Any) -> Any:
    """Tuples as lists, as JSON would have them, so saved and fresh fingerprints compare."""
    return json.loads(json.dumps(value))


def flat(value: Any, separator: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict keyed by paths, `separator` between the keys: {"a.b": 1}."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(flat(inner, separator, f"{prefix}{separator}{key}" if prefix else str(key)))
    return out


def _short(value: Any) -> str:
    text = "absent" if value is None else str(value)
    return text[:12] if len(text) == 64 else text  # a digest: its first 12 hex digits


def _fsync_folder(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
