"""glg.models: every network's shapes on tiny configs, parameter counts, the facade, overfitting."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from _prepare_data import write_dataset

from glg.config import (ConfigError, LganConfig, LossConfig, ModelConfig, PrepareConfig,
                        parse_section)
from glg.config.variants import VARIANTS, variant_config
from glg.data import TrainingPairs, iterate_pairs
from glg.errors import GlgError
from glg.face.part_crops import crop_parts, paste_parts
from glg.models import build_discriminator, build_landmark_gan, build_model, parameter_counts
from glg.models.flow import FlowEstimator, ResNetFeatures, ViTFeatures
from glg.models.generator import ImageGenerator
from glg.models.parts import PartReenactor
from glg.models.style import ModulatedConv2d
from glg.models.warp import landmark_flow, warp
from glg.prepare import prepare
from glg.train import losses

S = 56  # 7 * 2^3: the smallest crop the flow head and 14-px patches both allow
PART_SIZES = [(10, 14), (10, 14), (13, 12), (12, 21)]  # odd sizes on purpose


def tiny(**changes) -> ModelConfig:
    """A model config with the paper's structure and tiny widths, for fast CPU tests."""
    config = ModelConfig(vit_dim=32, vit_heads=2, vit_mlp=64, vit_layers=1, flow_code=8,
                         flow_hidden=16, flow_channels=8, part_channels=4, part_levels=2,
                         generator_channels=4, generator_blocks=1, style_dim=16,
                         discriminator_channels=4)
    return dataclasses.replace(config, **changes)


def tiny_lgan(**changes) -> LganConfig:
    """An LGAN config with tiny widths."""
    return LganConfig(identity_dim=4, au_dim=4, hidden=8, **changes)


@pytest.fixture
def batch(pair_batch):
    return pair_batch(2, S, PART_SIZES)


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
    assert abs(vit_layers / 19e6 - 1) < 0.2  # Sec IV-D: three ViT layers, 19M
    assert abs(resnet / 21e6 - 1) < 0.2  # Sec IV-B: ResNet-34, 21M


def test_size_must_suit_the_flow_head():
    with pytest.raises(GlgError, match="prepare.image_px"):
        FlowEstimator(tiny(), 100)


# --- parts ---------------------------------------------------------------------------------


def test_part_reenactor_keeps_odd_part_sizes():
    net = PartReenactor(channels=4, levels=3)
    out = net(torch.zeros(2, 3, 13, 21), torch.zeros(2, 1, 13, 21))
    assert out.shape == (2, 3, 13, 21) and out.abs().max() <= 1


@pytest.mark.parametrize(("height", "width"), [(4, 6), (5, 7), (4, 7)])
@pytest.mark.parametrize("centre", [(10.0, 20.0), (10.5, 19.5), (9.7, 20.3), (12.49, 17.51)])
def test_paste_puts_a_part_centred_on_its_centre(centre, height, width):
    canvas = paste_parts([torch.ones(1, 3, height, width)], torch.tensor([[centre]]), 32)
    inside = canvas[0, 0] == 1
    ys, xs = inside.nonzero(as_tuple=True)
    middle = ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2)  # glg.face.landmarks' pixels
    assert abs(middle[0] - centre[0]) <= 0.5 and abs(middle[1] - centre[1]) <= 0.5
    assert inside.sum() == height * width and torch.all(canvas[0, 0][~inside] == -1)


def test_paste_clips_at_the_border_and_crop_inverts_paste():
    torch.manual_seed(0)
    parts = [torch.rand(2, 3, h, w) for h, w in PART_SIZES]
    centres = torch.tensor([[8.3, 7.5], [45.6, 8.0], [10.0, 44.5], [40.5, 45.2]]).expand(2, 4, 2)
    canvas = paste_parts(parts, centres, S)  # apart: no part covers another
    for got, want in zip(crop_parts(canvas, centres, PART_SIZES), parts):
        assert torch.equal(got, want)
    edge = paste_parts([torch.ones(1, 1, 10, 10)], torch.tensor([[[0.6, 0.6]]]), 16)
    assert edge.shape == (1, 1, 16, 16) and (edge == 1).sum() == 6 * 6  # it spans -4..5


# --- generator and style -------------------------------------------------------------------


@pytest.mark.parametrize("style", [True, False])
def test_generator_shapes(style):
    gen = ImageGenerator(tiny(style=style), S)
    out = gen(torch.zeros(2, 3, S, S), torch.zeros(2, 2, S, S), torch.zeros(2, 3, S, S),
              torch.zeros(2, 1, S, S))
    assert out.shape == (2, 3, S, S)
    assert gen.encode_source(torch.zeros(1, 3, 224, 224)).shape[-2:] == (58, 58)


def test_the_residual_output_starts_as_the_warped_source_then_learns_a_correction():
    torch.manual_seed(0)
    gen = ImageGenerator(tiny(output="residual"), S)
    source = torch.rand(2, 3, S, S) * 2 - 1
    shift = torch.zeros(2, 2, S, S)
    shift[:, 0] = 4 / S  # two pixels to the right, in units (glg.models.warp)
    inputs = (torch.zeros(2, 3, S, S), torch.rand(2, 1, S, S))
    torch.testing.assert_close(gen(source, shift, *inputs), warp(source, shift).clamp(-1, 1))
    target = (warp(source, shift) + 0.3).clamp(-1, 1)  # a correction the generator can make
    optimizer = torch.optim.Adam(gen.parameters(), lr=1e-2)
    first = losses.l1(gen(source, shift, *inputs), target).item()
    for _ in range(5):
        optimizer.zero_grad()
        losses.l1(gen(source, shift, *inputs), target).backward()
        optimizer.step()
    assert losses.l1(gen(source, shift, *inputs), target).item() < 0.7 * first


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


def test_landmark_gan_shapes_and_conditioning(batch):
    torch.manual_seed(0)
    g, d = build_landmark_gan(tiny_lgan(noise_dim=2), size=S, identities=3)
    landmarks = g(batch.source_identity, batch.driving_pose, batch.driving_aus)
    assert landmarks.shape == (2, 68, 2)
    other_aus = 1 - batch.driving_aus
    assert not torch.allclose(landmarks, g(batch.source_identity, batch.driving_pose, other_aus))
    noise = torch.ones(2, 2)  # without noise the input is zero: one landmark set per condition
    assert not torch.allclose(landmarks, g(batch.source_identity, batch.driving_pose,
                                           batch.driving_aus, noise))
    logits = d(landmarks, batch.source_identity, batch.driving_pose, batch.driving_aus)
    assert logits.shape == (2, 1)


def test_eq_3_4_has_no_noise_input_by_default():
    g, _ = build_landmark_gan(LganConfig(), size=S, identities=3)
    assert g.to_landmarks[0].in_features == 64 + 3 + 64  # ID_s, (alpha, beta, gamma), sum AU_i


def test_lgan_reads_face_embeddings_by_identity(batch):
    torch.manual_seed(0)
    embeddings = torch.randn(3, 128)
    g, d = build_landmark_gan(tiny_lgan(identity_input="face_recognition"), size=S,
                              identities=3, face_embeddings=embeddings)
    out = g(batch.source_identity, batch.driving_pose, batch.driving_aus)
    assert out.shape == (2, 68, 2)
    g.condition.identity.face_embeddings[batch.source_identity[0]] += 1.0  # another face
    assert not torch.allclose(out[0], g(batch.source_identity, batch.driving_pose,
                                        batch.driving_aus)[0])
    with pytest.raises(GlgError, match="face embeddings are needed"):
        build_landmark_gan(tiny_lgan(identity_input="face_recognition"), size=S, identities=3)


# --- facade --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [v.name for v in VARIANTS])
def test_facade_builds_and_runs_every_variant(name, batch):
    config = variant_config(name, tiny())
    out = build_model(config, size=S)(batch)
    assert out.image.shape == (2, 3, S, S) and out.parts_image.shape == (2, 3, S, S)
    assert [p.shape[-2:] for p in out.parts] == PART_SIZES
    assert (out.flow is None) == (not config.flow)
    assert (out.driving_landmarks is None) == (not config.flow or config.backbone == "resnet")


def test_the_landmark_prior_is_the_flow_before_the_estimator_learns(batch):
    """model.flow_prior=landmarks: the flow is the guide-to-source spline plus the estimator's,
    whose last layer starts at zero, so the untrained residual model is the source warped by
    the spline; without the prior that flow is zero."""
    with_prior = build_model(tiny(output="residual", flow_prior="landmarks"), size=S)
    prior = landmark_flow(batch.source_landmarks, batch.reenacted_landmarks, S)
    out = with_prior(batch)
    torch.testing.assert_close(out.flow, prior)
    torch.testing.assert_close(out.image, warp(batch.source, prior).clamp(-1, 1))
    torch.manual_seed(0)
    assert build_model(tiny(output="residual"), size=S)(batch).flow.abs().max() == 0
    with pytest.raises(ConfigError, match="model.flow_prior"):
        tiny(flow=False, flow_prior="landmarks").check()


def test_bf16_autocast_forward_and_backward(batch):
    model = build_model(variant_config("ViT+LGAN+Style", tiny()), size=S)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert out.image.dtype == torch.bfloat16
    out.image.float().mean().backward()
    assert model.generator.to_rgb.weight.grad is not None


def test_variants_differ_where_the_paper_says():
    counts = {n: parameter_counts(build_model(variant_config(n, tiny()), size=S))
              for n in ("ViT", "ViT+Style", "ViT+LGAN", "Style")}
    assert counts["ViT+Style"]["generator"] > counts["ViT"]["generator"]  # style branch
    assert counts["ViT+LGAN"] == counts["ViT"]  # the LGAN's landmarks come with the batch
    assert "flow_estimator" not in counts["Style"]


def test_config_rejects_a_model_without_flow_and_style():
    with pytest.raises(ConfigError, match="model.style"):
        parse_section("model", {"flow": False, "style": False})
    with pytest.raises(ConfigError, match="model.vit_heads"):
        parse_section("model", {"vit_heads": 5})


def test_a_few_steps_on_two_samples_reduce_the_loss(batch):
    torch.manual_seed(0)
    config = variant_config("ViT+LGAN+Style", tiny())
    model = build_model(config, size=S)
    discriminator = build_discriminator(config).requires_grad_(False)  # held fixed here
    batch = batch._replace(driving=F.interpolate(  # a smooth target a few steps can approach
        torch.rand(2, 3, 4, 4) * 2 - 1, size=(S, S), mode="bilinear", align_corners=False))
    real_parts = crop_parts(batch.driving, batch.part_centres, PART_SIZES)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        out = model(batch)
        fake, real = discriminator(out.image), discriminator(batch.driving)
        return losses.weighted_sum({  # the perceptual term has its own tests (test_losses.py)
            "l1": losses.l1(out.image, batch.driving),
            "parts": losses.parts_l1(out.parts, real_parts),
            "adversarial": losses.generator_loss(fake.logits),
            "feature_matching": losses.feature_matching(fake.features, real.features),
            "landmark_regression": losses.landmark_regression(out.driving_landmarks,
                                                              batch.driving_landmarks, S),
        }, LossConfig())

    first = loss().item()
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.85 * first


def test_the_facade_runs_on_a_batch_of_the_prepare_loader(tmp_path):
    """The facade takes a batch exactly as glg.data's loader delivers it; the two variants read
    every field of it between them."""
    frames, annotations = write_dataset(tmp_path, identities=4, clips=2, frames=6, side=96)
    prepare(frames, annotations, tmp_path / "prepared",
            PrepareConfig(image_px=S, unseen_identities=1, test_clips=1, known_identities=3,
                          self_pairs=4, unseen_pairs=0, known_pairs=4), seed=0)
    pairs = TrainingPairs(tmp_path / "prepared", seed=0, landmark_mode="lst")
    batch = next(iterate_pairs(pairs, batch_size=2, workers=0, seed=0))
    for name in ("ViT+LGAN+Style", "Style"):
        model = build_model(variant_config(name, tiny()), size=S)
        out = model(batch)
        assert out.image.shape == (2, 3, S, S) and torch.isfinite(out.image).all(), name
        assert [p.shape[-2:] for p in out.parts] == [p.shape[-2:] for p in batch.source_parts]
