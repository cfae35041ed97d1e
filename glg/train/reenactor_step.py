"""One GAN step of the reenactor and what builds it, shared by central training
(glg.train.reenactor) and a federated client's local steps (glg.train.federated): G, D and the
frozen VGG19 built the same way, the loss terms of Sec III-D, D's update then G's."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from glg.config import LossConfig, ModelConfig
from glg.data import Pair
from glg.face.part_crops import crop_parts
from glg.models import Reenactment, build_discriminator, build_model
from glg.models.warp import warp
from glg.store.checkpoint import digest
from glg.train import losses
from glg.train.runtime import (FiniteWatch, Runtime, StepTimer, autocast, code_digest,
                               prepared_digest, unwrapped)

from glg.store.prepared import PreparedFrames

class Networks(NamedTuple):
    """What one step trains: G (possibly DDP/compiled), D (possibly DDP), the frozen VGG19."""

    model: nn.Module
    discriminator: nn.Module
    vgg: losses.VggFeatures | None  # None when `loss.perceptual` is 0: a frozen net, skipped
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


def build_networks(model_config: ModelConfig, size: int, device: torch.device,
                   seed: int) -> tuple[nn.Module, nn.Module]:
    """G and D on `device`, initialised from `seed` (the same for every trainer)."""
    torch.manual_seed(seed)
    model = build_model(model_config, size=size).to(device)
    discriminator = build_discriminator(model_config).to(device)
    if device.type == "cuda":  # a plain conv stack, where NHWC kernels help
        discriminator = discriminator.to(memory_format=torch.channels_last)
    return model, discriminator


def build_perceptual(loss_config: LossConfig, device: torch.device,
                     seed: int) -> losses.VggFeatures | None:
    """The frozen VGG19 of the perceptual loss on `device`, or None when `loss.perceptual` is 0."""
    if loss_config.perceptual == 0:
        return None
    vgg = losses.build_vgg19(loss_config.vgg_weights, seed).to(device)
    return vgg.to(memory_format=torch.channels_last) if device.type == "cuda" else vgg


def input_digests(frames: PreparedFrames, lgan: nn.Module | None) -> dict[str, str | None]:
    """What a trained reenactor depends on besides params, for checkpoint fingerprints: the
    code, the prepared data and the landmark generator."""
    return {"code": code_digest(), "prepared": prepared_digest(frames, pixels=True),
            "lgan": None if lgan is None else digest(lgan.state_dict().items())}


def train_step(nets: Networks, batch: Pair, loss_config: LossConfig,
               part_sizes: tuple[tuple[int, int], ...], size: int, runtime: Runtime, step: int,
               timer: StepTimer | None = None,
               finite: FiniteWatch | None = None) -> dict[str, torch.Tensor]:
    """One update of D (driving real, reenacted fake; thesis Eq. 3.7), then of G (thesis Eq. 3.5);
    returns the detached weighted loss terms. A NaN or infinite term is never applied: without
    `finite` the step stops on it at once (a host sync); with it, the updates from then on
    are skipped on the device and `finite.check()` stops the run (the trainers' log steps).

    D first is our order, shared by central and federated training (one forward of G serves
    both updates): the thesis's Algorithm 1 (lines 6-7) writes G's step before D's, and the
    central training's order is not given. In a loop of alternating steps the two differ only
    in whether G's first step meets an updated D.
    """
    timer = timer or StepTimer()
    watch = finite or FiniteWatch()
    with timer("forward"), autocast(runtime):
        out = nets.model(batch)
        judged = nets.discriminator(torch.cat([batch.driving, out.image.detach()]))
        real_logits, fake_logits = judged.logits.float().chunk(2)
        loss_d = losses.discriminator_loss(real_logits, fake_logits)
    watch.watch(step, {"discriminator": loss_d})
    with timer("backward"):
        nets.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
    with timer("optimizer"):
        watch.step(nets.opt_d)

    judge = unwrapped(nets.discriminator)  # G's step goes around DDP: D is not updated by it
    judge.requires_grad_(False)
    with timer("forward"), autocast(runtime):
        fake = judge(out.image)
        with torch.no_grad():
            real = judge(batch.driving)
        terms = losses.weighted(generator_terms(out, batch, fake, real, nets.vgg, part_sizes,
                                                size, loss_config.warp > 0), loss_config)
    watch.watch(step, terms)
    with timer("backward"):
        nets.opt_g.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
    judge.requires_grad_(True)
    with timer("optimizer"):
        watch.step(nets.opt_g)
    if finite is None:
        watch.check()
    return {"discriminator": loss_d.detach(), **{k: v.detach() for k, v in terms.items()}}


def generator_terms(out: Reenactment, batch: Pair, fake, real, vgg: losses.VggFeatures | None,
                    part_sizes: tuple[tuple[int, int], ...], size: int,
                    warped_source: bool = False) -> dict[str, torch.Tensor]:
    """The reenactor's loss terms (Sec III-D), unweighted, in fp32. The parts L1 compares each
    re-enacted part with the driving where I_p places it (the reenacted landmarks' centres);
    `warped_source` adds the L1 of the source warped by the flow against the driving
    (`loss.warp`, not in the paper)."""
    image = out.image.float()
    terms = {
        "l1": losses.l1(image, batch.driving),
        "parts": losses.parts_l1([p.float() for p in out.parts],
                                 crop_parts(batch.driving, batch.part_centres, part_sizes)),
        "adversarial": losses.generator_loss(fake.logits.float()),
        "feature_matching": losses.feature_matching([f.float() for f in fake.features],
                                                    [r.float() for r in real.features]),
    }
    if vgg is not None:
        terms["perceptual"] = losses.perceptual(vgg, image, batch.driving)
    if warped_source and out.flow is not None:
        terms["warp"] = losses.l1(warp(batch.source, out.flow.float()), batch.driving)
    if out.driving_landmarks is not None:  # the ViT's auxiliary landmark regression (Sec III-A)
        terms["landmark_regression"] = 0.5 * (
            losses.landmark_regression(out.source_landmarks.float(), batch.source_landmarks, size)
            + losses.landmark_regression(out.driving_landmarks.float(), batch.driving_landmarks,
                                         size))
    return terms
