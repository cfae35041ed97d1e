"""What both trainers share: a non-finite loss term stops the updates on the device, and the
run at the next read, naming the first step and term."""

import pytest
import torch

from glg.errors import GlgError
from glg.train.runtime import FiniteWatch, adam

DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])]


@pytest.mark.parametrize("device", DEVICES)
def test_no_update_after_a_non_finite_term_and_the_check_names_it(device):
    weight = torch.nn.Parameter(torch.ones(3, device=device))
    optimizer, finite = adam([weight], 0.1, (0.5, 0.999)), FiniteWatch()
    seen = []
    for step, scale in enumerate([1.0, 2.0, float("inf"), 1.0]):
        loss = (weight * scale).sum()
        finite.watch(step, {"l1": loss.detach(), "parts": loss.detach() * 0})
        optimizer.zero_grad()
        loss.backward()
        finite.step(optimizer)
        seen.append(weight.detach().clone())
        if step == 1:
            finite.check()  # all finite so far: goes on
    assert not torch.equal(seen[0], seen[1])  # finite steps update
    assert torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3])  # then none does
    assert int(optimizer.state[weight]["step"]) == 2
    with pytest.raises(GlgError, match="^step 3: loss term l1 is inf; stopped before applying"):
        finite.check()
