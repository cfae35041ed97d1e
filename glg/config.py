"""Typed params: one frozen dataclass per params.yaml section, validated before any work.

`load_params("extract")` reads params.yaml, checks every key of that section against the
dataclass (unknown keys, wrong types, out-of-range values) and returns the frozen config.
Any problem raises `ConfigError` with one line naming the key and what is allowed.
Defaults are the paper's values where the paper fixes one (the section is cited).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from glg.errors import ConfigError

PARAMS_FILE = Path("params.yaml")


# --- sections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    videos: str = "data/synthetic"  # <identity>/<clip>.mp4 or <identity>/<yt_id>/<clip>.mp4

    def check(self) -> None:
        _require(bool(self.videos.strip()), "data.videos", "a non-empty path", self.videos)


@dataclass(frozen=True)
class SynthesizeConfig:
    identities: int = 6  # demo identities, each a deformed public-domain portrait
    clips_per_identity: int = 3  # clips per identity
    seconds: float = 3.0  # length of one clip, s
    fps: int = 25  # frames per second, as VoxCeleb1
    size: int = 256  # frame side, px, as VoxCeleb1 and CelebV
    workers: int = 2  # processes rendering clips in parallel; the output does not depend on it

    def check(self) -> None:
        _require(self.identities >= 1, "synthesize.identities", "an integer >= 1", self.identities)
        _require(self.clips_per_identity >= 1, "synthesize.clips_per_identity", "an integer >= 1",
                 self.clips_per_identity)
        _require(self.seconds > 0, "synthesize.seconds", "a positive number", self.seconds)
        _require(self.fps >= 1, "synthesize.fps", "an integer >= 1", self.fps)
        _require(self.size >= 64 and self.size % 2 == 0, "synthesize.size",
                 "an even integer >= 64", self.size)
        _require(self.workers >= 1, "synthesize.workers", "an integer >= 1", self.workers)


@dataclass(frozen=True)
class ExtractConfig:
    size: int = 256  # side of the stored square crop, px (VoxCeleb1/CelebV come at 256)
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
        _require(self.size > 0 and self.size % 2 == 0, "extract.size",
                 "a positive multiple of 2", self.size)
        _require(self.fps > 0, "extract.fps", "a positive number", self.fps)
        _require(self.max_frames >= 1, "extract.max_frames", "an integer >= 1", self.max_frames)
        _require(self.crop_scale >= 1.0, "extract.crop_scale", "a number >= 1", self.crop_scale)
        _require(0.0 <= self.smoothing < 1.0, "extract.smoothing", "a number in [0, 1)",
                 self.smoothing)
        _require(self.detect_every >= 1, "extract.detect_every", "an integer >= 1",
                 self.detect_every)
        _require(self.detect_size >= 80, "extract.detect_size",
                 "an integer >= 80 (dlib's smallest face)", self.detect_size)
        _require(self.workers >= 1, "extract.workers", "an integer >= 1", self.workers)
        _require(1 <= self.jpeg_quality <= 100, "extract.jpeg_quality", "an integer in [1, 100]",
                 self.jpeg_quality)
        _require(self.shard_mb > 0, "extract.shard_mb", "a positive number", self.shard_mb)


@dataclass(frozen=True)
class AnnotateConfig:
    backend: Literal["dlib", "pyfeat"] = "dlib"  # dlib works offline; pyfeat needs its weights
    redetect_every: int = 10  # frames between forced re-detections while tracking
    workers: int = 2  # clips in parallel: local processes, or Ray actors of one CPU each
    engine: Literal["local", "ray"] = "local"  # local process pool, or Ray (glg/engine.py)
    shard_rows: int = 50000  # rows per output Parquet shard (about 60 MB in memory)

    def check(self) -> None:
        _require(self.redetect_every >= 1, "annotate.redetect_every", "an integer >= 1",
                 self.redetect_every)
        _require(self.workers >= 1, "annotate.workers", "an integer >= 1", self.workers)
        _require(self.shard_rows >= 1, "annotate.shard_rows", "an integer >= 1", self.shard_rows)


@dataclass(frozen=True)
class PrepareConfig:
    size: int = 224  # network input side, px (Sec III-A: 224x224 images)
    unseen_identities: int = 5  # identities never trained on (Sec IV-A: CelebV's five people)
    test_clips: int = 100  # self-reenactment test clips, unseen identities' first (Sec IV-A: 100)
    known_identities: int = 5  # known people scored in the known-identity scenario (Sec IV-A: 5)
    known_holdout: float = 0.2  # fraction of each training clip held out at its end (our choice)
    self_pairs: int = 2083  # self-reenactment pairs in all, two frames of one clip (Sec IV-A)
    unseen_pairs: int = 2000  # unseen-identity pairs per unseen person (Sec IV-A: 2,000 each)
    known_pairs: int = 2000  # known-identity pairs per known person (Sec IV-A: 2,000 each)
    min_frames: int = 2  # usable frames a clip needs: a training pair is two of its frames (Sec II)
    part_margin: float = 0.5  # crop side = average box side + margin x its longer side (our choice)
    part_multiple: int = 8  # part crop sides rounded up to a multiple of this, px (our choice)
    jpeg_quality: int = 95  # quality of the stored S px JPEG frames, as extract's (our choice)
    shard_mb: float = 256.0  # a frame shard is closed once it holds this much JPEG data, MiB

    def check(self) -> None:
        _require(self.size >= 32 and self.size % 2 == 0, "prepare.size", "an even integer >= 32",
                 self.size)
        for key in ("unseen_identities", "test_clips", "known_identities", "self_pairs",
                    "unseen_pairs", "known_pairs"):
            _require(getattr(self, key) >= 0, f"prepare.{key}", "an integer >= 0",
                     getattr(self, key))
        _require(0.0 < self.known_holdout < 1.0, "prepare.known_holdout", "a number in (0, 1)",
                 self.known_holdout)
        _require(self.min_frames >= 2, "prepare.min_frames", "an integer >= 2", self.min_frames)
        _require(0.0 <= self.part_margin <= 4.0, "prepare.part_margin", "a number in [0, 4]",
                 self.part_margin)
        _require(self.part_multiple >= 1, "prepare.part_multiple", "an integer >= 1",
                 self.part_multiple)
        _require(1 <= self.jpeg_quality <= 100, "prepare.jpeg_quality", "an integer in [1, 100]",
                 self.jpeg_quality)
        _require(self.shard_mb > 0, "prepare.shard_mb", "a positive number", self.shard_mb)


@dataclass(frozen=True)
class ModelConfig:
    backbone: Literal["vit", "resnet"] = "resnet"  # flow estimator trunk (Sec III-A, Table I)
    # guiding landmarks: the driving's, Eq. 3's transfer (Sec III-B-1) or the LGAN's (Sec III-B-2);
    # resnet + lgan + style is the paper's full model, ResNet+LGAN+Style (Table III)
    landmark_mode: Literal["driving", "lst", "lgan"] = "lgan"
    style: bool = True  # style transfer branch (Sec III-C-1)
    flow: bool = True  # optical-flow warping; false gives Table V's "Style" baseline
    resnet_weights: Literal["none", "imagenet"] = "none"  # ResNet-34 init; the paper is silent
    vit_patch_input: Literal["luma", "rgb"] = "luma"  # patch = 196 = 14x14x1 values (thesis 3.1)
    vit_patch: int = 14  # patch side, px (Sec III-A: 256 patches of 14x14 in 224x224)
    vit_layers: int = 3  # transformer layers (Sec III-A, IV-B)
    vit_dim: int = 768  # token width d = d_q = d_k = d_v (Sec III-A, Eq. 1-2)
    vit_heads: int = 1  # attention heads; Eq. 1-2 write one head with d_k = 768
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
        _require(self.flow or self.style, "model.style",
                 "true when model.flow is false (Table V's Style baseline)", self.style)
        for key in ("vit_patch", "vit_layers", "vit_dim", "vit_heads", "vit_mlp", "flow_code",
                    "flow_hidden", "flow_channels", "part_channels", "part_levels",
                    "generator_channels", "generator_blocks", "style_dim",
                    "discriminator_channels", "discriminator_layers"):
            _require(getattr(self, key) >= 1, f"model.{key}", "an integer >= 1",
                     getattr(self, key))
        _require(self.vit_dim % self.vit_heads == 0, "model.vit_heads",
                 f"a divisor of model.vit_dim ({self.vit_dim})", self.vit_heads)


@dataclass(frozen=True)
class LossConfig:
    l1: float = 20.0  # image L1 weight (Sec III-D)
    parts: float = 5.0  # reenacted-part L1 weight (Sec III-D)
    adversarial: float = 1.0  # DCGAN loss weight (Sec III-D)
    feature_matching: float = 1.0  # discriminator feature matching weight (Sec III-D)
    perceptual: float = 10.0  # VGG19 perceptual weight (Sec III-D)
    landmark_regression: float = 1.0  # the ViT's auxiliary landmark L1 (Sec III-A); weight chosen
    vgg_weights: Literal["imagenet", "random"] = "imagenet"  # Sec III-D; random if offline, warned

    def check(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "vgg_weights":
                _require(getattr(self, f.name) >= 0, f"loss.{f.name}", "a number >= 0",
                         getattr(self, f.name))


Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when present, else CPU


@dataclass(frozen=True)
class LganConfig:
    """The landmark conditional GAN (thesis 3.3.2, Eq. 3.4) and its training, which the thesis
    does not give: pix2pix's objective and optimiser (Isola et al. 2017), on landmark sets."""

    # ID_s: a learned embedding per known identity (Eq. 3.4), or the source's face-recognition
    # embedding from annotate (data/annotations/_identity.parquet), which extends to identities
    # never trained on (thesis 5.2's future work)
    identity_input: Literal["embedding", "face_recognition"] = "embedding"
    identity_dim: int = 64  # width of the identity code; Fig. 5 is lost, chosen
    au_dim: int = 64  # width of each AU embedding AU_i, summed over present AUs (Eq. 3.4); chosen
    noise_dim: int = 0  # noise input width; 0 is exactly Eq. 3.4, which has no noise
    hidden: int = 256  # hidden width of the generator and discriminator MLPs; Fig. 5 is lost
    steps: int = 20000  # optimiser steps; the thesis gives no schedule, our choice
    batch: int = 64  # landmark sets per step; our choice
    lr: float = 2e-4  # Adam learning rate of g and D (pix2pix)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (pix2pix)
    adversarial: float = 1.0  # weight of the conditional GAN loss (pix2pix)
    reconstruction: float = 100.0  # L1 to the frame's own landmarks (pix2pix's lambda = 100)
    log_every: int = 100  # steps between logged training losses
    checkpoint_every: int = 1000  # steps between checkpoints and validations
    device: Device = "auto"

    def check(self) -> None:
        for key in ("identity_dim", "au_dim", "hidden", "steps", "batch", "log_every",
                    "checkpoint_every"):
            _require(getattr(self, key) >= 1, f"lgan.{key}", "an integer >= 1",
                     getattr(self, key))
        _require(self.noise_dim >= 0, "lgan.noise_dim", "an integer >= 0", self.noise_dim)
        _check_adam("lgan", self.lr, self.betas)
        for key in ("adversarial", "reconstruction"):
            _require(getattr(self, key) >= 0, f"lgan.{key}", "a number >= 0", getattr(self, key))


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
            _require(getattr(self, key) >= 1, f"train.{key}", "an integer >= 1",
                     getattr(self, key))
        for key in ("workers", "val_pairs", "seed"):
            _require(getattr(self, key) >= 0, f"train.{key}", "an integer >= 0",
                     getattr(self, key))
        _check_adam("train", self.lr, self.betas)


@dataclass(frozen=True)
class FederatedConfig:
    """Federated training of the reenactor: FedGAN on FedAvg (thesis 3.6.2, Algorithm 1)."""

    local_steps: int = 100  # E, local steps of G and D per client and round (Algorithm 1)
    lr: float = 1e-4  # eta_g = eta_d, the clients' learning rate of G and D (Algorithm 1)
    tau: float = 3.0  # stop once Var(L_G) over the last 5 rounds is < tau (Algorithm 1)
    min_rounds: int = 5  # rounds always run: `while round <= 5 or ...` (Algorithm 1)
    max_rounds: int = 200  # cap on the rounds; the thesis has none, our choice
    weighting: Literal["equal", "examples"] = "equal"  # thesis 3.6.2, or n_i / n (Eq. 2.2)
    round_timeout: float = 3600.0  # seconds the server waits for replies; late ones are missing

    def check(self) -> None:
        for key, low in {"local_steps": 1, "min_rounds": 1, "max_rounds": 1, "tau": 0}.items():
            value = getattr(self, key)
            _require(value >= low, f"federated.{key}", f"a number >= {low}", value)
        for key in ("lr", "round_timeout"):
            _require(getattr(self, key) > 0, f"federated.{key}", "a number > 0", getattr(self, key))


@dataclass(frozen=True)
class Params:
    """The whole params.yaml: top-level seed plus one config per section."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    synthesize: SynthesizeConfig = field(default_factory=SynthesizeConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    lgan: LganConfig = field(default_factory=LganConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)


SECTIONS: dict[str, type] = {
    name: cls for name, cls in typing.get_type_hints(Params).items() if name != "seed"
}


# --- loading -------------------------------------------------------------------------------


def load_params(section: str | None = None, path: str | Path = PARAMS_FILE) -> Any:
    """Read and validate params.yaml; the whole `Params`, one section's config, or `"seed"`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    params = parse_params(raw)
    if section is None:
        return params
    if section != "seed" and section not in SECTIONS:
        raise ConfigError(f"unknown params section {section!r}; allowed: {', '.join(SECTIONS)}")
    return getattr(params, section)


def parse_params(raw: dict) -> Params:
    """Validate a params mapping (as read from YAML) into `Params`; missing keys take defaults."""
    unknown = sorted(set(raw) - set(SECTIONS) - {"seed"})
    if unknown:
        raise ConfigError(f"unknown params key {unknown[0]!r}; allowed: seed, "
                          f"{', '.join(SECTIONS)}")
    seed = _coerce("seed", raw.get("seed", 0), int)
    _require(seed >= 0, "seed", "an integer >= 0", seed)
    sections = {name: parse_section(name, raw.get(name) or {}) for name in SECTIONS}
    return Params(seed=seed, **sections)


def parse_section(name: str, raw: Any) -> Any:
    """Validate one section's mapping into its frozen dataclass."""
    cls = SECTIONS[name]
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must be a mapping of keys, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in allowed:
            raise ConfigError(f"unknown params key {name}.{key}; allowed: {', '.join(allowed)}")
        values[key] = _coerce(f"{name}.{key}", value, hints[key])
    config = cls(**values)
    config.check()
    return config


def to_dict(config: Any) -> dict:
    """A config as plain data, for checkpoints and results."""
    return dataclasses.asdict(config)


# --- helpers -------------------------------------------------------------------------------


def _require(ok: bool, key: str, allowed: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {allowed}, got {got!r}")


def _check_adam(section: str, lr: float, betas: tuple[float, float]) -> None:
    _require(lr > 0, f"{section}.lr", "a positive number", lr)
    _require(all(0 <= b < 1 for b in betas), f"{section}.betas", "two numbers in [0, 1)",
             list(betas))


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check one YAML value against its annotation; ints are accepted where floats are, a list
    of numbers where a tuple of floats is."""
    if typing.get_origin(hint) is tuple:
        n = len(typing.get_args(hint))
        _require(isinstance(value, (list, tuple)) and len(value) == n, key,
                 f"a list of {n} numbers", value)
        return tuple(_coerce(key, v, float) for v in value)
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        _require(value in choices, key, "one of " + ", ".join(map(str, choices)), value)
        return value
    if hint is bool:
        _require(isinstance(value, bool), key, "true or false", value)
        return value
    if hint is int:
        _require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
        return value
    if hint is float:
        _require(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number",
                 value)
        return float(value)
    if hint is str:
        _require(isinstance(value, str), key, "a string", value)
        return value
    raise TypeError(f"{key}: unsupported annotation {hint!r}")
