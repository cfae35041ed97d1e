"""The sections of params.yaml as typed, frozen dataclasses: one per stage or concern, each
with `check()` naming the key and what is allowed. Loaded and validated by `glg.config`.
Defaults are the paper's values where the paper fixes one (the section is cited).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from glg.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    videos: str = "data/synthetic"  # <identity>/<clip>.mp4 or <identity>/<yt_id>/<clip>.mp4

    def check(self) -> None:
        require(bool(self.videos.strip()), "data.videos", "a non-empty path", self.videos)


@dataclass(frozen=True)
class SynthesizeConfig:
    identities: int = 6  # demo identities, each a deformed public-domain portrait
    clips_per_identity: int = 3  # clips per identity
    seconds: float = 3.0  # length of one clip, s
    fps: int = 25  # frames per second, as VoxCeleb1
    frame_px: int = 256  # side of the rendered square video frame, px, as VoxCeleb1 and CelebV
    workers: int = 2  # processes rendering clips in parallel; the output does not depend on it

    def check(self) -> None:
        require(self.identities >= 1, "synthesize.identities", "an integer >= 1", self.identities)
        require(self.clips_per_identity >= 1, "synthesize.clips_per_identity", "an integer >= 1",
                self.clips_per_identity)
        require(self.seconds > 0, "synthesize.seconds", "a positive number", self.seconds)
        require(self.fps >= 1, "synthesize.fps", "an integer >= 1", self.fps)
        require(self.frame_px >= 64 and self.frame_px % 2 == 0, "synthesize.frame_px",
                "an even integer >= 64", self.frame_px)
        require(self.workers >= 1, "synthesize.workers", "an integer >= 1", self.workers)


@dataclass(frozen=True)
class ExtractConfig:
    crop_px: int = 256  # side of the stored square face crop, px (VoxCeleb1/CelebV come at 256)
    fps: float = 25.0  # target sampling rate, frames/s; a slower source keeps its own rate
    max_frames: int = 250  # frames kept per clip at most
    crop: Literal["smoothed", "fixed", "per_frame"] = "smoothed"  # crop-box policy over time
    crop_scale: float = 1.8  # crop side relative to the detected face box side
    smoothing: float = 0.8  # per-frame decay of the centred exponential box smoothing, 0 = none
    detect_every: int = 10  # run the face detector on every n-th sampled frame, interpolate between
    detect_size: int = 256  # longer side the frame is shrunk to for the face detector, px
    workers: int = 2  # clips in parallel: local processes, or Ray actors of one CPU each
    engine: Literal["local", "ray"] = "local"  # local process pool, or Ray (glg/engine.py)
    jpeg_quality: int = 95  # quality of the stored JPEG frames
    shard_mb: float = 256.0  # a frame shard is closed once it holds this much JPEG data, MiB

    def check(self) -> None:
        require(self.crop_px > 0 and self.crop_px % 2 == 0, "extract.crop_px",
                "a positive multiple of 2", self.crop_px)
        require(self.fps > 0, "extract.fps", "a positive number", self.fps)
        require(self.max_frames >= 1, "extract.max_frames", "an integer >= 1", self.max_frames)
        require(self.crop_scale >= 1.0, "extract.crop_scale", "a number >= 1", self.crop_scale)
        require(0.0 <= self.smoothing < 1.0, "extract.smoothing", "a number in [0, 1)",
                 self.smoothing)
        require(self.detect_every >= 1, "extract.detect_every", "an integer >= 1",
                self.detect_every)
        require(self.detect_size >= 80, "extract.detect_size",
                "an integer >= 80 (dlib's smallest face)", self.detect_size)
        require(self.workers >= 1, "extract.workers", "an integer >= 1", self.workers)
        require(1 <= self.jpeg_quality <= 100, "extract.jpeg_quality", "an integer in [1, 100]",
                self.jpeg_quality)
        require(self.shard_mb > 0, "extract.shard_mb", "a positive number", self.shard_mb)


@dataclass(frozen=True)
class AnnotateConfig:
    backend: Literal["dlib", "pyfeat"] = "dlib"  # dlib works offline; pyfeat needs its weights
    redetect_every: int = 10  # frames between forced re-detections while tracking
    workers: int = 2  # clips in parallel: local processes, or Ray actors of one CPU each
    engine: Literal["local", "ray"] = "local"  # local process pool, or Ray (glg/engine.py)
    shard_rows: int = 50000  # rows per output Parquet shard (about 60 MB in memory)

    def check(self) -> None:
        require(self.redetect_every >= 1, "annotate.redetect_every", "an integer >= 1",
                self.redetect_every)
        require(self.workers >= 1, "annotate.workers", "an integer >= 1", self.workers)
        require(self.shard_rows >= 1, "annotate.shard_rows", "an integer >= 1", self.shard_rows)


@dataclass(frozen=True)
class PrepareConfig:
    image_px: int = 224  # side of the networks' square input images, px (Sec III-A: 224x224)
    unseen_identities: int = 5  # identities never trained on (Sec IV-A: CelebV's five people)
    test_clips: int = 100  # self-reenactment test clips, unseen identities' first (Sec IV-A: 100)
    known_identities: int = 5  # known people scored in the known-identity scenario (Sec IV-A: 5)
    known_holdout: float = 0.2  # fraction of each training clip held out at its end (our choice)
    # the self-reenactment test clips as <identity>/<video> (a folder: all clips under it), in
    # place of test_clips' random draw: VoxCeleb1's official test split (Sec IV-A); or a file
    # listing them one a line (then add the file to prepare's deps in dvc.yaml)
    test_videos: tuple[str, ...] = ()
    test_videos_file: str = ""
    self_pairs: int = 2083  # self-reenactment pairs in all, two frames of one clip (Sec IV-A)
    unseen_pairs: int = 2000  # unseen-identity pairs per unseen person (Sec IV-A: 2,000 each)
    known_pairs: int = 2000  # known-identity pairs per known person (Sec IV-A: 2,000 each)
    min_frames: int = 2  # usable frames a clip needs: a training pair is two of its frames (Sec II)
    part_margin: float = 0.5  # crop side = average box side + margin x its longer side (our choice)
    part_multiple: int = 8  # part crop sides rounded up to a multiple of this, px (our choice)
    jpeg_quality: int = 95  # quality of the stored S px JPEG frames, as extract's (our choice)
    shard_mb: float = 256.0  # a frame shard is closed once it holds this much JPEG data, MiB
    workers: int = 2  # clips resized in parallel: local processes, or Ray actors of one CPU each
    engine: Literal["local", "ray"] = "local"  # local process pool, or Ray (glg/engine.py)

    def check(self) -> None:
        require(self.image_px >= 32 and self.image_px % 2 == 0, "prepare.image_px",
                "an even integer >= 32", self.image_px)
        for key in ("unseen_identities", "test_clips", "known_identities", "self_pairs",
                    "unseen_pairs", "known_pairs"):
            require(getattr(self, key) >= 0, f"prepare.{key}", "an integer >= 0",
                    getattr(self, key))
        require(0.0 < self.known_holdout < 1.0, "prepare.known_holdout", "a number in (0, 1)",
                self.known_holdout)
        require(self.min_frames >= 2, "prepare.min_frames", "an integer >= 2", self.min_frames)
        require(0.0 <= self.part_margin <= 4.0, "prepare.part_margin", "a number in [0, 4]",
                self.part_margin)
        require(self.part_multiple >= 1, "prepare.part_multiple", "an integer >= 1",
                self.part_multiple)
        require(1 <= self.jpeg_quality <= 100, "prepare.jpeg_quality", "an integer in [1, 100]",
                self.jpeg_quality)
        require(self.shard_mb > 0, "prepare.shard_mb", "a positive number", self.shard_mb)
        require(self.workers >= 1, "prepare.workers", "an integer >= 1", self.workers)
        require(not (self.test_videos and self.test_videos_file), "prepare.test_videos",
                "empty when prepare.test_videos_file is set (one list, not two)",
                list(self.test_videos))


# The guiding landmarks: the driving's, paper Eq. 3's transfer (paper Sec III-B-1) or the
# LGAN's (paper Sec III-B-2).
LandmarkMode = Literal["driving", "lst", "lgan"]
LANDMARK_MODES: tuple[str, ...] = typing.get_args(LandmarkMode)


@dataclass(frozen=True)
class ModelConfig:
    backbone: Literal["vit", "resnet"] = "resnet"  # flow estimator trunk (Sec III-A, Table I)
    # guiding landmarks (`LandmarkMode`); resnet + lgan + style is the paper's full model,
    # ResNet+LGAN+Style (Table III)
    landmark_mode: LandmarkMode = "lgan"
    style: bool = True  # style transfer branch (Sec III-C-1)
    flow: bool = True  # optical-flow warping; false gives Table V's "Style" baseline
    # generated: the generator draws the whole image (Sec III-C); residual: the source warped by
    # the flow plus the generator's correction, zero at the start (not in the paper)
    output: Literal["generated", "residual"] = "generated"
    # none: the flow is the estimator's (Sec III-A); landmarks: the estimator's flow is added to
    # the thin-plate spline from the guiding landmarks to the source's (not in the paper,
    # glg.warp.landmark_flow)
    flow_prior: Literal["none", "landmarks"] = "none"
    resnet_weights: Literal["none", "imagenet"] = "none"  # ResNet-34 init; the paper is silent
    vit_patch_input: Literal["luma", "rgb"] = "luma"  # patch = 196 = 14x14x1 values (thesis 3.1)
    vit_patch: int = 14  # patch side, px (Sec III-A: 256 patches of 14x14 in 224x224)
    vit_layers: int = 3  # transformer layers (Sec III-A, IV-B)
    vit_dim: int = 768  # token width d = d_q = d_k = d_v (Sec III-A, paper Eq. 1-2)
    vit_heads: int = 1  # attention heads; paper Eq. 1-2 write one head with d_k = 768
    vit_mlp: int = 3072  # hidden width of each block's MLP; not given, ViT-Base's 4 x 768
    flow_code: int = 128  # width each flow token is compressed to (Sec III-A: 2x768 -> 2x128)
    flow_hidden: int = 512  # hidden width of the MLP 512 -> 6272; figure lost, chosen
    flow_channels: int = 128  # channels of the 7x7 map f (Sec III-A: 6272 = 128 x 7 x 7)
    part_channels: int = 32  # first conv width of each part network; figure lost, chosen
    part_levels: int = 3  # conv + max-pool levels of each part network; figure lost, chosen
    generator_channels: int = 64  # first conv width of the generator, r has 4x; figure lost
    generator_blocks: int = 3  # intermediate convs at 58x58 (Sec III-C); figure lost, chosen
    style_dim: int = 512  # width of the style code w from the heatmap (StyleGAN2's 512)
    discriminator_channels: int = 64  # first layer width of the patch discriminator (pix2pix)
    discriminator_layers: int = 3  # stride-2 layers of the patch discriminator (70x70 PatchGAN)

    def check(self) -> None:
        require(self.flow or self.style, "model.style",
                "true when model.flow is false (Table V's Style baseline)", self.style)
        require(self.flow or self.flow_prior == "none", "model.flow_prior",
                "none when model.flow is false (there is no flow to add it to)", self.flow_prior)
        for key in ("vit_patch", "vit_layers", "vit_dim", "vit_heads", "vit_mlp", "flow_code",
                    "flow_hidden", "flow_channels", "part_channels", "part_levels",
                    "generator_channels", "generator_blocks", "style_dim",
                    "discriminator_channels", "discriminator_layers"):
            require(getattr(self, key) >= 1, f"model.{key}", "an integer >= 1",
                    getattr(self, key))
        require(self.vit_dim % self.vit_heads == 0, "model.vit_heads",
                f"a divisor of model.vit_dim ({self.vit_dim})", self.vit_heads)


@dataclass(frozen=True)
class LossConfig:
    l1: float = 20.0  # image L1 weight (Sec III-D)
    parts: float = 5.0  # reenacted-part L1 weight (Sec III-D)
    adversarial: float = 1.0  # DCGAN loss weight (Sec III-D)
    feature_matching: float = 1.0  # discriminator feature matching weight (Sec III-D)
    perceptual: float = 10.0  # VGG19 perceptual weight (Sec III-D)
    landmark_regression: float = 1.0  # the ViT's auxiliary landmark L1 (Sec III-A); weight chosen
    # L1 of the source warped by the flow against the driving: not in the paper (0), whose flow
    # learns only through the generator; a direct signal for the flow (docs/learning.md)
    warp: float = 0.0
    vgg_weights: Literal["imagenet", "random"] = "imagenet"  # Sec III-D; random if offline, warned

    def check(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "vgg_weights":
                require(getattr(self, f.name) >= 0, f"loss.{f.name}", "a number >= 0",
                        getattr(self, f.name))


Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when present, else CPU


@dataclass(frozen=True)
class LganConfig:
    """The landmark conditional GAN (thesis 3.3.2, Eq. 3.4) and its training, which the thesis
    does not give: pix2pix's objective and optimiser (Isola et al. 2017), on landmark sets."""

    # ID_s: a learned embedding per known identity (thesis Eq. 3.4), or the source's
    # face-recognition embedding from annotate (data/annotations/_identity.parquet), which extends
    # to identities never trained on (thesis 5.2's future work)
    identity_input: Literal["embedding", "face_recognition"] = "embedding"
    identity_dim: int = 64  # width of the identity code; Fig. 5 is lost, chosen
    au_dim: int = 64  # width of each AU embedding, present ones summed (thesis Eq. 3.4); chosen
    noise_dim: int = 0  # noise input width; 0 is exactly thesis Eq. 3.4, which has no noise
    hidden: int = 256  # hidden width of the generator and discriminator MLPs; Fig. 5 is lost
    steps: int = 20000  # optimiser steps; the thesis gives no schedule, our choice
    batch: int = 64  # landmark sets per step; our choice
    lr: float = 2e-4  # Adam learning rate of g and D (pix2pix)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (pix2pix)
    adversarial: float = 1.0  # weight of the conditional GAN loss (pix2pix)
    reconstruction: float = 100.0  # L1 to the frame's own landmarks (pix2pix's lambda = 100)
    log_every: int = 100  # steps between logged training losses
    checkpoint_every: int = 1000  # steps between checkpoints and validations
    keep_checkpoints: int = 2  # newest checkpoints kept; older ones are deleted
    device: Device = "auto"

    def check(self) -> None:
        for key in ("identity_dim", "au_dim", "hidden", "steps", "batch", "log_every",
                    "checkpoint_every", "keep_checkpoints"):
            require(getattr(self, key) >= 1, f"lgan.{key}", "an integer >= 1",
                    getattr(self, key))
        require(self.noise_dim >= 0, "lgan.noise_dim", "an integer >= 0", self.noise_dim)
        check_adam("lgan", self.lr, self.betas)
        for key in ("adversarial", "reconstruction"):
            require(getattr(self, key) >= 0, f"lgan.{key}", "a number >= 0", getattr(self, key))


@dataclass(frozen=True)
class TrainConfig:
    """Training of the reenactment GAN (Sec III-D). The paper gives no optimiser or schedule:
    Adam at 2e-4, betas (0.5, 0.999), for G and D, as first-order-model, TPSMM and DaGAN."""

    steps: int = 100000  # optimiser steps of G and of D; the paper gives none, our choice
    batch: int = 32  # pairs per step and process; the paper gives none, our choice
    lr: float = 2e-4  # Adam learning rate of G and D (first-order-model, TPSMM, DaGAN)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (first-order-model, TPSMM, DaGAN)
    workers: int = 4  # loader processes per training process; 0 loads in the training process
    log_every: int = 50  # steps between logged losses, lr, samples/s
    checkpoint_every: int = 1000  # steps between checkpoints
    sample_every: int = 1000  # steps between sample grids and validations
    val_pairs: int = 64  # the first `self` evaluation pairs scored by the validation L1
    seed: int = 0  # initialisation, pair order and the random VGG19's weights
    device: Device = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, else fp32
    compile: bool = False  # torch.compile the networks (CUDA: faster after a minute of compiling)
    keep_checkpoints: int = 2  # newest checkpoints kept; older ones are deleted
    mode: Literal["central", "federated"] = "central"  # federated: thesis 3.6 (`federated`)

    def check(self) -> None:
        for key in ("steps", "batch", "log_every", "checkpoint_every", "sample_every",
                    "keep_checkpoints"):
            require(getattr(self, key) >= 1, f"train.{key}", "an integer >= 1",
                    getattr(self, key))
        for key in ("workers", "val_pairs", "seed"):
            require(getattr(self, key) >= 0, f"train.{key}", "an integer >= 0",
                    getattr(self, key))
        check_adam("train", self.lr, self.betas)


@dataclass(frozen=True)
class EvaluateConfig:
    """The five metrics of thesis 4.2 per scenario; pose and AUs read by `annotate.backend`."""

    embedder: Literal["dlib", "arcface"] = "dlib"  # CSIM's face embedder; arcface is the paper's
    arcface_weights: str = "data/arcface/backbone.pth"  # arcface_torch backbone.pth (not shipped)
    lpips_weights: str = "data/lpips"  # LPIPS-Alex's two weight files (not shipped); LPIPS is
    # left out, and the metrics' backends say why, when they are not there (docs/scoring.md)
    pairs: int = 0  # pairs scored per scenario, spread over prepare's fixed list; 0: all
    batch: int = 32  # pairs per model forward and metric step
    read_size: int = 224  # faces read at this side, px (the networks' 224, Sec III-A: our choice
    # for reading; the paper does not say); dlib misses faces < ~80 px
    grid_rows: int = 4  # pairs in each scenario's sample grid
    device: Device = "auto"
    threads: int = 1  # torch CPU threads, 0: torch's; 1 embedded 7x faster than 2 on a busy CPU

    def check(self) -> None:
        for key, least in (("pairs", 0), ("threads", 0), ("batch", 1), ("grid_rows", 1),
                           ("read_size", 32)):
            require(getattr(self, key) >= least, f"evaluate.{key}", f"an integer >= {least}",
                    getattr(self, key))


@dataclass(frozen=True)
class FederatedConfig:
    """Federated training of the reenactor: FedGAN on FedAvg (thesis 3.6.2, Algorithm 1)."""

    local_steps: int = 100  # E, local steps of G and D per client and round (Algorithm 1)
    lr: float = 1e-4  # eta_g = eta_d, the clients' learning rate of G and D (Algorithm 1)
    tau: float = 3.0  # stop once Var(L_G) over the last 5 rounds is < tau (Algorithm 1)
    min_rounds: int = 5  # rounds always run: `while round <= 5 or ...` (Algorithm 1)
    max_rounds: int = 200  # cap on the rounds; the thesis has none, our choice
    weighting: Literal["equal", "examples"] = "equal"  # thesis 3.6.2, or n_i / n (thesis Eq. 2.2)
    round_timeout: float = 3600.0  # seconds the server waits for replies; late ones are missing

    def check(self) -> None:
        for key, low in {"local_steps": 1, "min_rounds": 1, "max_rounds": 1, "tau": 0}.items():
            value = getattr(self, key)
            require(value >= low, f"federated.{key}", f"a number >= {low}", value)
        for key in ("lr", "round_timeout"):
            require(getattr(self, key) > 0, f"federated.{key}", "a number > 0", getattr(self, key))


# --- checks used by the sections --------------------------------------------------------


def require(ok: bool, key: str, allowed: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {allowed}, got {got!r}")


def check_adam(section: str, lr: float, betas: tuple[float, float]) -> None:
    require(lr > 0, f"{section}.lr", "a positive number", lr)
    require(all(0 <= b < 1 for b in betas), f"{section}.betas", "two numbers in [0, 1)",
             list(betas))
