"""Overfit tests that bite: each network family, tiny, trained through the production steps
(`glg.train.reenactor_step.train_step`, `glg.train.lgan.train_lgan`) on a handful of fixed pairs
for some dozens of steps (the LGAN, a small MLP, for a thousand), becomes clearly better at what
it exists for than the baselines the evaluation uses: the source copied, the untrained model,
the mean image, the mean shape."""

import math
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from _prepare_data import write_annotations, write_dataset

from glg.config import LganConfig, LossConfig, ModelConfig, PrepareConfig
from glg.config.variants import variant_config
from glg.data import Pair
from glg.face.landmarks import AU_IDS, N_LANDMARKS, X_COLUMNS, Y_COLUMNS
from glg.face.part_crops import crop_parts
from glg.models import Reenactment
from glg.models.warp import warp
from glg.prepare import prepare
from glg.store.annotations import read_annotations
from glg.train import losses
from glg.train.lgan import train_lgan
from glg.train.reenactor_step import Networks, build_networks, train_step
from glg.train.runtime import Runtime, adam

S = 28  # 7 * 2^k as the flow head needs, and room for the four parts
SEED = 0
CPU = Runtime(torch.device("cpu"), None, 0, 1)
PART_SIZES = ((8, 10), (8, 10), (9, 8), (8, 12))
CENTRES = torch.tensor(((0.36, 0.43), (0.64, 0.43), (0.5, 0.57), (0.5, 0.75))) * S  # px
# The known motions of every source: shifts by 3.5 px each way, in glg.models.warp's unit
# coordinates. They sum to zero, so no one flow serves them all.
MOTIONS = torch.tensor(((0.25, 0.0), (-0.25, 0.0), (0.0, 0.25), (0.0, -0.25)))
TINT = torch.tensor((0.9, 0.6, 0.3))[:, None, None]  # the one colour every texture is a shade of
# `loss.warp`, the flow's own signal: through the generator alone (warp 0) the ViT's flow learns
# the motions' directions within these steps but falls well short of them, the ResNet's hardly
# learns them at all
WARP = 100.0


def tiny(name: str) -> ModelConfig:
    """The paper's variant `name` at tiny widths; the flow head and the parts networks just
    wide enough to learn a handful of pairs in dozens of steps."""
    config = ModelConfig(vit_dim=64, vit_heads=2, vit_mlp=64, vit_layers=1, vit_patch=7,
                         flow_code=32, flow_hidden=128, flow_channels=32, part_channels=8,
                         part_levels=2, generator_channels=4, generator_blocks=1, style_dim=16,
                         discriminator_channels=8, discriminator_layers=2)
    return variant_config(name, config)


def textures(n: int, seed: int) -> torch.Tensor:
    """(n, 3, S, S) smooth random shades of TINT in [-1, 1], with structure every 7 px, so a
    3.5 px shift is plain to see and the luma alone tells the colours."""
    coarse = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    shade = F.interpolate(coarse, size=(S, S), mode="bicubic", align_corners=False)
    return shade.clamp(-1, 1) * TINT


def pairs(source: torch.Tensor, driving: torch.Tensor, heatmap: torch.Tensor) -> Pair:
    """A batch of `Pair`s as the loader hands them: the source's parts and the heatmap's parts
    cropped at CENTRES; neutral landmarks, pose and AUs (they guide nothing here)."""
    n = len(source)
    centres = CENTRES.expand(n, -1, -1).clone()
    landmarks = torch.full((n, N_LANDMARKS, 2), S / 2)
    identity = torch.zeros(n, dtype=torch.long)
    return Pair(source, driving, landmarks, landmarks, landmarks, heatmap,
                crop_parts(source, centres, PART_SIZES),
                crop_parts(heatmap, centres, PART_SIZES, fill=0.0), centres,
                torch.zeros(n, 3), torch.zeros(n, len(AU_IDS)), identity, identity)


def moved_pairs(sources: int) -> tuple[Pair, torch.Tensor]:
    """Every one of `sources` textures driven by each of MOTIONS, the heatmap a sketch of the
    driving (its luma); returns the pairs and the true flows (B, 2, S, S)."""
    source = textures(sources, seed=0).repeat_interleave(len(MOTIONS), 0)
    flow = MOTIONS.repeat(sources, 1)[:, :, None, None].expand(-1, -1, S, S).contiguous()
    driving = warp(source, flow)
    return pairs(source, driving, (driving.mean(1, keepdim=True) + 1) / 2), flow


def untrained(config: ModelConfig) -> torch.nn.Module:
    """The reenactor as training starts it."""
    return build_networks(config, S, torch.device("cpu"), SEED)[0]


def train(config: ModelConfig, batch: Pair, steps: int, lr: float,
          **weights: float) -> tuple[Networks, dict[str, torch.Tensor]]:
    """G and D after `steps` production steps on `batch` (D's update, then G's; no VGG), and
    each weighted loss term of every step (steps,)."""
    model, discriminator = build_networks(config, S, torch.device("cpu"), SEED)
    nets = Networks(model, discriminator, None, adam(model.parameters(), lr, (0.5, 0.999)),
                    adam(discriminator.parameters(), lr, (0.5, 0.999)))
    loss = LossConfig(perceptual=0.0, vgg_weights="random", **weights)
    history = [train_step(nets, batch, loss, PART_SIZES, S, CPU, step) for step in range(steps)]
    return nets, {name: torch.stack([terms[name] for terms in history]) for name in history[0]}


@torch.no_grad()
def reenact(model: torch.nn.Module, batch: Pair) -> Reenactment:
    """The model's output as the evaluation gets it: eval mode, no gradients."""
    return model.eval()(batch)


def l1(fake: torch.Tensor, real: torch.Tensor) -> float:
    return (fake - real).abs().mean().item()


# --- the flow: the warped source follows known motions --------------------------------------


def check_flow(trained: torch.nn.Module, config: ModelConfig, batch: Pair,
               true_flow: torch.Tensor) -> None:
    """The source warped by the trained flow is much nearer the driving than the source copied
    and than the untrained flow's warp, and the flows point as the true ones do."""
    copied = l1(batch.source, batch.driving)
    before = l1(warp(batch.source, reenact(untrained(config), batch).flow), batch.driving)
    flow = reenact(trained, batch).flow
    after = l1(warp(batch.source, flow), batch.driving)
    agreement = F.cosine_similarity(flow.mean((2, 3)).flatten(), true_flow.mean((2, 3)).flatten(),
                                    dim=0).item()
    print(f"warped source L1 {after:.3f}: source copied {copied:.3f}, untrained {before:.3f}; "
          f"cosine of mean flows with the true ones {agreement:.2f}")
    assert after < 0.7 * min(copied, before)
    assert agreement > 0.7


class Run(NamedTuple):
    nets: Networks
    history: dict[str, torch.Tensor]  # each weighted loss term of every step (steps,)
    batch: Pair
    true_flow: torch.Tensor  # (B, 2, S, S)


@pytest.fixture(scope="module")
def vit() -> Run:
    """2 sources x 4 motions, and the ViT variant trained on them for 120 steps."""
    batch, true_flow = moved_pairs(sources=2)
    # the neutral landmarks of these pairs say nothing: no auxiliary landmark regression
    nets, history = train(tiny("ViT"), batch, steps=120, lr=2e-3, warp=WARP,
                          landmark_regression=0.0)
    return Run(nets, history, batch, true_flow)


def test_the_vit_flow_follows_known_motions(vit):
    check_flow(vit.nets.model, tiny("ViT"), vit.batch, vit.true_flow)


def test_the_resnet_flow_follows_known_motions():
    """One source, as ResNet-34 is 21M parameters at any width; at half the ViT's rate, where
    its flow settles instead of falling back now and then."""
    batch, true_flow = moved_pairs(sources=1)
    nets, _ = train(tiny("ResNet"), batch, steps=80, lr=5e-4, warp=WARP)
    check_flow(nets.model, tiny("ResNet"), batch, true_flow)


def test_the_image_losses_reach_the_flow_at_the_papers_weights():
    """At `loss.warp` 0, as in the paper, the flow learns through the generator alone (too
    slowly for the test above): one production step already moves it off the identity warp."""
    batch, _ = moved_pairs(sources=1)
    nets, _ = train(tiny("ViT"), batch, steps=1, lr=2e-3, landmark_regression=0.0)
    moved = reenact(nets.model, batch).flow.abs().mean().item()
    print(f"mean |flow| after one step {moved:.2e}")
    assert moved > 1e-4


# --- the parts land where I_p puts them -----------------------------------------------------


def test_the_parts_land_where_i_p_puts_them(vit):
    """The re-enacted parts against the driving's parts at the centres I_p pastes them on."""
    batch = vit.batch
    real = crop_parts(batch.driving, batch.part_centres, PART_SIZES)
    copied = losses.parts_l1(batch.source_parts, real).item()
    before = losses.parts_l1(reenact(untrained(tiny("ViT")), batch).parts, real).item()
    after = losses.parts_l1(reenact(vit.nets.model, batch).parts, real).item()
    print(f"parts L1 {after:.3f}: source's parts copied {copied:.3f}, untrained {before:.3f}")
    assert after < 0.6 * min(copied, before)


# --- the discriminator tells real from fake -------------------------------------------------


def test_the_discriminator_tells_real_from_fake(vit):
    """D's loss on each step's fresh fakes, before its update on them (thesis Eq. 3.7): log 4 is
    chance, where an untrained D sits and a frozen one ends above, as G learns to fool it."""
    losses_d = vit.history["discriminator"]
    late = losses_d[len(losses_d) // 2:].mean().item()
    print(f"D loss over the second half {late:.3f}, chance {math.log(4):.3f}")
    assert late < math.log(4) - 0.1


# --- style without flow: the output follows the driving's heatmap ---------------------------


def test_style_follows_the_driving_heatmap_not_the_mean_image():
    """One source, four drivings whose lower half (the mouth's) takes a shade that only the
    heatmap tells, by the opening of a mouth outline; the parts' inputs are the same in every
    pair, so I_p cannot tell it. Without flow, as Table V's Style."""
    source = textures(1, seed=1).expand(4, -1, -1, -1) * 0.5
    y, x = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    shades = torch.tensor((-0.8, -0.3, 0.3, 0.8))[:, None, None, None]
    driving = torch.where(y > S / 2, shades, source)
    openings = torch.tensor((1.0, 3.0, 5.0, 7.0))[:, None, None]  # the outline's half-height, px
    radius = (((x - S / 2) / 6) ** 2 + ((y - 20) / openings) ** 2).sqrt()
    heatmap = ((radius - 1).abs() < 0.25).float()[:, None]  # (4, 1, S, S) ellipse outlines
    batch = pairs(source, driving, heatmap)
    batch = batch._replace(driving_heatmap_parts=tuple(
        part[:1].expand_as(part) for part in batch.driving_heatmap_parts))

    mean_image = l1(driving.mean(0, keepdim=True), driving)
    before = l1(reenact(untrained(tiny("Style")), batch).image, driving)
    image = reenact(train(tiny("Style"), batch, steps=60, lr=3e-3)[0].model, batch).image
    after = l1(image, driving)
    follows = F.cosine_similarity((image - image.mean(0)).flatten(),
                                  (driving - driving.mean(0)).flatten(), dim=0).item()
    print(f"image L1 {after:.3f}: mean image {mean_image:.3f}, untrained {before:.3f}; cosine "
          f"of the images' changes across drivings with the drivings' {follows:.2f}")
    assert after < 0.7 * min(mean_image, before)
    assert follows > 0.8


# --- the LGAN: landmarks that follow the condition ------------------------------------------


def test_the_lgan_follows_pose_and_aus_better_than_the_mean_shape(tmp_path):
    """A tiny dataset whose landmarks follow the frame's pitch (the face moves down) and AU26
    (the jaw drops) and nothing else: on held-out frames the trained generator comes much
    closer than each identity's mean shape, the baseline train_lgan scores it against."""
    frames, annotations = write_dataset(tmp_path, identities=4, clips=2, frames=6, side=96)
    table = read_annotations(annotations)
    xs, ys = list(X_COLUMNS), list(Y_COLUMNS)
    table[xs + ys] = table.groupby("identity")[xs + ys].transform("first")  # one face each
    table[ys] += 2.0 * table[["pitch"]].to_numpy()  # px per degree (pitch: the frame's index)
    jaw = [Y_COLUMNS[i] for i in (*range(4, 13), *range(55, 60), *range(64, 68))]
    table[jaw] += 8.0 * table[["AU26_c"]].to_numpy()  # px: AU26, jaw drop
    write_annotations(annotations, table)
    prepare(frames, annotations, tmp_path / "prepared", PrepareConfig(
        image_px=S, unseen_identities=2, test_clips=1, known_identities=2, self_pairs=6,
        unseen_pairs=4, known_pairs=4), seed=0)
    config = LganConfig(identity_dim=4, au_dim=4, hidden=32, steps=1000, batch=16, lr=3e-3,
                        log_every=1000, checkpoint_every=1000, device="cpu")
    trained = train_lgan(tmp_path / "prepared", annotations, tmp_path / "lgan",
                         tmp_path / "checkpoints", tmp_path / "metrics", config, SEED,
                         say=lambda line: None)
    scores = trained.summary["val"]["known"]
    nme = {method: scores[method]["nme"] for method in ("lgan", "mean_shape")}
    print(f"NME on held-out frames: lgan {nme['lgan']:.4f}, mean shape {nme['mean_shape']:.4f}")
    assert nme["lgan"] < 0.6 * nme["mean_shape"]
