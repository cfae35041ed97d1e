"""glg.store.checkpoint: atomic writes, the newest kept, unreadable ones skipped, other params
refused but kept aside until a new run writes its first."""

import random

import numpy as np
import torch

from glg.store.checkpoint import (checkpoints, load_checkpoint, rng_state, save_checkpoint,
                                  set_rng_state)

FINGERPRINT = {"model": {"backbone": "resnet", "sizes": (3, 4)}, "inputs": {"data": "a" * 64}}


def state(step: int, fingerprint=FINGERPRINT) -> dict:
    return {"step": step, "fingerprint": fingerprint, "models": {"w": torch.full((3,), step)},
            "optimizers": {}, "rng": rng_state()}


def test_the_newest_checkpoints_are_kept_and_a_cut_write_is_ignored(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    (tmp_path / ".step-000000040.pt.tmp").write_bytes(b"half a checkpoint")  # killed mid-write
    assert [p.name for p in checkpoints(tmp_path)] == ["step-000000020.pt", "step-000000030.pt"]
    said = []
    loaded = load_checkpoint(tmp_path, FINGERPRINT, said.append)
    assert loaded["step"] == 30 and torch.equal(loaded["models"]["w"], torch.full((3,), 30))
    assert said == [] and not list(tmp_path.glob(".*.tmp"))


def test_an_unreadable_checkpoint_is_named_and_the_previous_one_used(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    newest = checkpoints(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    said = []
    assert load_checkpoint(tmp_path, FINGERPRINT, said.append)["step"] == 10
    assert len(said) == 1 and str(newest) in said[0] and "unreadable" in said[0]


def test_a_checkpoint_under_other_params_starts_fresh(tmp_path):
    save_checkpoint(tmp_path, 10, state(10), keep=2)
    other = {"model": {"backbone": "vit", "sizes": [3, 4]}, "inputs": {"data": "b" * 64}}
    said = []
    assert load_checkpoint(tmp_path, other, said.append) is None
    assert said == [f"checkpoint {tmp_path / 'step-000000010.pt'} was written under other params "
                    "(model.backbone: resnet -> vit); starting fresh (the old checkpoints wait in "
                    f"{tmp_path / 'stale'} until this run writes its first)"]
    assert checkpoints(tmp_path) == []
    save_checkpoint(tmp_path, 10, state(10), keep=2)
    same = {"model": {"backbone": "resnet", "sizes": [3, 4]}, "inputs": {"data": "a" * 64}}
    assert load_checkpoint(tmp_path, same, said.append)["step"] == 10  # lists read as tuples


def test_a_run_under_other_params_that_fails_before_its_first_checkpoint_loses_nothing(
        tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    said = []
    for lr in (1e30, 1e31):  # two runs under bad params, each stopped before its first checkpoint
        assert load_checkpoint(tmp_path, {**FINGERPRINT, "lr": lr}, said.append) is None
        assert checkpoints(tmp_path) == []
    assert said[-1].startswith(f"checkpoint {tmp_path / 'stale' / 'step-000000030.pt'} was "
                               "written under other params (lr: absent -> 1e+31); starting fresh")
    said = []
    loaded = load_checkpoint(tmp_path, FINGERPRINT, said.append)  # the params fixed
    assert loaded["step"] == 30 and torch.equal(loaded["models"]["w"], torch.full((3,), 30))
    assert len(said) == 1 and "moved back" in said[0]
    assert [p.name for p in checkpoints(tmp_path)] == ["step-000000020.pt", "step-000000030.pt"]
    assert not (tmp_path / "stale").exists()
    assert load_checkpoint(tmp_path, FINGERPRINT, said.append)["step"] == 30 and len(said) == 1


def test_a_run_under_other_params_keeps_only_its_own_after_its_first_checkpoint(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    other = {**FINGERPRINT, "lr": 1.0}
    assert load_checkpoint(tmp_path, other, print) is None
    save_checkpoint(tmp_path, 5, state(5, other), keep=2)
    assert [p.name for p in checkpoints(tmp_path)] == ["step-000000005.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000005.pt"]
    said = []
    assert load_checkpoint(tmp_path, other, said.append)["step"] == 5 and said == []
    assert load_checkpoint(tmp_path, FINGERPRINT, said.append) is None  # nothing to move back
    assert [p.name for p in checkpoints(tmp_path / "stale")] == ["step-000000005.pt"]


def test_every_rng_comes_back(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    save_checkpoint(tmp_path, 1, state(1), keep=1)
    draws = torch.rand(3), np.random.rand(3), random.random()
    set_rng_state(load_checkpoint(tmp_path, FINGERPRINT, print)["rng"])
    again = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1])
    assert draws[2] == again[2]


def test_a_checkpoint_past_the_steps_asked_is_passed_over_and_kept(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    said = []
    assert load_checkpoint(tmp_path, FINGERPRINT, said.append, until=15)["step"] == 10
    assert said == [f"checkpoint {tmp_path / 'step-000000020.pt'} is past step 15, where this "
                    "run ends (a longer run of these params; it stays): resuming from "
                    f"{tmp_path / 'step-000000010.pt'}"]
    assert load_checkpoint(tmp_path, FINGERPRINT, said.append, until=5) is None
    assert said[-1].endswith("it stays): none at or before it, starting fresh")
    # the shorter run's own checkpoints are kept beside the longer run's, not pruned by them
    for step in (2, 4, 5):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    assert [p.name for p in checkpoints(tmp_path)] == [
        "step-000000004.pt", "step-000000005.pt", "step-000000010.pt", "step-000000020.pt"]
    assert load_checkpoint(tmp_path, FINGERPRINT, said.append, until=5)["step"] == 5
    assert load_checkpoint(tmp_path, FINGERPRINT, said.append, until=20)["step"] == 20


def test_a_checkpoint_past_the_steps_asked_under_other_params_is_moved_aside(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path, step, state(step), keep=2)
    said = []
    assert load_checkpoint(tmp_path, {**FINGERPRINT, "lr": 1.0}, said.append, until=5) is None
    assert said[0].startswith(f"checkpoint {tmp_path / 'step-000000020.pt'} was written under "
                              "other params (lr: absent -> 1.0); starting fresh")
    save_checkpoint(tmp_path, 5, state(5, {**FINGERPRINT, "lr": 1.0}), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000005.pt"]
