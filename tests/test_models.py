"""glg.models: shapes of every network on tiny configs, parameter counts, the facade, overfitting."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from glg import losses
from glg.config import ConfigError, LossConfig, ModelConfig, parse_section
from glg.errors import GlgError
from glg.models import (VARIANTS, build_discriminator, build_landmark_discriminator, build_model,
                        crop_parts, parameter_counts, paste_parts, variant_config)
from glg.models.flow import FlowEstimator, ResNetFeatures, ViTFeatures
from glg.models.generator import ImageGenerator, feature_side
from glg.models.lgan import LandmarkGenerator
from glg.models.parts import PartReenactor
from glg.models.style import ModulatedConv2d

S = 56  # 7 * 2^3: the smallest crop the flow head and 14-px patches both allow
PART_SIZES = [(10, 14), (10, 14), (13, 12), (12, 21)]  # odd sizes on purpose


def tiny(**changes) -> ModelConfig:
    """A model config with the paper's structure and tiny widths, for fast CPU tests."""
    config = ModelConfig(vit_dim=32, vit_heads=2, vit_mlp=64, vit_layers=1, flow_code=8,
                         flow_hidden=16, flow_channels=8, part_channels=4, part_levels=2,
                         generator_channels=4, generator_blocks=1, style_dim=16,
                         discriminator_channels=4, lgan_identity_dim=4, lgan_au_dim=4,
                         lgan_noise_dim=2, lgan_hidden=8)
    return dataclasses.replace(config, **changes)


def random_batch(batch: int = 2, seed: int = 0) -> SimpleNamespace:
    """A batch with exactly glg.data.Pair's fields and shapes (collated), at S x S."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    return SimpleNamespace(
        source=rand(batch, 3, S, S) * 2 - 1, driving=rand(batch, 3, S, S) * 2 - 1,
        source_landmarks=rand(batch, 68, 2) * S, driving_landmarks=rand(batch, 68, 2) * S,
        driving_heatmap=rand(batch, 1, S, S),
        source_parts=[rand(batch, 3, h, w) * 2 - 1 for h, w in PART_SIZES],
        driving_heatmap_parts=[rand(batch, 1, h, w) for h, w in PART_SIZES],
        part_centres=torch.tensor([[16.0, 14.0], [40.0, 14.0], [28.0, 28.0], [28.0, 46.0]])
        .expand(batch, 4, 2).clone(),
        driving_pose=rand(batch, 3) * 40 - 20, driving_aus=(rand(batch, 18) > 0.5).float(),
        source_identity=torch.arange(batch) % 3, driving_identity=torch.arange(batch) % 3)


# --- flow estimator ------------------------------------------------------------------------


def test_vit_flow_estimator_shapes():
    out = FlowEstimator(tiny(backbone="vit"), S)(torch.zeros(2, 3, S, S), torch.zeros(2, 3, S, S))
    assert out.flow.shape == (2, 2, S, S)
    assert out.source_landmarks.shape == out.driving_landmarks.shape == (2, 68, 2)


def test_flow_starts_as_the_identity_warp():
    out = FlowEstimator(tiny(), S)(torch.randn(1, 3, S, S), torch.randn(1, 3, S, S))
    assert torch.all(out.flow == 0)


def test_vit_patch_input_luma_or_rgb():
    luma, rgb = ViTFeatures(tiny(), S), ViTFeatures(tiny(vit_patch_input="rgb"), S)
    assert luma.to_patches.in_features == 196  # thesis 3.1: a patch flattens to 1 x 196
    assert rgb.to_patches.in_features == 588
    assert rgb(torch.zeros(1, 3, S, S))[0].shape == (1, 2, 32)


@pytest.fixture(scope="module")
def resnet_features():
    return ResNetFeatures(ModelConfig())  # the real ResNet-34 trunk, built once


def test_resnet_features_shape(resnet_features):
    features, landmarks = resnet_features(torch.zeros(2, 3, S, S))
    assert features.shape == (2, 2, 768) and landmarks is None


def test_parameter_counts_match_the_paper(resnet_features):
    vit = ViTFeatures(ModelConfig(), 224)
    vit_layers = sum(p.numel() for p in vit.blocks.parameters())
    resnet = sum(p.numel() for p in resnet_features.trunk.parameters())
    assert len(vit.blocks) == 3 and vit.to_patches.in_features == 196
    assert abs(vit_layers / 19e6 - 1) < 0.2  # Sec IV-D: three ViT layers, 19M
    assert abs(resnet / 21e6 - 1) < 0.2  # Sec IV-B: ResNet-34, 21M


def test_size_must_suit_the_flow_head():
    with pytest.raises(GlgError, match="prepare.size"):
        FlowEstimator(tiny(), 100)


# --- parts ---------------------------------------------------------------------------------


def test_part_reenactor_keeps_odd_part_sizes():
    net = PartReenactor(channels=4, levels=3)
    out = net(torch.zeros(2, 3, 13, 21), torch.zeros(2, 1, 13, 21))
    assert out.shape == (2, 3, 13, 21) and out.abs().max() <= 1


def test_paste_puts_parts_centred_on_the_centres():
    part = torch.ones(1, 3, 4, 6)
    canvas = paste_parts([part], torch.tensor([[[10.0, 20.0]]]), 32)
    inside = canvas[0, 0] == 1
    ys, xs = inside.nonzero(as_tuple=True)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (7, 12, 18, 21)  # 6 wide, 4 high at (10, 20)
    assert inside.sum() == 24 and torch.all(canvas[0, 0][~inside] == -1)


def test_paste_clips_at_the_border_and_crop_inverts_paste():
    torch.manual_seed(0)
    parts = [torch.rand(2, 3, h, w) for h, w in PART_SIZES]
    centres = random_batch().part_centres
    canvas = paste_parts(parts, centres, S)
    for got, want in zip(crop_parts(canvas, centres, PART_SIZES), parts):
        assert torch.equal(got, want)
    edge = paste_parts([torch.ones(1, 1, 10, 10)], torch.tensor([[[1.0, 1.0]]]), 16)
    assert edge.shape == (1, 1, 16, 16) and (edge == 1).sum() == 36


# --- generator and style -------------------------------------------------------------------


@pytest.mark.parametrize("style", [True, False])
def test_generator_shapes(style):
    gen = ImageGenerator(tiny(style=style), S)
    out = gen(torch.zeros(2, 3, S, S), torch.zeros(2, 2, S, S), torch.zeros(2, 3, S, S),
              torch.zeros(2, 1, S, S))
    assert out.shape == (2, 3, S, S)
    assert feature_side(224) == 58  # Sec III-C: r is 58 x 58
    assert gen.encode_source(torch.zeros(1, 3, 224, 224)).shape[-2:] == (58, 58)


def test_modulated_conv_with_unit_styles_and_no_demodulation_is_a_conv():
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, demodulate=False)
    x = torch.randn(2, 5, 9, 9)
    assert torch.allclose(conv(x, torch.ones(2, 5)), F.conv2d(x, conv.weight, padding=1),
                          atol=1e-5)


def test_demodulation_removes_the_scale_of_the_styles():
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3)
    x, styles = torch.randn(2, 5, 9, 9), torch.rand(2, 5) + 0.5
    assert torch.allclose(conv(x, styles), conv(x, styles * torch.tensor([[3.0], [0.2]])),
                          atol=1e-4)


def test_style_is_read_from_the_heatmap():
    gen = ImageGenerator(tiny(style=True), S)
    args = (torch.zeros(1, 3, S, S), None, torch.zeros(1, 3, S, S))
    heatmap = torch.zeros(1, 1, S, S)
    heatmap[..., 20:30, 10:40] = 1
    assert not torch.allclose(gen(*args, heatmap), gen(*args, torch.zeros(1, 1, S, S)))


# --- discriminators ------------------------------------------------------------------------


def test_patch_discriminator_returns_logits_and_features():
    judgement = build_discriminator(tiny())(torch.zeros(2, 3, S, S))
    assert judgement.logits.shape[:2] == (2, 1) and judgement.logits.shape[-1] > 1
    assert len(judgement.features) == tiny().discriminator_layers + 1


def test_landmark_gan_shapes_and_conditioning():
    torch.manual_seed(0)
    config, batch = tiny(), random_batch()
    g = LandmarkGenerator(config, 3, S)
    noise = torch.zeros(2, config.lgan_noise_dim)
    landmarks = g(batch.source_identity, batch.driving_pose, batch.driving_aus, noise)
    assert landmarks.shape == (2, 68, 2)
    other_aus = 1 - batch.driving_aus
    assert not torch.allclose(landmarks, g(batch.source_identity, batch.driving_pose, other_aus,
                                           noise))
    d = build_landmark_discriminator(config, size=S, identities=3)
    logits = d(landmarks, batch.source_identity, batch.driving_pose, batch.driving_aus)
    assert logits.shape == (2, 1)


def test_lgan_with_face_recognition_embeddings():
    model = build_model(tiny(landmarks="lgan", identity_input="face_recognition"), size=S,
                        identities=3)
    with pytest.raises(GlgError, match="never set"):
        model(random_batch())
    model.set_identity_embeddings(torch.randn(3, 128))
    assert model(random_batch()).generated_landmarks.shape == (2, 68, 2)


# --- facade --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in VARIANTS if not n.startswith("ResNet")])
def test_facade_builds_and_runs_every_variant(name):
    config = variant_config(name, tiny())
    out = build_model(config, size=S, identities=3)(random_batch())
    assert out.image.shape == (2, 3, S, S) and out.parts_image.shape == (2, 3, S, S)
    assert [p.shape[-2:] for p in out.parts] == PART_SIZES
    assert (out.flow is None) == (not config.flow)
    assert (out.generated_landmarks is None) == (config.landmarks != "lgan")
    assert (out.driving_landmarks is None) == (not config.flow)


def test_bf16_autocast_forward_and_backward():
    model = build_model(variant_config("ViT+LGAN+Style", tiny()), size=S, identities=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(random_batch())
    assert out.image.dtype == torch.bfloat16
    out.image.float().mean().backward()
    assert model.generator.to_rgb.weight.grad is not None


def test_variants_differ_where_the_paper_says():
    counts = {n: parameter_counts(build_model(variant_config(n, tiny()), size=S, identities=3))
              for n in ("ViT", "ViT+Style", "ViT+LGAN", "Style")}
    assert counts["ViT+Style"]["generator"] > counts["ViT"]["generator"]  # style branch
    assert "lgan" in counts["ViT+LGAN"] and "lgan" not in counts["ViT"]
    assert "flow_estimator" not in counts["Style"]


def test_config_rejects_a_model_without_flow_and_style():
    with pytest.raises(ConfigError, match="model.style"):
        parse_section("model", {"flow": False, "style": False})
    with pytest.raises(ConfigError, match="model.vit_heads"):
        parse_section("model", {"vit_heads": 5})


def test_a_few_steps_on_two_samples_reduce_the_loss():
    torch.manual_seed(0)
    config = variant_config("ViT+LGAN+Style", tiny())
    model = build_model(config, size=S, identities=3)
    discriminator = build_discriminator(config).requires_grad_(False)  # held fixed here
    batch = random_batch()
    batch.driving = F.interpolate(torch.rand(2, 3, 4, 4) * 2 - 1, size=(S, S), mode="bilinear",
                                  align_corners=False)  # a smooth target a few steps can approach
    real_parts = crop_parts(batch.driving, batch.part_centres, PART_SIZES)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        out = model(batch, noise=torch.zeros(2, config.lgan_noise_dim))
        fake, real = discriminator(out.image), discriminator(batch.driving)
        return losses.weighted_sum({  # the perceptual term has its own tests (test_losses.py)
            "l1": losses.l1(out.image, batch.driving),
            "parts": losses.parts_l1(out.parts, real_parts),
            "adversarial": losses.generator_loss(fake.logits),
            "feature_matching": losses.feature_matching(fake.features, real.features),
            "landmarks": losses.landmarks_l1(out.driving_landmarks, batch.driving_landmarks, S),
        }, LossConfig())

    first = loss().item()
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.85 * first


def test_every_variant_runs_on_a_batch_of_the_prepare_loader(tmp_path):
    """Part 8: the facade takes a batch exactly as glg.data's loader delivers it."""
    from _prepare_data import write_dataset

    from glg.config import PrepareConfig
    from glg.data import TrainingPairs, iterate_pairs
    from glg.prepare import prepare
    from glg.prepared import read_identities

    frames, annotations = write_dataset(tmp_path, identities=4, clips=2, frames=6, side=96)
    prepare(frames, annotations, tmp_path / "prepared",
            PrepareConfig(size=S, unseen_identities=1, test_clips=1, known_identities=3,
                          self_pairs=4, unseen_pairs=0, known_pairs=4), seed=0)
    identities = len(read_identities(tmp_path / "prepared")[0])
    pairs = TrainingPairs(tmp_path / "prepared", seed=0, landmarks="lst")
    batch = next(iterate_pairs(pairs, batch_size=2, workers=0, seed=0))
    for name in VARIANTS:
        model = build_model(variant_config(name, tiny()), size=S, identities=identities)
        out = model(batch)
        assert out.image.shape == (2, 3, S, S) and torch.isfinite(out.image).all(), name
        assert [p.shape[-2:] for p in out.parts] == [p.shape[-2:] for p in batch.source_parts]
