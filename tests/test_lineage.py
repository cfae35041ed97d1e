"""The first-order-model lineage's metrics (L1, AKD, AED) through their properties, and LPIPS on
weights the test builds: zero for identical images, growing with noise, against numbers the
reference implementation (the lpips package, 0.1.4) gave for the same weights and images, and
the one-line error when its weights are not there."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision

from glg.errors import GlgError
from glg.metrics.lineage import aed, akd, l1
from glg.metrics.lpips import ALEXNET_FILE, CHANNELS, LINEAR_FILE, load_lpips, lpips


def faces(landmarks=None, embedding=None, found=None) -> SimpleNamespace:
    n = len(landmarks if landmarks is not None else embedding)
    return SimpleNamespace(landmarks=landmarks, embedding=embedding, embedder="dlib",
                           found=np.ones(n, bool) if found is None else np.asarray(found))


def test_l1_is_the_mean_absolute_difference_on_0_1_images():
    black, white = np.zeros((2, 4, 4, 3), np.uint8), np.full((2, 4, 4, 3), 255, np.uint8)
    assert l1(black, black).tolist() == [0.0, 0.0]
    assert l1(black, white).tolist() == [1.0, 1.0]
    one = black.copy()
    one[1, 0, 0, 2] = 51  # one value of 48 off by 0.2
    assert l1(one, black) == pytest.approx([0.0, 0.2 / 48], abs=1e-15)
    with pytest.raises(GlgError, match="uint8"):
        l1(black.astype(np.float32), black)


def test_akd_is_the_mean_landmark_distance_and_nan_without_a_face():
    driving = np.random.default_rng(0).uniform(0, 100, (3, 68, 2))
    shifted = driving + np.array([3.0, 4.0])  # every point 5 px away
    shifted[2, :34] = driving[2, :34]  # half the points in place: 2.5 px on average
    got = akd(faces(driving, found=[True, True, False]), faces(shifted, found=[True, False, True]))
    assert got[0] == pytest.approx(5.0, abs=1e-12)
    assert np.isnan(got[1]) and np.isnan(got[2])  # the output's face, or the driving's, missing
    assert akd(faces(driving), faces(shifted))[2] == pytest.approx(2.5, abs=1e-12)


def test_aed_is_the_distance_of_unit_embeddings_and_nan_without_a_face():
    angle = np.array([0.0, np.pi / 2, np.pi / 3])
    reference = np.tile([1.0, 0.0], (3, 1))
    output = np.stack([np.cos(angle), np.sin(angle)], 1)
    got = aed(faces(embedding=reference), faces(embedding=output, found=[True, True, False]))
    assert got[:2] == pytest.approx([0.0, np.sqrt(2)], abs=1e-12)  # the chord: 2 sin(angle / 2)
    assert np.isnan(got[2])
    assert np.isnan(aed(faces(embedding=reference, found=[False] * 3),
                        faces(embedding=output))).all()


def write_lpips_weights(folder: Path) -> Path:
    """LPIPS-Alex weight files as torchvision and the lpips package save them, filled from a
    seeded generator: an AlexNet state dict (classifier too) and the five 1x1 convs."""
    generator = torch.Generator().manual_seed(0)
    alexnet = {k: torch.randn(v.shape, generator=generator) * (0.05 if k.endswith("weight")
                                                                 else 0.01)
               for k, v in torchvision.models.alexnet(weights=None).state_dict().items()}
    linear = {f"lin{k}.model.1.weight": torch.rand((1, c, 1, 1), generator=generator) / c
              for k, c in enumerate(CHANNELS)}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(alexnet, folder / ALEXNET_FILE)
    torch.save(linear, folder / LINEAR_FILE)
    return folder


def lpips_images() -> tuple[np.ndarray, np.ndarray]:
    """Two 64 px image pairs: one a noisy copy, one unrelated."""
    rng = np.random.default_rng(1)
    first = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    second = first.copy()
    second[0] = np.clip(first[0] + rng.normal(0, 20, first[0].shape), 0, 255).astype(np.uint8)
    second[1] = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return first, second


# lpips 0.1.4's `LPIPS(net="alex", pnet_rand=True, model_path=LINEAR_FILE)` with the AlexNet
# state of `write_lpips_weights` loaded into `net.net`, on `lpips_images()` (in [-1, 1])
REFERENCE = (0.0006055184057913721, 0.010996812954545021)


def test_lpips_on_built_weights_matches_the_reference_and_is_zero_on_identical(tmp_path):
    net = load_lpips(write_lpips_weights(tmp_path / "lpips"))
    first, second = lpips_images()
    assert lpips(first, first, net).tolist() == [0.0, 0.0]
    got = lpips(first, second, net)
    # float32 convolutions, batched otherwise than the reference runs them
    assert got == pytest.approx(REFERENCE, rel=1e-4)
    noisier = np.clip(first[:1] + np.random.default_rng(2).normal(0, 60, first[:1].shape), 0,
                      255).astype(np.uint8)
    assert lpips(first[:1], noisier, net)[0] > got[0]


def test_lpips_without_its_weights_is_one_line_naming_the_key_and_where_to_get_them(tmp_path):
    with pytest.raises(GlgError) as missing:
        load_lpips(tmp_path)
    assert "evaluate.lpips_weights" in str(missing.value) and "\n" not in str(missing.value)
    assert "download.pytorch.org" in str(missing.value)
    folder = write_lpips_weights(tmp_path / "bad")
    torch.save({"lin0.weight": torch.zeros(1, 64, 1, 1)}, folder / LINEAR_FILE)
    with pytest.raises(GlgError, match=f"{LINEAR_FILE}: LPIPS-Alex weights do not fit"):
        load_lpips(folder)
