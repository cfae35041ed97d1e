"""glg.train.losses: zero on equal inputs, the DCGAN terms, the weights, and the VGG19 builder
offline."""

import dataclasses

import pytest
import torch
import torchvision

from glg.config import LossConfig
from glg.train import losses


@pytest.fixture(scope="module")
def vgg():
    return losses.build_vgg19("random", seed=0)


def test_l1_of_equal_images_is_zero_and_counts_pixels():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert losses.l1(x, x) == 0
    assert losses.l1(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)) == pytest.approx(0.5)
    parts = [torch.rand(2, 3, 5, 7), torch.rand(2, 3, 6, 6)]
    assert losses.parts_l1(parts, parts) == 0


def test_feature_matching_of_equal_features_is_zero():
    features = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    assert losses.feature_matching(features, features) == 0
    assert losses.feature_matching(features, [f + 1 for f in features]) == pytest.approx(2.0)


def test_perceptual_of_equal_images_is_zero_and_positive_otherwise(vgg):
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert losses.perceptual(vgg, x, x) == 0
    assert losses.perceptual(vgg, x.flip(-1), x) > 0


def test_vgg_groups_are_the_first_30_layers_in_five_groups(vgg):
    assert [len(g) for g in vgg.groups] == [2, 5, 5, 9, 9]  # (1,2) (3,7) (8,12) (13,21) (22,30)
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.train().training
    assert [f.shape[1] for f in vgg(torch.zeros(1, 3, 32, 32))] == [64, 128, 256, 512, 512]


def test_perceptual_passes_gradients_to_the_fake_only(vgg):
    fake = torch.zeros(1, 3, 16, 16, requires_grad=True)
    losses.perceptual(vgg, fake, torch.rand(1, 3, 16, 16)).backward()
    assert fake.grad.abs().sum() > 0


def test_random_vgg_is_seeded(vgg):
    same, other = losses.random_vgg19_features(0), losses.random_vgg19_features(1)
    first = vgg.groups[0][0].weight
    assert torch.equal(same[0].weight, first) and not torch.equal(other[0].weight, first)
    assert torch.equal(same[28].weight, vgg.groups[4][7].weight)


def test_offline_imagenet_vgg_warns_once_and_records_random(monkeypatch):
    def offline(*, weights=None):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "vgg19", offline)  # never touches the network
    with pytest.warns(RuntimeWarning, match="FROZEN RANDOM VGG19") as record:
        vgg = losses.build_vgg19("imagenet", seed=3)
    assert len(record) == 1 and vgg.weights_used == "random"


def test_dcgan_losses():
    sure = torch.full((2, 1, 3, 3), 20.0)
    assert losses.discriminator_loss(sure, -sure) < 1e-6
    assert losses.discriminator_loss(-sure, sure) > 10
    assert losses.generator_loss(sure) < losses.generator_loss(torch.zeros(2, 1))


def test_every_term_is_weighted_by_the_loss_param_of_its_name():
    weights = sorted({f.name for f in dataclasses.fields(LossConfig)} - {"vgg_weights"})
    terms = {name: torch.tensor(float(k + 1)) for k, name in enumerate(weights)}
    for name in weights:  # one weight on, the others off: exactly that term remains
        only = LossConfig(**{w: 2.0 if w == name else 0.0 for w in weights})
        assert losses.weighted_sum(terms, only) == 2 * terms[name]
    with pytest.raises(KeyError, match="style"):
        losses.weighted_sum({"style": torch.tensor(1.0)}, LossConfig())


def test_landmark_regression_is_relative_to_the_crop():
    a = torch.zeros(1, 68, 2)
    assert losses.landmark_regression(a + 22.4, a, 224) == pytest.approx(0.1)
